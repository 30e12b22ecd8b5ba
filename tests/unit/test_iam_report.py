"""What users read: status.iam, the IAMPermissionsVerified condition, Events, the CLI table."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from xray_operator.cli.check_iam_cmd import exit_code, render_json, render_table
from xray_operator.policy import XRAY_ACTIONS, IamReport, IdentityResult
from xray_operator.reconcile.aws_ec2 import parse_provider_id, split_nodes
from xray_operator.reconcile.iam import (
    check_tracingconfig,
    checker_retry_delay,
    inputs_from_tracingconfig,
    nodes_for_daemon,
)

WHEN = dt.datetime(2026, 11, 27, 23, 0, 5, tzinfo=dt.UTC)
ARN = "arn:aws:iam::111122223333:role/k8s-nodes"


def identity(allowed: str, reason: str, **kw: Any) -> IdentityResult:
    base: dict[str, Any] = {
        "kind": "nodeRole",
        "role_arn": ARN,
        "nodes": ("node-a",),
        "allowed": allowed,
        "reason": reason,
        "message": "msg",
    }
    base.update(kw)
    return IdentityResult(**base)


def report(*identities: IdentityResult, unchecked: tuple[str, ...] = ()) -> IamReport:
    return IamReport(WHEN, "us-east-1", identities, unchecked)


def test_status_shape_is_exactly_the_contract() -> None:
    r = report(
        identity("False", "MissingPermissions", missing_actions=("xray:PutTelemetryRecords",))
    )
    assert r.to_status() == {
        "checkedAt": "2026-11-27T23:00:05Z",
        "allowed": "False",
        "identities": [
            {
                "kind": "nodeRole",
                "roleArn": ARN,
                "nodes": ["node-a"],
                "allowed": "False",
                "missingActions": ["xray:PutTelemetryRecords"],
                "overPrivileged": False,
                "message": "msg",
            }
        ],
    }


@pytest.mark.parametrize(
    ("states", "status", "reason", "code"),
    [
        (["True", "True"], "True", "Verified", 0),
        (["True", "False"], "False", "MissingPermissions", 1),
        (["Unknown", "False"], "False", "MissingPermissions", 1),
        (["True", "Unknown"], "Unknown", "Unverifiable", 3),
        ([], "Unknown", "NoCheckableIdentity", 3),
    ],
)
def test_overall_condition_and_cli_exit_code(
    states: list[str], status: str, reason: str, code: int
) -> None:
    reasons = {"True": "Allowed", "False": "MissingPermissions", "Unknown": "Unverifiable"}
    r = report(*(identity(s, reasons[s]) for s in states))
    condition = r.condition()
    assert condition["type"] == "IAMPermissionsVerified"
    assert (condition["status"], condition["reason"]) == (status, reason)
    assert exit_code(r) == code


def test_checker_error_is_reported_as_such() -> None:
    r = report(identity("Unknown", "CheckerError", message="the checker was throttled"))
    assert r.has_checker_error
    assert r.condition()["reason"] == "CheckerError"
    assert r.events()[0].reason == "IAMCheckFailed"
    assert exit_code(r) == 3


def test_events_name_role_missing_actions_and_fix() -> None:
    r = report(
        identity(
            "False",
            "MissingPermissions",
            message="cannot call xray:PutTelemetryRecords in us-east-1",
            missing_actions=("xray:PutTelemetryRecords",),
            fix="attach AWSXRayDaemonWriteAccess to role k8s-nodes",
        ),
        identity(
            "True",
            "Allowed",
            role_arn="arn:aws:iam::111122223333:role/admin",
            nodes=("node-b",),
            over_privileged=True,
            over_privileged_by=("AdministratorAccess",),
        ),
        unchecked=("fargate-1",),
    )
    events = r.events()
    assert [(e.type, e.reason) for e in events] == [
        ("Warning", "MissingPermissions"),
        ("Warning", "IAMOverPrivileged"),
        ("Normal", "IAMNodeNotCheckable"),
    ]
    assert events[0].message == (
        "node role k8s-nodes (nodes node-a): cannot call xray:PutTelemetryRecords in us-east-1. "
        "Fix: attach AWSXRayDaemonWriteAccess to role k8s-nodes"
    )
    assert "AdministratorAccess" in events[1].message and "admin" in events[1].message
    assert "fargate-1" in r.condition()["message"]


def test_table_and_json_output() -> None:
    r = report(
        identity(
            "False",
            "MissingPermissions",
            missing_actions=XRAY_ACTIONS,
            fix="attach AWSXRayDaemonWriteAccess to role k8s-nodes",
        ),
        unchecked=("kind-worker",),
    )
    table = render_table("obs/xray", r, [])
    lines = table.splitlines()
    assert lines[0].startswith("TracingConfig obs/xray")
    header = next(line for line in lines if line.startswith("KIND"))
    row = lines[lines.index(header) + 1]
    assert row.split() == ["nodeRole", "k8s-nodes", "node-a", "False", "all", "5", "no"]
    assert "  fix: attach AWSXRayDaemonWriteAccess to role k8s-nodes" in lines
    assert "not checkable (no EC2 providerID): kind-worker" in table
    assert lines[-1] == "IAMPermissionsVerified=False (MissingPermissions)"
    assert '"uncheckedNodes": [\n    "kind-worker"\n  ]' in render_json("obs/xray", r, [])


@pytest.mark.parametrize(
    ("provider_id", "expected"),
    [
        ("aws:///us-east-1a/i-0123456789abcdef0", ("i-0123456789abcdef0", "us-east-1")),
        ("aws:///eu-west-3c/i-0abc", ("i-0abc", "eu-west-3")),
        ("aws:///us-gov-west-1a/i-0abc", ("i-0abc", "us-gov-west-1")),
        ("aws:///us-west-2-lax-1a/i-0abc", ("i-0abc", "us-west-2")),
        ("aws:///i-0abc", None),
        ("aws:///us-east-1a/fargate-ip-10-0-1-2.ec2.internal", None),
        ("kind://docker/kind/kind-worker", None),
        ("", None),
    ],
)
def test_provider_ids(provider_id: str, expected: tuple[str, str] | None) -> None:
    assert parse_provider_id(provider_id, "ap-south-1") == expected


def test_split_nodes_keeps_uncheckable_nodes_aside() -> None:
    nodes = [
        {"metadata": {"name": "b"}, "spec": {"providerID": "aws:///us-east-1b/i-0b"}},
        {"metadata": {"name": "z"}, "spec": {}},
        {"metadata": {"name": "a"}},
    ]
    targets, unchecked = split_nodes(nodes, "us-east-1")
    assert [(t.node, t.instance_id, t.region) for t in targets] == [("b", "i-0b", "us-east-1")]
    assert unchecked == ["a", "z"]


def test_inputs_from_tracingconfig() -> None:
    body = {
        "metadata": {"name": "xray", "namespace": "obs"},
        "spec": {
            "region": "eu-west-1",
            "serviceAccount": {"roleArn": ""},
            "iam": {"check": False, "identity": "nodeRole"},
            "daemon": {
                "nodeSelector": {"pool": "general"},
                "roleArn": "arn:aws:iam::111122223333:role/xray-writer",
            },
        },
    }
    inputs = inputs_from_tracingconfig(body)
    assert inputs.region == "eu-west-1"
    assert inputs.irsa_role_arn is None  # empty string means "no IRSA"
    assert inputs.service_account == ("obs", "xray-daemon")
    assert (inputs.check, inputs.identity_mode) == (False, "nodeRole")
    assert inputs.daemon_role_arn == "arn:aws:iam::111122223333:role/xray-writer"
    nodes = [
        {"metadata": {"name": "g", "labels": {"pool": "general"}}},
        {"metadata": {"name": "x", "labels": {"pool": "gpu"}}},
        {"metadata": {"name": "n"}},
    ]
    assert [n["metadata"]["name"] for n in nodes_for_daemon(nodes, inputs.node_selector)] == ["g"]
    assert len(nodes_for_daemon(nodes, {})) == 3


class _NoAws:
    """A boto3.Session stand-in that fails the test if anything asks it for a client."""

    def client(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no AWS call may be made when spec.iam.check is false")


def test_check_disabled_makes_no_aws_call() -> None:
    body = {
        "metadata": {"name": "xray", "namespace": "obs"},
        "spec": {"region": "us-east-1", "iam": {"check": False}},
    }
    nodes = [{"metadata": {"name": "n"}, "spec": {"providerID": "aws:///us-east-1a/i-0a"}}]
    assert check_tracingconfig(body, nodes, session=_NoAws()) is None  # type: ignore[arg-type]


def test_checker_retry_backs_off_and_is_capped() -> None:
    delays = [checker_retry_delay(n) for n in range(8)]
    assert delays[:3] == [30.0, 60.0, 120.0]
    assert delays == sorted(delays)
    assert max(delays) == 900.0
