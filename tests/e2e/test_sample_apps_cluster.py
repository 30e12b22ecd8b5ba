"""The sample manifests on the real API server: accepted as written, and their pods admitted in
a namespace that enforces Pod Security "restricted" (what a careful cluster admin sets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from xray_dev.cluster import Cluster
from xray_dev.fixtures_cluster import wait_for
from xray_dev.tracepath import SAMPLE_APPS, SAMPLE_SERVICES

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def running_pods(cluster: Cluster, namespace: str, service: str) -> list[dict[str, Any]]:
    result = cluster.kubectl("get", "pods", "-n", namespace, "-o", "json",
                             "-l", f"app.kubernetes.io/name={service}")
    return [p for p in json.loads(result.stdout)["items"]
            if p.get("status", {}).get("phase") == "Running"]


def test_sample_apps_run_where_pod_security_restricted_is_enforced(
    cluster: Cluster, namespace: str,
) -> None:
    cluster.kubectl("label", "namespace", namespace,
                    "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    for service in SAMPLE_SERVICES:
        # --dry-run=server first: the API server's own validation, field by field, with
        # warnings for deprecated or unknown fields turned into a failure.
        for extra in (["--dry-run=server"], []):
            result = cluster.kubectl("apply", "--server-side", "--field-manager=e2e",
                                     "--warnings-as-errors", "-n", namespace,
                                     "-f", str(SAMPLE_APPS / service / "k8s.yaml"), *extra)
            assert "created" in result.stdout or "serverside-applied" in result.stdout

    for service in SAMPLE_SERVICES:
        try:
            wait_for(lambda s=service: running_pods(cluster, namespace, s), timeout=120,
                     what=f"a Running {service} pod")
        except AssertionError as error:
            # A pod refused by Pod Security never exists; the ReplicaSet's events say why.
            events = cluster.kubectl("get", "events", "-n", namespace, check=False).stdout
            error.add_note(events)
            raise
