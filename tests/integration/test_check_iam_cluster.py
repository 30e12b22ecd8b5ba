"""`xray-operator check-iam` against the local control plane and a moto server.

The kwok nodes the cluster starts with point at instance ids moto cannot create (moto picks
its own ids, and a Node's providerID cannot be changed once set), so these tests add
kwok-managed Nodes whose providerIDs are the moto instances' ids. They carry a taint so no
other test's DaemonSet lands on them, and a label the TracingConfig's nodeSelector picks.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from xray_dev.moto import (
    XRAY_DAEMON_POLICY_ARN,
    MotoServer,
    create_role,
    launch_instance,
)
from xray_operator.cli.check_iam_cmd import check_iam
from xray_operator.constants import API_VERSION, KIND
from xray_operator.reconcile.iam import check_tracingconfig

pytestmark = pytest.mark.integration

REGION = "us-east-1"
TAINT_KEY = "xray-operator.dev/iam-test"


@pytest.fixture
def kube_env(cluster: Any, aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return cluster


@pytest.fixture
def add_node(kube_env: Any) -> Iterator[Callable[[str, str, str], str]]:
    """Create a kwok-managed Node for an EC2 instance; returns its name. Deleted afterwards."""
    created: list[str] = []

    def add(instance_id: str, zone: str, group: str) -> str:
        name = f"iam-{uuid.uuid4().hex[:6]}"
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "type": "kwok",
                    "topology.kubernetes.io/zone": zone,
                    "xray-operator.dev/iam-test": group,
                },
            },
            "spec": {
                "providerID": f"aws:///{zone}/{instance_id}",
                "taints": [{"key": TAINT_KEY, "value": group, "effect": "NoSchedule"}],
            },
        }
        kube_env.kubectl("create", "-f", "-", input=json.dumps(node))
        created.append(name)
        return name

    yield add
    for name in created:
        kube_env.kubectl("delete", "node", name, "--wait=false", "--ignore-not-found", check=False)


def tracing_config(cluster: Any, namespace: str, name: str, group: str | None, **spec: Any) -> str:
    daemon: dict[str, Any] = (
        {"nodeSelector": {"xray-operator.dev/iam-test": group}} if group else {}
    )
    if group:
        daemon["tolerations"] = [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"region": REGION, "daemon": daemon, **spec},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    return f"{namespace}/{name}"


def run_check(ref: str, output: str = "table") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check_iam(argparse.Namespace(config=ref, output=output), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_passing_cluster_exits_zero(
    kube_env: Any, crd: Path, namespace: str, add_node: Any
) -> None:
    iam = boto3.client("iam", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    create_role(iam, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    group = uuid.uuid4().hex[:8]
    names = sorted(
        add_node(launch_instance(ec2, iam, "k8s-nodes", zone), zone, group)
        for zone in ("us-east-1a", "us-east-1b")
    )
    ref = tracing_config(kube_env, namespace, "xray", group)

    code, out, err = run_check(ref)
    print(out)  # shown with -s; the closing note quotes it
    assert (code, err) == (0, "")
    assert "k8s-nodes" in out
    assert all(n in out for n in names)
    assert "IAMPermissionsVerified=True (Verified)" in out

    code, out, _ = run_check(ref, output="json")
    document = json.loads(out)
    [identity] = document["iam"]["identities"]
    assert identity["nodes"] == names
    assert identity["allowed"] == "True"
    assert document["condition"]["status"] == "True"


def test_failing_cluster_names_role_and_fix(
    kube_env: Any, crd: Path, namespace: str, add_node: Any
) -> None:
    iam = boto3.client("iam", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    create_role(iam, "general-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    create_role(iam, "gpu-nodes")  # the node group someone added later, without X-Ray
    group = uuid.uuid4().hex[:8]
    general = add_node(launch_instance(ec2, iam, "general-nodes"), "us-east-1a", group)
    gpu = add_node(launch_instance(ec2, iam, "gpu-nodes", "us-east-1c"), "us-east-1c", group)
    ref = tracing_config(kube_env, namespace, "xray", group)

    # Through the installed console script, as a person would run it.
    env = dict(os.environ)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "xray-operator"), "check-iam", "--config", ref],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 1, result.stderr
    assert "fix: attach AWSXRayDaemonWriteAccess to role gpu-nodes" in result.stdout
    assert "IAMPermissionsVerified=False (MissingPermissions)" in result.stdout

    _, out, _ = run_check(ref, output="json")
    by_role = {i["roleArn"].rsplit("/", 1)[-1]: i for i in json.loads(out)["iam"]["identities"]}
    assert by_role["general-nodes"]["nodes"] == [general]
    assert by_role["gpu-nodes"]["nodes"] == [gpu]
    assert by_role["gpu-nodes"]["missingActions"] == [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ]


def test_stock_kwok_nodes_unknown_to_ec2_are_unknown_not_missing(
    kube_env: Any, crd: Path, namespace: str
) -> None:
    # The cluster's own kwok nodes claim instances moto has never seen: like running the
    # check with credentials for the wrong account. That must not read as "missing".
    stock = {
        n["metadata"]["name"]
        for n in json.loads(kube_env.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        if n["metadata"]["name"].startswith("kwok-node-")
    }
    assert stock, "the local cluster should start with kwok nodes"
    ref = tracing_config(kube_env, namespace, "xray", None)
    code, out, _ = run_check(ref, output="json")
    document = json.loads(out)
    assert code == 3
    unknown = [i for i in document["iam"]["identities"] if i["allowed"] == "Unknown"]
    assert stock <= {n for i in unknown for n in i["nodes"]}
    assert all(i["missingActions"] == [] for i in unknown)
    assert document["condition"]["status"] in ("Unknown", "False")


def test_irsa_config_checks_the_role_not_the_nodes(
    kube_env: Any, crd: Path, namespace: str
) -> None:
    iam = boto3.client("iam", region_name=REGION)
    arn = create_role(iam, "xray-irsa", managed=[XRAY_DAEMON_POLICY_ARN])  # EC2 trust only
    ref = tracing_config(kube_env, namespace, "tracing", None, serviceAccount={"roleArn": arn})
    code, out, _ = run_check(ref, output="json")
    [identity] = json.loads(out)["iam"]["identities"]
    assert code == 1
    assert identity["kind"] == "irsa"
    assert f"system:serviceaccount:{namespace}:tracing-daemon" in identity["message"]


def test_unknown_config_is_a_usage_error(kube_env: Any, crd: Path, namespace: str) -> None:
    code, out, err = run_check(f"{namespace}/nope")
    assert (code, out) == (2, "")
    assert "not found" in err


def write_iam_status(cluster: Any, namespace: str, name: str, iam_status: dict[str, Any]) -> Any:
    cluster.kubectl(
        "patch",
        "tracingconfig",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"iam": iam_status}}),
    )
    got = json.loads(
        cluster.kubectl("get", "tracingconfig", name, "-n", namespace, "-o", "json").stdout
    )
    return got.get("status", {}).get("iam")


def test_report_status_is_accepted_verbatim_by_the_crd(
    kube_env: Any, crd: Path, namespace: str, add_node: Any
) -> None:
    # status.iam goes through the CRD's structural schema: nothing may be pruned or refused.
    iam = boto3.client("iam", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    create_role(iam, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    create_role(iam, "gpu-nodes")
    group = uuid.uuid4().hex[:8]
    add_node(launch_instance(ec2, iam, "k8s-nodes"), "us-east-1a", group)
    add_node(launch_instance(ec2, iam, "gpu-nodes"), "us-east-1b", group)
    ref = tracing_config(kube_env, namespace, "xray", group)
    body = json.loads(
        kube_env.kubectl("get", "tracingconfig", "xray", "-n", namespace, "-o", "json").stdout
    )
    nodes = json.loads(kube_env.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    report = check_tracingconfig(body, nodes)
    assert report is not None and ref
    status = report.to_status()
    assert len(status["identities"]) == 2
    assert write_iam_status(kube_env, namespace, "xray", status) == status


def test_daemon_role_identity_kind_is_accepted_by_the_crd(
    kube_env: Any, crd: Path, namespace: str
) -> None:
    tracing_config(kube_env, namespace, "xray", None)
    entry = {
        "kind": "daemonRole",
        "roleArn": "arn:aws:iam::123456789012:role/xray-writer",
        "nodes": [],
        "allowed": "True",
        "missingActions": [],
        "overPrivileged": False,
        "message": "all 5 X-Ray daemon actions allowed",
    }
    status = {"checkedAt": "2026-11-28T00:00:00Z", "allowed": "True", "identities": [entry]}
    assert write_iam_status(kube_env, namespace, "xray", status) == status
