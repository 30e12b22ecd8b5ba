"""Desired state: pure functions from a TracingConfig to the objects the operator applies.

The same `desired()` serves the operator and `xray-operator render`, so what a GitOps user
applies by hand is exactly what the operator would apply. No I/O, no clients here.
"""

from __future__ import annotations

from typing import Any

from xray_operator.model import TracingConfig
from xray_operator.render.address import address_for, daemon_address
from xray_operator.render.common import child_name, labels, selector_labels
from xray_operator.render.configmap import build_configmap, cfg_yaml, config_hash
from xray_operator.render.daemonset import build_daemonset
from xray_operator.render.service import build_service
from xray_operator.render.serviceaccount import build_serviceaccount

__all__ = [
    "address_for",
    "cfg_yaml",
    "child_name",
    "config_hash",
    "daemon_address",
    "desired",
    "labels",
    "selector_labels",
]


def desired(config: TracingConfig) -> list[dict[str, Any]]:
    """ServiceAccount, ConfigMap, Service, DaemonSet, in the order they can be created
    (the DaemonSet's pods need the other three). No ownerReferences: reconcile adds them."""
    return [
        build_serviceaccount(config),
        build_configmap(config),
        build_service(config),
        build_daemonset(config),
    ]
