"""The sample apps and their manifests, on their own: what a person deploying them relies on."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from xray_dev import tracepath
from xray_dev.tracepath import DAEMON_ADDRESS_ENV, SAMPLE_APPS, SAMPLE_SERVICES

pytestmark = pytest.mark.e2e

K8S_SCHEMA_VERSION = "1.36.0"
INJECT = "xray-operator.dev/inject"


def deployment(service: str) -> dict[str, Any]:
    return next(o for o in tracepath.sample_manifest(service) if o["kind"] == "Deployment")


@pytest.mark.parametrize("service", SAMPLE_SERVICES)
def test_manifest_is_valid_kubernetes(service: str) -> None:
    objects = tracepath.sample_manifest(service)
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Service"]
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize("service", SAMPLE_SERVICES)
def test_manifest_opts_in_and_leaves_the_address_to_the_operator(service: str) -> None:
    workload = deployment(service)
    assert workload["metadata"]["annotations"][INJECT] == "true"
    for container in workload["spec"]["template"]["spec"]["containers"]:
        names = {e["name"] for e in container.get("env") or []}
        assert DAEMON_ADDRESS_ENV not in names
    # Not hidden anywhere else either (an args line, a ConfigMap, another variable).
    text = (SAMPLE_APPS / service / "k8s.yaml").read_text()
    assert ":2000" not in text
    assert "xray-daemon" not in text


@pytest.mark.parametrize("service", SAMPLE_SERVICES)
def test_pod_meets_pod_security_restricted(service: str) -> None:
    pod = deployment(service)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["readOnlyRootFilesystem"] is True
        assert "hostPort" not in str(container.get("ports"))


def test_service_a_finds_service_b_through_its_service() -> None:
    service_b = next(o for o in tracepath.sample_manifest("service-b") if o["kind"] == "Service")
    env = tracepath.container_env(deployment("service-a"))
    port = service_b["spec"]["ports"][0]["port"]
    assert env["SERVICE_B_URL"] == f"http://{service_b['metadata']['name']}:{port}"


@pytest.mark.parametrize("service", SAMPLE_SERVICES)
def test_app_refuses_to_start_with_an_address_without_port(service: str, tmp_path: Path) -> None:
    # What an app does with a broken injected value: the SDK stops it at start-up, which is
    # why the operator never injects an address without a port.
    env = {**tracepath.base_env(tmp_path), DAEMON_ADDRESS_ENV: "xray-daemon.xray-system",
           "PORT": str(tracepath.free_port())}
    result = subprocess.run(
        [sys.executable, str(SAMPLE_APPS / service / "app.py")], env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert result.returncode != 0
    assert "Invalid daemon address xray-daemon.xray-system" in result.stderr


def test_app_sends_its_segment_to_the_address_in_the_environment(tmp_path: Path) -> None:
    # A UDP socket stands where the daemon would be: whatever arrives there came from the
    # address the app read from AWS_XRAY_DAEMON_ADDRESS (the SDK's own default is :2000).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(20)
        address = f"127.0.0.1:{daemon.getsockname()[1]}"
        port = tracepath.free_port()
        proc = tracepath.start_service("service-b", {DAEMON_ADDRESS_ENV: address}, port, tmp_path)
        try:
            status, _, body = tracepath.get_json(f"http://127.0.0.1:{port}/work")
            assert status == 200
            header, _, document = daemon.recv(65536).decode().partition("\n")
        finally:
            proc.stop()
    assert json.loads(header) == {"format": "json", "version": 1}
    segment = json.loads(document)
    assert segment["name"] == "service-b"
    assert segment["http"]["request"]["url"].endswith("/work")
    delay = next(s for s in segment["subsegments"] if s["name"] == "random-delay")
    assert delay["annotations"]["delay_ms"] == body["delay_ms"]
