"""kopf handlers. Importing this package registers them all."""

from xray_operator.handlers import children, iam, injection, startup, tracingconfig, webhook

__all__ = ["children", "iam", "injection", "startup", "tracingconfig", "webhook"]
