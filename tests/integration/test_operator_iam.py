"""The operator runs the IAM check itself and reports it in status, conditions and Events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import yaml

from xray_dev.cluster import Cluster
from xray_dev.fixtures_cluster import wait_for
from xray_dev.moto import (
    XRAY_DAEMON_POLICY_ARN,
    MotoServer,
    create_role,
    irsa_trust,
    policy,
    register_oidc_provider,
)
from xray_dev.operator_proc import OperatorProcess

pytestmark = pytest.mark.integration


def get_tc(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        json.loads(cluster.kubectl("get", "tc", name, "-n", namespace, "-o", "json").stdout)
    )


def iam_condition(tc: dict[str, Any]) -> dict[str, Any]:
    for cond in (tc.get("status") or {}).get("conditions", []):
        if cond["type"] == "IAMPermissionsVerified":
            return dict(cond)
    return {}


def apply_irsa_config(cluster: Cluster, namespace: str, name: str, role_arn: str) -> None:
    body = {
        "apiVersion": "tracing.xray-operator.dev/v1alpha1",
        "kind": "TracingConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "region": "us-east-1",
            "serviceAccount": {"roleArn": role_arn},
            "iam": {"check": True, "identity": "irsa"},
        },
    }
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=test", "-f", "-", input=yaml.safe_dump(body)
    )


def test_irsa_role_allowed_and_then_missing_a_permission(
    cluster: Cluster, operator: OperatorProcess, aws: MotoServer, namespace: str
) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    register_oidc_provider(iam)
    good = create_role(
        iam,
        f"xray-{namespace[-5:]}-good",
        trust=irsa_trust(namespace, "xray-daemon"),
        managed=[XRAY_DAEMON_POLICY_ARN],
    )
    apply_irsa_config(cluster, namespace, "xray", good)
    tc = wait_for(
        lambda: (
            (t := get_tc(cluster, namespace, "xray"))
            and iam_condition(t).get("status") == "True"
            and t
        ),
        timeout=60,
        what="IAMPermissionsVerified=True",
    )
    identity = tc["status"]["iam"]["identities"][0]
    assert (identity["kind"], identity["roleArn"], identity["allowed"]) == ("irsa", good, "True")
    assert tc["status"]["iam"]["allowed"] == "True"

    partial = policy(
        {
            "Effect": "Allow",
            "Resource": "*",
            "Action": [
                "xray:PutTraceSegments",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
        }
    )
    bad = create_role(
        iam,
        f"xray-{namespace[-5:]}-bad",
        trust=irsa_trust(namespace, "xray-daemon"),
        inline={"xray": partial},
    )
    apply_irsa_config(cluster, namespace, "xray", bad)
    tc = wait_for(
        lambda: (
            (t := get_tc(cluster, namespace, "xray"))
            and iam_condition(t).get("status") == "False"
            and t
        ),
        timeout=60,
        what="IAMPermissionsVerified=False",
    )
    identity = tc["status"]["iam"]["identities"][0]
    assert identity["missingActions"] == ["xray:PutTelemetryRecords"]
    ready = next(c for c in tc["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    events = json.loads(
        cluster.kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "involvedObject.name=xray",
            "-o",
            "json",
        ).stdout
    )["items"]
    messages = [e["message"] for e in events if e["type"] == "Warning"]
    assert any(
        "PutTelemetryRecords" in m and bad.split("/")[-1] in m and "AWSXRayDaemonWriteAccess" in m
        for m in messages
    ), messages


def test_iam_check_off_makes_no_aws_claim(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = {
        "apiVersion": "tracing.xray-operator.dev/v1alpha1",
        "kind": "TracingConfig",
        "metadata": {"name": "quiet", "namespace": namespace},
        "spec": {"region": "us-east-1", "iam": {"check": False}},
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(body))
    tc = wait_for(
        lambda: (
            (t := get_tc(cluster, namespace, "quiet"))
            and iam_condition(t).get("reason") == "CheckDisabled"
            and t
        ),
        timeout=60,
        what="CheckDisabled",
    )
    assert iam_condition(tc)["status"] == "Unknown"
    assert "iam" not in tc["status"]
