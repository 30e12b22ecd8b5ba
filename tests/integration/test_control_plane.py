"""The local control plane is a real one: controllers, scheduler, kwok nodes and admission."""

from __future__ import annotations

import json

import pytest
import yaml

from xray_dev.cluster import NODE_COUNT, Cluster
from xray_dev.fixtures_cluster import wait_for

pytestmark = pytest.mark.integration

PAUSE = "registry.k8s.io/pause:3.10"


def _running_pods(cluster: Cluster, namespace: str, selector: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if p["status"].get("phase") == "Running"]


def test_nodes_look_like_eks_workers(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == NODE_COUNT
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["topology.kubernetes.io/zone"].startswith("us-east-1")
        assert labels["node.kubernetes.io/instance-type"]
        assert node["spec"]["providerID"].startswith("aws:///us-east-1")
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"


def test_server_reports_pinned_version(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.36.3"


def test_deployment_pods_become_running(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "create", "deployment", "web", f"--image={PAUSE}", "--replicas=2", "-n", namespace
    )
    pods = wait_for(
        lambda: (
            len(_running_pods(cluster, namespace, "app=web")) == 2
            and _running_pods(cluster, namespace, "app=web")
        ),
        timeout=60,
        what="2 Running pods of deployment web",
    )
    assert {p["spec"]["nodeName"] for p in pods} <= {f"kwok-node-{i}" for i in range(NODE_COUNT)}


def test_daemonset_runs_one_pod_per_node(cluster: Cluster, namespace: str) -> None:
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": PAUSE}]},
            },
        },
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(ds))
    pods = wait_for(
        lambda: (
            len(_running_pods(cluster, namespace, "app=agent")) == NODE_COUNT
            and _running_pods(cluster, namespace, "app=agent")
        ),
        timeout=60,
        what="one Running agent pod per node",
    )
    assert len({p["spec"]["nodeName"] for p in pods}) == NODE_COUNT


def test_pod_security_restricted_refuses_privileged_pod(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": namespace},
        "spec": {
            "containers": [{"name": "c", "image": PAUSE, "securityContext": {"privileged": True}}]
        },
    }
    result = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr
    assert "privileged" in result.stderr


def test_identical_server_side_apply_is_a_no_op(cluster: Cluster, namespace: str) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "same", "namespace": namespace},
        "data": {"k": "v"},
    }
    body = yaml.safe_dump(cm)
    first = json.loads(
        cluster.kubectl("apply", "--server-side", "-o", "json", "-f", "-", input=body).stdout
    )
    second = json.loads(
        cluster.kubectl("apply", "--server-side", "-o", "json", "-f", "-", input=body).stdout
    )
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
