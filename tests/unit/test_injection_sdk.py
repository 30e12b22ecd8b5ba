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
from xray_operator.render.injection import Target, plan_pod, plan_workload

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
    config = DaemonConfig()
    expected_host, _, port = target.address.replace("$(HOST_IP)", NODE_IP).rpartition(":")
    assert (config.udp_ip, config.udp_port) == (expected_host, int(port))
    assert (config.tcp_ip, config.tcp_port) == (expected_host, int(port))
