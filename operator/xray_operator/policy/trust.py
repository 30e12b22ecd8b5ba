"""Does an IRSA role's trust policy let a given ServiceAccount assume it?

EKS pods get a projected token whose `sub` is `system:serviceaccount:<ns>:<name>` and whose
`aud` is `sts.amazonaws.com`; STS checks them against condition keys named after the OIDC
issuer (`oidc.eks.<region>.amazonaws.com/id/<id>:sub`). The checker does not know which
issuer belongs to the cluster, so it accepts any OIDC provider named in the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xray_operator.policy.conditions import Tri, make_context
from xray_operator.policy.document import NamedPolicy, Statement
from xray_operator.policy.evaluate import Decision, evaluate

WEB_IDENTITY_ACTION = "sts:AssumeRoleWithWebIdentity"
_PROVIDER_MARK = ":oidc-provider/"


@dataclass(frozen=True)
class TrustResult:
    admits: Tri
    subject: str
    why: str
    provider: str = ""  # the OIDC provider ARN through which it admits the subject


def _federated(statement: Statement) -> list[str]:
    principal = statement.principal
    if not isinstance(principal, dict):
        return []
    value = principal.get("Federated")
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and _PROVIDER_MARK in v]


def issuer_of(provider_arn: str) -> str:
    return provider_arn.split(_PROVIDER_MARK, 1)[1]


def service_account_subject(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def trust_admits(statements: Sequence[Statement], namespace: str, name: str) -> TrustResult:
    subject = service_account_subject(namespace, name)
    providers = sorted({arn for s in statements for arn in _federated(s)})
    if not providers:
        return TrustResult(
            False,
            subject,
            f"trust policy names no OIDC provider (Principal.Federated), so {subject} cannot "
            "assume the role",
        )
    unknown = ""
    for provider in providers:
        issuer = issuer_of(provider)
        context = make_context({f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"})
        scoped = NamedPolicy(
            name="trust policy",
            statements=tuple(s for s in statements if provider in _federated(s)),
        )
        result = evaluate([scoped], WEB_IDENTITY_ACTION, context)
        if result.decision is Decision.ALLOWED:
            return TrustResult(
                True, subject, f"trust policy admits {subject} via {provider}", provider
            )
        if result.decision is Decision.UNKNOWN:
            unknown = unknown or result.why
    if unknown:
        return TrustResult(
            None, subject, f"cannot tell whether the trust policy admits {subject}: {unknown}"
        )
    return TrustResult(
        False, subject, f"trust policy does not admit {subject} (check the :sub condition)"
    )


ASSUME_ROLE_ACTION = "sts:AssumeRole"


def _aws_principals(statement: Statement) -> list[str]:
    principal = statement.principal
    if principal == "*":
        return ["*"]
    if not isinstance(principal, dict):
        return []
    value = principal.get("AWS")
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def _names_principal(patterns: Sequence[str], role_arn: str) -> bool:
    parts = role_arn.split(":")
    if len(parts) < 6:
        return False
    partition, account = parts[1], parts[4]
    # Naming the account (root or bare id) delegates to the account's own policies, which
    # the caller checks separately as the base identity's sts:AssumeRole permission.
    accepted = {"*", role_arn, account, f"arn:{partition}:iam::{account}:root"}
    return any(p in accepted for p in patterns)


def trust_admits_role(statements: Sequence[Statement], role_arn: str) -> TrustResult:
    """Does a role's trust policy let `role_arn` (the node or IRSA role) call sts:AssumeRole?"""
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    scoped = NamedPolicy(
        name="trust policy",
        statements=tuple(s for s in statements if _names_principal(_aws_principals(s), role_arn)),
    )
    context = make_context({"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account})
    result = evaluate([scoped], ASSUME_ROLE_ACTION, context)
    if result.decision is Decision.ALLOWED:
        return TrustResult(True, role_arn, f"trust policy admits {role_arn}")
    if result.decision is Decision.UNKNOWN:
        return TrustResult(
            None, role_arn, f"cannot tell whether the trust policy admits {role_arn}: {result.why}"
        )
    return TrustResult(False, role_arn, f"trust policy does not let {role_arn} assume it")
