"""Read a role's policies from IAM and ask IAM's policy simulator about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from xray_operator.policy import Decision, Evaluation, NamedPolicy, parse_document
from xray_operator.policy.document import Statement
from xray_operator.reconcile.aws import aws_call, error_code

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


@dataclass(frozen=True)
class RolePolicies:
    role_arn: str
    identity: tuple[NamedPolicy, ...]
    boundary: NamedPolicy | None
    trust: tuple[Statement, ...]


def role_name_of(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def get_role(iam: IAMClient, role_arn: str) -> dict[str, Any]:
    with aws_call("iam:GetRole"):
        return dict(iam.get_role(RoleName=role_name_of(role_arn))["Role"])


def _managed_policy(iam: IAMClient, arn: str, name: str) -> NamedPolicy:
    with aws_call("iam:GetPolicy"):
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    with aws_call("iam:GetPolicyVersion"):
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"][
            "Document"
        ]
    return NamedPolicy(name=name, arn=arn, statements=parse_document(document))


def role_policies(iam: IAMClient, role: dict[str, Any]) -> RolePolicies:
    """All identity policies (managed and inline), the boundary and the trust policy."""
    name = str(role["RoleName"])
    policies: list[NamedPolicy] = []
    with aws_call("iam:ListAttachedRolePolicies"):
        attached = [
            p
            for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
            for p in page["AttachedPolicies"]
        ]
    for item in attached:
        policies.append(_managed_policy(iam, item["PolicyArn"], item["PolicyName"]))
    with aws_call("iam:ListRolePolicies"):
        inline_names = [
            n
            for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
            for n in page["PolicyNames"]
        ]
    for policy_name in inline_names:
        with aws_call("iam:GetRolePolicy"):
            document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        policies.append(
            NamedPolicy(name=policy_name, statements=parse_document(document), inline=True)
        )
    boundary = None
    boundary_arn = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
    if boundary_arn:
        boundary = _managed_policy(iam, boundary_arn, role_name_of(boundary_arn))
    trust = parse_document(role.get("AssumeRolePolicyDocument") or {"Statement": []})
    return RolePolicies(str(role["Arn"]), tuple(policies), boundary, trust)


def simulate(
    iam: IAMClient, role_arn: str, actions: Sequence[str], region: str, resource: str = "*"
) -> list[Evaluation] | None:
    """IAM's own answer, or None when the simulator is not available to the checker.

    The simulator also accounts for permissions boundaries and evaluates every condition
    operator, so it is preferred; but the operator often may not call it (and moto does not
    implement it). Any failure, throttling included, means "fall back to local evaluation",
    whose reads have their own retries; pass a client without retries (`iam_probe_client`).
    """
    try:
        response = iam.simulate_principal_policy(
            PolicySourceArn=role_arn,
            ActionNames=list(actions),
            ResourceArns=[resource],
            ContextEntries=[
                {
                    "ContextKeyName": "aws:RequestedRegion",
                    "ContextKeyValues": [region],
                    "ContextKeyType": "string",
                }
            ],
        )
    except (ClientError, BotoCoreError, ResponseParserError):
        # e.g. AccessDenied for the operator, or an endpoint without the simulator (moto
        # answers with an HTML 500 page)
        return None
    results: list[Evaluation] = []
    for item in response["EvaluationResults"]:
        action = item["EvalActionName"]
        decision = (
            Decision(item["EvalDecision"])
            if item["EvalDecision"]
            in (
                "allowed",
                "explicitDeny",
                "implicitDeny",
            )
            else Decision.UNKNOWN
        )
        matched = [m.get("SourcePolicyId", "") for m in item.get("MatchedStatements", [])]
        missing = list(item.get("MissingContextValues", []))
        if missing and decision is not Decision.EXPLICIT_DENY:
            # The simulator could not evaluate a condition, so its allow/deny is a guess.
            results.append(
                Evaluation(action, Decision.UNKNOWN, f"condition keys {', '.join(missing)} unknown")
            )
        elif decision is Decision.EXPLICIT_DENY:
            source = matched[0] if matched else "a policy"
            results.append(Evaluation(action, decision, f"explicitly denied by {source}"))
        elif decision is Decision.ALLOWED:
            source = matched[0] if matched else "a policy"
            results.append(Evaluation(action, decision, f"allowed by {source}"))
        else:
            results.append(Evaluation(action, decision, "no policy allows it"))
    return results


def oidc_provider_exists(iam: IAMClient, provider_arn: str) -> bool:
    with aws_call("iam:GetOpenIDConnectProvider"):
        try:
            iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return False
            raise
    return True
