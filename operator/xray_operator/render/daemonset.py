"""The X-Ray daemon DaemonSet: one daemon per node, reading the rendered cfg.yaml."""

from __future__ import annotations

from typing import Any

from xray_operator.constants import CONFIG_HASH_ANNOTATION
from xray_operator.model import DaemonSpec, TracingConfig
from xray_operator.render.common import (
    CONFIG_DIR,
    CONFIG_PATH,
    TCP_PORT_NAME,
    UDP_PORT_NAME,
    child_name,
    labels,
    metadata,
    selector_labels,
)
from xray_operator.render.configmap import config_hash

CONTAINER_NAME = "xray-daemon"
CONFIG_VOLUME = "config"
# The uid/gid of the `xray` user in the daemon images. The image names its user, not a
# number, and the kubelet can only enforce runAsNonRoot with a numeric id.
DAEMON_UID = 10001
CPU_REQUEST = "50m"


def daemon_args(daemon: DaemonSpec) -> list[str]:
    """Flags after the image's entrypoint.

    The entrypoint already passes `-t 0.0.0.0:2000 -b 0.0.0.0:2000`, and command-line binds
    beat the config file, so the configured ports are passed again here (the last flag wins).
    """
    return [
        "-c", CONFIG_PATH,
        "-b", f"0.0.0.0:{daemon.udp_port}",
        "-t", f"0.0.0.0:{daemon.tcp_port}",
    ]


def container_resources(daemon: DaemonSpec) -> dict[str, Any]:
    given = daemon.resources.model_dump(exclude_none=True)
    if given:
        return given
    # Buffers are allocated up front; the rest is the Go runtime and HTTP clients.
    buffer_mb = daemon.buffer_size_mb
    return {
        "requests": {"cpu": CPU_REQUEST, "memory": f"{buffer_mb + 40}Mi"},
        "limits": {"memory": f"{2 * buffer_mb + 64}Mi"},
    }


def _ports(daemon: DaemonSpec) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = [
        {"name": UDP_PORT_NAME, "containerPort": daemon.udp_port, "protocol": "UDP"},
        {"name": TCP_PORT_NAME, "containerPort": daemon.tcp_port, "protocol": "TCP"},
    ]
    if daemon.host_port:
        for port in ports:
            port["hostPort"] = port["containerPort"]
    return ports


def _probe(initial_delay: int, period: int) -> dict[str, Any]:
    # The daemon has no health endpoint; its TCP sampling proxy accepting connections is
    # the best sign of life there is.
    return {
        "tcpSocket": {"port": TCP_PORT_NAME},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _container(config: TracingConfig) -> dict[str, Any]:
    daemon = config.spec.daemon
    return {
        "name": CONTAINER_NAME,
        "image": daemon.image,
        # No `command`: the image entrypoint is the daemon binary.
        "args": daemon_args(daemon),
        "ports": _ports(daemon),
        "resources": container_resources(daemon),
        "readinessProbe": _probe(initial_delay=2, period=10),
        "livenessProbe": _probe(initial_delay=10, period=20),
        "volumeMounts": [{"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": DAEMON_UID,
            "runAsGroup": DAEMON_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _pod_spec(config: TracingConfig) -> dict[str, Any]:
    daemon = config.spec.daemon
    spec: dict[str, Any] = {
        "serviceAccountName": child_name(config),
        "automountServiceAccountToken": False,
        # The images are Linux-only.
        "nodeSelector": {"kubernetes.io/os": "linux", **daemon.node_selector},
        "tolerations": [t.model_dump(exclude_none=True) for t in daemon.tolerations],
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(config)],
        "volumes": [{"name": CONFIG_VOLUME, "configMap": {"name": child_name(config)}}],
    }
    if daemon.priority_class_name:
        spec["priorityClassName"] = daemon.priority_class_name
    return spec


def build_daemonset(config: TracingConfig) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(config),
        "spec": {
            "selector": {"matchLabels": selector_labels(config)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": labels(config),
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(config)},
                },
                "spec": _pod_spec(config),
            },
        },
    }
