"""The SimulatePrincipalPolicy path, with botocore's Stubber (moto does not implement it).

Stubber fails the test on any call that was not queued, so these also pin down which AWS
calls the checker makes, in which order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from xray_operator.policy import XRAY_ACTIONS
from xray_operator.reconcile.aws import CheckerError
from xray_operator.reconcile.iam import RoleChecker

REGION = "eu-central-1"
ROLE = "arn:aws:iam::111122223333:role/k8s-nodes"
ROLE_B = "arn:aws:iam::111122223333:role/gpu-nodes"
ALLOW_XRAY = json.dumps({"Statement": [{"Effect": "Allow", "Action": "xray:*", "Resource": "*"}]})


def client() -> Any:
    return boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="https://iam.invalid",  # never reached: Stubber answers every call
    )


@pytest.fixture
def stubs() -> Iterator[tuple[RoleChecker, Stubber, Stubber]]:
    iam, probe = client(), client()
    with Stubber(iam) as reads, Stubber(probe) as sim:
        yield RoleChecker(iam, probe, REGION, use_simulator=True), reads, sim
        reads.assert_no_pending_responses()
        sim.assert_no_pending_responses()


def role(arn: str = ROLE) -> dict[str, Any]:
    name = arn.rsplit("/", 1)[-1]
    return {
        "Role": {
            "Path": "/",
            "RoleName": name,
            "RoleId": "AROAEXAMPLEEXAMPLE1",
            "Arn": arn,
            "CreateDate": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            "AssumeRolePolicyDocument": json.dumps({"Statement": []}),
        }
    }


def queue_role_reads(reads: Stubber, arn: str = ROLE, inline: dict[str, str] | None = None) -> None:
    name = arn.rsplit("/", 1)[-1]
    reads.add_response("get_role", role(arn), {"RoleName": name})
    reads.add_response(
        "list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False}
    )
    reads.add_response(
        "list_role_policies", {"PolicyNames": list(inline or {}), "IsTruncated": False}
    )
    for policy_name, document in (inline or {}).items():
        reads.add_response(
            "get_role_policy",
            {"RoleName": name, "PolicyName": policy_name, "PolicyDocument": document},
            {"RoleName": name, "PolicyName": policy_name},
        )


def simulation(decisions: dict[str, str], **extra: Any) -> dict[str, Any]:
    results = []
    for action in XRAY_ACTIONS:
        item: dict[str, Any] = {
            "EvalActionName": action,
            "EvalDecision": decisions.get(action, "allowed"),
        }
        item.update(extra.get(action, {}))
        results.append(item)
    return {"EvaluationResults": results, "IsTruncated": False}


def test_simulator_answer_wins_and_carries_the_region(stubs: Any) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_response(
        "simulate_principal_policy",
        simulation({}),
        {
            "PolicySourceArn": ROLE,
            "ActionNames": list(XRAY_ACTIONS),
            "ResourceArns": ["*"],
            "ContextEntries": [
                {
                    "ContextKeyName": "aws:RequestedRegion",
                    "ContextKeyValues": [REGION],
                    "ContextKeyType": "string",
                }
            ],
        },
    )
    # No policy documents at all: local evaluation would say "denied"; the simulator knows
    # better (e.g. permissions via a path the checker cannot read).
    reads.add_response(
        "list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False}
    )
    reads.add_response("list_role_policies", {"PolicyNames": [], "IsTruncated": False})
    result, _ = checker.check_role("nodeRole", ROLE, ["node-a"])
    assert result.allowed == "True"
    assert "IAM policy simulator" in result.message


def test_simulator_explicit_deny_names_the_policy(stubs: Any) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_response(
        "simulate_principal_policy",
        simulation(
            {"xray:PutTelemetryRecords": "explicitDeny"},
            **{
                "xray:PutTelemetryRecords": {"MatchedStatements": [{"SourcePolicyId": "scp-guard"}]}
            },
        ),
    )
    queue_role_reads_after_get(reads)
    result, _ = checker.check_role("nodeRole", ROLE, ["node-a"])
    assert result.allowed == "False"
    assert result.missing_actions == ("xray:PutTelemetryRecords",)
    assert "scp-guard" in result.message
    assert result.reason == "ExplicitDeny"


def test_simulator_implicit_deny_is_missing(stubs: Any) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_response(
        "simulate_principal_policy", simulation({a: "implicitDeny" for a in XRAY_ACTIONS[2:]})
    )
    queue_role_reads_after_get(reads)
    result, _ = checker.check_role("nodeRole", ROLE, [])
    assert result.missing_actions == XRAY_ACTIONS[2:]
    assert result.fix == "attach AWSXRayDaemonWriteAccess to role k8s-nodes"


def test_simulator_missing_context_values_is_unknown(stubs: Any) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_response(
        "simulate_principal_policy",
        simulation(
            {"xray:PutTraceSegments": "implicitDeny"},
            **{"xray:PutTraceSegments": {"MissingContextValues": ["aws:SourceVpc"]}},
        ),
    )
    queue_role_reads_after_get(reads)
    result, _ = checker.check_role("nodeRole", ROLE, [])
    assert result.allowed == "Unknown"
    assert result.missing_actions == ()
    assert "aws:SourceVpc" in result.message


def queue_role_reads_after_get(reads: Stubber, inline: dict[str, str] | None = None) -> None:
    reads.add_response(
        "list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False}
    )
    reads.add_response(
        "list_role_policies", {"PolicyNames": list(inline or {}), "IsTruncated": False}
    )
    for policy_name, document in (inline or {}).items():
        reads.add_response(
            "get_role_policy",
            {"RoleName": "k8s-nodes", "PolicyName": policy_name, "PolicyDocument": document},
        )


@pytest.mark.parametrize("code", ["AccessDenied", "Throttling", "InternalFailure"])
def test_simulator_unavailable_falls_back_to_local_evaluation(stubs: Any, code: str) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_client_error("simulate_principal_policy", service_error_code=code, http_status_code=403)
    queue_role_reads_after_get(reads, {"xray": ALLOW_XRAY})
    result, _ = checker.check_role("nodeRole", ROLE, ["node-a"])
    assert result.allowed == "True"
    assert "local evaluation" in result.message


def test_denied_simulator_is_asked_once_per_run(stubs: Any) -> None:
    checker, reads, sim = stubs
    sim.add_client_error("simulate_principal_policy", service_error_code="AccessDenied")
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    queue_role_reads_after_get(reads, {"xray": ALLOW_XRAY})
    queue_role_reads(reads, ROLE_B)  # second role: reads only, no second simulator call
    first, _ = checker.check_role("nodeRole", ROLE, ["a"])
    second, _ = checker.check_role("nodeRole", ROLE_B, ["b"])
    assert (first.allowed, second.allowed) == ("True", "False")
    assert second.missing_actions == XRAY_ACTIONS


def test_simulator_denied_and_policy_read_denied_is_a_checker_error(stubs: Any) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_client_error("simulate_principal_policy", service_error_code="AccessDenied")
    reads.add_response(
        "list_attached_role_policies", {"AttachedPolicies": [], "IsTruncated": False}
    )
    reads.add_response("list_role_policies", {"PolicyNames": ["xray"], "IsTruncated": False})
    reads.add_client_error(
        "get_role_policy", service_error_code="AccessDenied", http_status_code=403
    )
    result, _ = checker.check_role("nodeRole", ROLE, ["node-a"])
    assert (result.allowed, result.reason, result.missing_actions) == (
        "Unknown",
        "CheckerError",
        (),
    )
    assert "iam:GetRolePolicy" in result.message
    assert result.fix == "grant the operator's role iam:GetRolePolicy"


def test_throttled_reads_are_a_checker_error_not_missing(stubs: Any) -> None:
    checker, reads, _ = stubs
    reads.add_client_error("get_role", service_error_code="Throttling", http_status_code=400)
    result, _ = checker.check_role("nodeRole", ROLE, ["node-a"])
    assert (result.allowed, result.reason, result.missing_actions) == (
        "Unknown",
        "CheckerError",
        (),
    )
    assert "throttled" in result.message


def test_simulator_works_but_policies_unreadable_still_answers(stubs: Any) -> None:
    checker, reads, sim = stubs
    reads.add_response("get_role", role(), {"RoleName": "k8s-nodes"})
    sim.add_response("simulate_principal_policy", simulation({}))
    reads.add_client_error("list_attached_role_policies", service_error_code="AccessDenied")
    result, _ = checker.check_role("nodeRole", ROLE, ["node-a"])
    assert result.allowed == "True"
    assert "over-privilege not checked" in result.message


def test_missing_role_is_a_finding_not_a_checker_error(stubs: Any) -> None:
    checker, reads, _ = stubs
    reads.add_client_error("get_role", service_error_code="NoSuchEntity", http_status_code=404)
    result, _ = checker.check_role("irsa", ROLE, [])
    assert (result.allowed, result.reason) == ("False", "RoleNotFound")


@pytest.mark.parametrize(
    ("code", "describe", "fix"),
    [
        ("Throttling", "throttled", ""),
        (
            "AccessDenied",
            "not allowed to call iam:GetRole",
            "grant the operator's role iam:GetRole",
        ),
        ("UnauthorizedOperation", "not allowed", "grant the operator's role iam:GetRole"),
        ("NoCredentials", "no AWS credentials", "give the operator AWS credentials"),
        ("ServiceUnavailable", "failed calling iam:GetRole", ""),
    ],
)
def test_checker_error_wording(code: str, describe: str, fix: str) -> None:
    error = CheckerError("iam:GetRole", code, "detail")
    assert describe in error.describe()
    assert error.fix.startswith(fix)
