"""The images on a real cluster: kind creates it, we build and load the operator and sample
images, apply manifests/install.yaml and the samples, and check daemons and injection.

Needs a Docker engine (kind runs nodes as containers). Where `docker info` fails, every test
here skips with the reason; nothing else is faked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "xray-operator-e2e"
KIND_VERSION = "v0.33.0"
IMAGES = {
    "xray-operator:0.1.0": ("docker/operator.Dockerfile", "."),
    "xray-operator/sample-service-a:0.1.0": (
        "sample-apps/service-a/Dockerfile",
        "sample-apps/service-a",
    ),
    "xray-operator/sample-service-b:0.1.0": (
        "sample-apps/service-b/Dockerfile",
        "sample-apps/service-b",
    ),
}


def docker_unavailable() -> str | None:
    """None if a Docker engine answers, else why not (the skip reason)."""
    if shutil.which("docker") is None:
        return "kind suite skipped: no docker client on PATH (kind needs a Docker engine)"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "kind suite skipped: `docker info` timed out (no Docker engine answering)"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        return "kind suite skipped: `docker info` failed, no Docker engine here" + (
            f" ({detail[-1]})" if detail else ""
        )
    return None


def kind_binary() -> str:
    """kind from PATH or .cache/bin, else built from its Go module (no Docker needed)."""
    found = shutil.which("kind") or (
        str(ROOT / ".cache/bin/kind") if (ROOT / ".cache/bin/kind").exists() else None
    )
    if found:
        return found
    print(f"building sigs.k8s.io/kind@{KIND_VERSION} into .cache/bin", flush=True)
    subprocess.run(
        ["go", "install", f"sigs.k8s.io/kind@{KIND_VERSION}"],
        check=True,
        env={**_env(), "GOBIN": str(ROOT / ".cache/bin")},
    )
    return str(ROOT / ".cache/bin/kind")


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}


def run(*cmd: str, timeout: float = 900) -> str:
    print("+", " ".join(cmd), flush=True)
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stderr}{result.stdout}")
    return result.stdout


def test_docker_detection_gives_a_reason_or_none() -> None:
    """Runs everywhere: the detection itself is code worth exercising."""
    reason = docker_unavailable()
    assert reason is None or reason.startswith("kind suite skipped:")


@pytest.fixture(scope="module")
def kind_cluster() -> Iterator[dict[str, Any]]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    kind = kind_binary()
    kubeconfig = ROOT / ".cache" / "kind-kubeconfig"
    run(kind, "delete", "cluster", "--name", CLUSTER)
    run(
        kind,
        "create",
        "cluster",
        "--name",
        CLUSTER,
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "180s",
    )
    try:
        for tag, (dockerfile, context) in IMAGES.items():
            run("docker", "build", "-f", dockerfile, "-t", tag, context)
            run(kind, "load", "docker-image", "--name", CLUSTER, tag)
        yield {"kind": kind, "kubeconfig": str(kubeconfig)}
    finally:
        run(kind, "delete", "cluster", "--name", CLUSTER)


def kubectl(cluster: dict[str, Any], *args: str) -> str:
    return run(str(ROOT / ".cache/bin/kubectl"), "--kubeconfig", cluster["kubeconfig"], *args)


def test_operator_daemons_and_injection_on_kind(kind_cluster: dict[str, Any]) -> None:
    k = kind_cluster
    kubectl(k, "apply", "--server-side", "-f", "manifests/install.yaml")
    kubectl(k, "-n", "xray-system", "rollout", "status", "deploy/xray-operator", "--timeout=180s")
    kubectl(k, "apply", "--server-side", "-f", "manifests/samples/tracingconfig.yaml")
    deadline = time.monotonic() + 300
    while True:
        ds = (
            json.loads(kubectl(k, "-n", "xray-system", "get", "ds", "xray-daemon", "-o", "json"))
            if "xray-daemon" in kubectl(k, "-n", "xray-system", "get", "ds")
            else {}
        )
        status = ds.get("status", {})
        if status and status.get("numberReady") == status.get("desiredNumberScheduled") > 0:
            break
        assert time.monotonic() < deadline, f"daemons not ready: {status}"
        time.sleep(5)
    kubectl(k, "create", "namespace", "shop")
    for app in ("service-a", "service-b"):
        kubectl(k, "apply", "-n", "shop", "-f", f"sample-apps/{app}/k8s.yaml")
    for app in ("service-a", "service-b"):
        kubectl(k, "-n", "shop", "rollout", "status", f"deploy/{app}", "--timeout=300s")
        pods = json.loads(
            kubectl(
                k, "-n", "shop", "get", "pods", "-l", f"app.kubernetes.io/name={app}", "-o", "json"
            )
        )["items"]
        assert pods
        for pod in pods:
            env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
            assert (
                env["AWS_XRAY_DAEMON_ADDRESS"] == "xray-daemon.xray-system.svc.cluster.local:2000"
            )
