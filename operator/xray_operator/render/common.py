"""Names, labels and metadata shared by every child object of a TracingConfig."""

from __future__ import annotations

from typing import Any

from xray_operator.constants import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    NAME_LABEL,
    PART_OF_LABEL,
)
from xray_operator.model import TracingConfig

APP_NAME = "xray-daemon"
COMPONENT = "daemon"
PART_OF = "xray-operator"

# Where the ConfigMap is mounted. Not /etc/amazon/xray: the image ships its own cfg.yaml
# there, and the mount must not depend on what an image happens to contain.
CONFIG_DIR = "/etc/xray"
CONFIG_FILE = "cfg.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"

UDP_PORT_NAME = "xray-udp"
TCP_PORT_NAME = "xray-tcp"

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


def child_name(config: TracingConfig) -> str:
    """Every child (ServiceAccount, ConfigMap, Service, DaemonSet) shares this name."""
    return f"{config.name}-daemon"


def selector_labels(config: TracingConfig) -> dict[str, str]:
    # A DaemonSet selector is immutable, so it holds only labels that never change.
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: config.name}


def labels(config: TracingConfig) -> dict[str, str]:
    return {
        **selector_labels(config),
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        COMPONENT_LABEL: COMPONENT,
        PART_OF_LABEL: PART_OF,
    }


def metadata(config: TracingConfig, **extra: Any) -> dict[str, Any]:
    return {
        "name": child_name(config),
        "namespace": config.namespace,
        "labels": labels(config),
        **extra,
    }
