"""Every address injection produces must be accepted by the real X-Ray SDK for Python.

A value the SDK cannot parse crashes the application at start-up, so this runs the SDK's own
parser (DaemonConfig reads AWS_XRAY_DAEMON_ADDRESS from the environment) on what a container
would see, after kubelet has expanded $(HOST_IP).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_xray_sdk.core.daemon_config import DaemonConfig

from xray_operator.constants import INJECT_ANNOTATION
from xray_operator.model import TracingConfig
from xray_operator.render import address_for
from xray_operator.render.injection import Target, plan_pod, plan_workload, target_for

NODE_IP = "10.20.30.40"
POD_STATUS = {"status.hostIP": NODE_IP}

SERVICE = Target("xray-system/svc", False, "deployment",
                 "svc-daemon.xray-system.svc.cluster.local:2000", False)
SERVICE_ODD_PORT = Target("xray-system/odd", False, "deployment",
                          "odd-daemon.xray-system.svc.cluster.local:31337", False)
HOSTIP = Target("xray-system/nodes", False, "deployment", "$(HOST_IP):2000", True)
HOOK_SERVICE = Target("xray-system/hook", False, "webhook",
                      "hook-daemon.xray-system.svc.cluster.local:2000", False)
HOOK_HOSTIP = Target("xray-system/hooknodes", False, "webhook", "$(HOST_IP):2001", True)
ALL = [SERVICE, SERVICE_ODD_PORT, HOSTIP, HOOK_SERVICE, HOOK_HOSTIP]


def config(name: str, **spec: Any) -> TracingConfig:
    return TracingConfig.from_object({
        "metadata": {"name": name, "namespace": "xray-system"},
        "spec": {"region": "us-east-1", **spec},
    })


# The same addresses, as render.address_for makes them from real TracingConfigs, including the
# two-part form it uses when the UDP and TCP ports differ.
CONFIGS = [
    config("svc"),
    config("split", daemon={"udpPort": 2000, "tcpPort": 2001}),
    config("nodes", daemon={"hostPort": True}, injection={"addressMode": "hostIP"}),
    config("splitnodes", daemon={"hostPort": True, "udpPort": 2002, "tcpPort": 2003},
           injection={"addressMode": "hostIP", "mode": "webhook"}),
]
ALL += [target_for(c, address_for(c)) for c in CONFIGS]


def kubelet_environment(env: list[dict[str, Any]]) -> dict[str, str]:
    """The container environment kubelet builds: downward API values filled in, and $(VAR)
    expanded only from variables declared earlier (an unknown reference stays as written)."""
    result: dict[str, str] = {}
    for entry in env:
        if "valueFrom" in entry:
            value = POD_STATUS[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                           lambda m: result.get(m.group(1), m.group(0)), entry["value"])
        result[entry["name"]] = value
    return result


def injected_env(target: Target) -> list[dict[str, Any]]:
    annotations = {INJECT_ANNOTATION: target.config}
    containers = [{"name": "app", "image": "a", "env": [{"name": "PORT", "value": "8080"}]}]
    if target.mode == "deployment":
        workload = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "shop", "annotations": annotations},
            "spec": {"template": {"spec": {"containers": containers}}},
        }
        body = plan_workload(workload, {}, ALL).body
        env: list[dict[str, Any]] = body["spec"]["template"]["spec"]["containers"][0]["env"]
        return [{"name": "PORT", "value": "8080"}, *env]
    pod = {"metadata": {"namespace": "shop", "annotations": annotations},
           "spec": {"containers": containers}}
    ops = plan_pod(pod, {}, ALL).patch
    return [{"name": "PORT", "value": "8080"}] + [
        op["value"] for op in ops if op["path"].startswith("/spec/containers/0/env")
    ]


@pytest.mark.parametrize("target", ALL, ids=lambda t: t.config)
def test_injected_address_is_parsed_by_the_python_sdk(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = kubelet_environment(injected_env(target))
    address = environment["AWS_XRAY_DAEMON_ADDRESS"]
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)
    parsed = DaemonConfig()
    expected = target.address.replace("$(HOST_IP)", NODE_IP)
    if " " in expected:  # tcp:host:port udp:host:port
        parts = dict(p.split(":", 1) for p in expected.split(" "))
        tcp_host, _, tcp_port = parts["tcp"].rpartition(":")
        udp_host, _, udp_port = parts["udp"].rpartition(":")
    else:
        tcp_host, _, tcp_port = expected.rpartition(":")
        udp_host, udp_port = tcp_host, tcp_port
    assert NODE_IP in expected or ".svc.cluster.local" in expected
    assert (parsed.udp_ip, parsed.udp_port) == (udp_host, int(udp_port))
    assert (parsed.tcp_ip, parsed.tcp_port) == (tcp_host, int(tcp_port))
