"""The value workloads get as AWS_XRAY_DAEMON_ADDRESS."""

from __future__ import annotations

from xray_operator.constants import HOST_IP_ENV
from xray_operator.model import TracingConfig
from xray_operator.render.common import child_name


def service_host(config: TracingConfig) -> str:
    return f"{child_name(config)}.{config.namespace}.svc.cluster.local"


def daemon_address(config: TracingConfig) -> str:
    """`<svc>.<ns>.svc.cluster.local:<udpPort>`: the Service address (status.daemonAddress)."""
    return f"{service_host(config)}:{config.spec.daemon.udp_port}"


def address_for(config: TracingConfig) -> str:
    """AWS_XRAY_DAEMON_ADDRESS for the configured addressMode.

    hostIP mode yields `$(HOST_IP):<port>`; Kubernetes expands `$(HOST_IP)` from an env var
    of that name set earlier in the container's env (downward API status.hostIP).
    SDKs read a single `host:port` as both the UDP and the TCP address, so when the ports
    differ the two-part form `tcp:host:port udp:host:port` is the only correct value.
    """
    daemon = config.spec.daemon
    if config.spec.injection.address_mode == "hostIP":
        host = f"$({HOST_IP_ENV})"
    else:
        host = service_host(config)
    if daemon.udp_port == daemon.tcp_port:
        return f"{host}:{daemon.udp_port}"
    return f"tcp:{host}:{daemon.tcp_port} udp:{host}:{daemon.udp_port}"
