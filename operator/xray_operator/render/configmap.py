"""The daemon's cfg.yaml (Version 2) and the ConfigMap that holds it.

The daemon exits on a key it does not know and on a missing Version, so the file carries
only keys from the daemon's own Config struct (pkg/cfg/cfg.go), and optional strings only
when they are set.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from xray_operator.model import TracingConfig
from xray_operator.render.common import CONFIG_FILE, metadata

CFG_VERSION = 2


def daemon_config(config: TracingConfig) -> dict[str, Any]:
    daemon = config.spec.daemon
    cfg: dict[str, Any] = {
        "TotalBufferSizeMB": daemon.buffer_size_mb,
        "Concurrency": daemon.concurrency,
        "Region": config.spec.region,
        # The daemon binds 127.0.0.1 by default, which no other pod can reach.
        "Socket": {
            "UDPAddress": f"0.0.0.0:{daemon.udp_port}",
            "TCPAddress": f"0.0.0.0:{daemon.tcp_port}",
        },
        "Logging": {"LogLevel": daemon.log_level},
        "LocalMode": daemon.local_mode,
    }
    if daemon.endpoint:
        cfg["Endpoint"] = daemon.endpoint
    if daemon.role_arn:
        cfg["RoleARN"] = daemon.role_arn
    if daemon.proxy_address:
        cfg["ProxyAddress"] = daemon.proxy_address
    cfg["Version"] = CFG_VERSION
    return cfg


def cfg_yaml(config: TracingConfig) -> str:
    return yaml.safe_dump(daemon_config(config), sort_keys=False, default_flow_style=False)


def config_hash(config: TracingConfig) -> str:
    """Goes on the pod template: the daemon reads cfg.yaml only at start-up, so a changed
    file must roll the pods, and an unchanged one must not.

    The IRSA role is hashed too: EKS injects the role into a pod when the pod is created, so
    after the ServiceAccount's annotation changes only new pods run as the new role. Without
    a role the hash is just sha256(cfg.yaml), easy to check by hand.
    """
    digest = hashlib.sha256(cfg_yaml(config).encode())
    role_arn = config.spec.service_account.role_arn
    if role_arn:
        digest.update(f"\0irsa-role-arn={role_arn}".encode())
    return digest.hexdigest()


def build_configmap(config: TracingConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(config),
        "data": {CONFIG_FILE: cfg_yaml(config)},
    }
