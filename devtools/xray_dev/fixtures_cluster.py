"""pytest fixtures for the local control plane.

`cluster` starts it when needed and stops it at the end only if it started it. With CI=true a
cluster that cannot be had fails the run; elsewhere tests that need it skip with the reason.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xray_dev import cluster as local_cluster

# Never let boto3 in a test (or an operator it starts) reach for the EC2 metadata address.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

CRD_FILE = local_cluster.ROOT / "crds" / "tracingconfig.yaml"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def cluster() -> Iterator[local_cluster.Cluster]:
    try:
        handle, started = local_cluster.up()
    except Exception as err:
        message = f"local control plane unavailable: {err}"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield handle
    finally:
        if started:
            local_cluster.down()


@pytest.fixture(scope="session")
def k8s(cluster: local_cluster.Cluster) -> Any:
    """Admin kubernetes.client.ApiClient."""
    return cluster.api_client()


def wait_for(check: Any, timeout: float = 30, interval: float = 0.2, what: str = "") -> Any:
    """Poll `check()` until it returns something truthy; return it or fail with `what`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}: last={last!r}")


@pytest.fixture
def namespace(cluster: local_cluster.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount; deleted after the test."""
    base = request.node.name.lower().replace("_", "-")
    base = "".join(c for c in base if c.isalnum() or c == "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        timeout=30,
        what=f"ServiceAccount default in {name}",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def crd(cluster: local_cluster.Cluster) -> Path:
    """The TracingConfig CRD installed from crds/tracingconfig.yaml and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/tracingconfigs.tracing.xray-operator.dev",
    )
    # Discovery caches in kubectl can lag the CRD by a moment.
    wait_for(
        lambda: cluster.kubectl("get", "tc", "-A", check=False).returncode == 0,
        timeout=30,
        what="the tc short name in discovery",
    )
    return CRD_FILE


@pytest.fixture(scope="module")
def operator(cluster: local_cluster.Cluster, moto_server: Any) -> Iterator[Any]:
    """(Per test module: tests that drive the reconcile functions directly must not race a
    running operator.) The operator as a process, authenticated as its own ServiceAccount from
    manifests/install.yaml (so a missing RBAC rule fails the tests), with AWS pointed at the
    session's moto server. Tests may kill and restart it (`operator.kill()`, `operator.start()`)."""
    from xray_dev.operator_proc import running_operator

    with running_operator(cluster, **moto_server.env()) as op:
        yield op
