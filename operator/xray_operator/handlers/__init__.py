"""kopf handlers. Importing this package registers them all."""

from xray_operator.handlers import children, startup, tracingconfig

__all__ = ["children", "startup", "tracingconfig"]
