"""The daemon's Service: ClusterIP with internalTrafficPolicy Local.

Not headless: a headless name resolves to every daemon pod and SDKs would send segments to
other nodes. With a ClusterIP and internalTrafficPolicy Local, kube-proxy delivers each
pod's traffic to the daemon on its own node.
"""

from __future__ import annotations

from typing import Any

from xray_operator.model import TracingConfig
from xray_operator.render.common import TCP_PORT_NAME, UDP_PORT_NAME, metadata, selector_labels


def build_service(config: TracingConfig) -> dict[str, Any]:
    daemon = config.spec.daemon
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(config),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(config),
            "internalTrafficPolicy": "Local",
            "ports": [
                {"name": UDP_PORT_NAME, "protocol": "UDP", "port": daemon.udp_port,
                 "targetPort": UDP_PORT_NAME},
                {"name": TCP_PORT_NAME, "protocol": "TCP", "port": daemon.tcp_port,
                 "targetPort": TCP_PORT_NAME},
            ],
        },
    }
