"""kopf handlers. Importing this package registers them all."""

from xray_operator.handlers import children, iam, startup, tracingconfig

__all__ = ["children", "iam", "startup", "tracingconfig"]
