"""Local evaluation of identity policies (and a permissions boundary) for one request.

Follows the IAM evaluation logic for a single account: an explicit Deny wins, then an
Allow is needed, otherwise the request is implicitly denied. With a permissions boundary
the request must be allowed by both. Every "maybe" (a condition that cannot be evaluated)
keeps the answer at UNKNOWN unless a definite Deny already decides it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from xray_operator.policy.conditions import Context, evaluate_conditions
from xray_operator.policy.document import (
    NamedPolicy,
    Statement,
    action_matches,
    resource_matches,
)

ADMIN_POLICY_ARNS = frozenset(
    {
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "arn:aws-us-gov:iam::aws:policy/AdministratorAccess",
        "arn:aws-cn:iam::aws:policy/AdministratorAccess",
    }
)


class Decision(enum.Enum):
    # Values follow the EvalDecision strings of IAM SimulatePrincipalPolicy.
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"
    UNKNOWN = "unknown"

    @property
    def denied(self) -> bool:
        return self in (Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY)


@dataclass(frozen=True)
class Evaluation:
    action: str
    decision: Decision
    why: str = ""  # the policy that denied, or what could not be evaluated


def _statement_applies(statement: Statement, action: str, resource: str) -> bool:
    if statement.not_actions is not None:
        if action_matches(statement.not_actions, action):
            return False
    elif not action_matches(statement.actions, action):
        return False
    if statement.not_resources is not None:
        return not resource_matches(statement.not_resources, resource)
    if statement.resources is None:
        return True
    return resource_matches(statement.resources, resource)


def _label(policy: NamedPolicy, statement: Statement) -> str:
    return f"{policy.name} ({statement.sid})" if statement.sid else policy.name


def evaluate(
    policies: Sequence[NamedPolicy], action: str, context: Context, resource: str = "*"
) -> Evaluation:
    deny_maybe = ""
    allow_by = ""
    allow_maybe = ""
    for policy in policies:
        for statement in policy.statements:
            if not _statement_applies(statement, action, resource):
                continue
            cond = evaluate_conditions(statement.conditions, context)
            if cond.value is False:
                continue
            where = _label(policy, statement)
            if statement.effect == "Deny":
                if cond.value is True:
                    return Evaluation(
                        action, Decision.EXPLICIT_DENY, f"explicitly denied by {where}"
                    )
                deny_maybe = deny_maybe or f"{cond.why} (Deny in {where})"
            elif statement.effect == "Allow":
                if cond.value is True:
                    allow_by = allow_by or where
                else:
                    allow_maybe = allow_maybe or f"{cond.why} (Allow in {where})"
    if not allow_by and not allow_maybe:
        return Evaluation(action, Decision.IMPLICIT_DENY, "no policy allows it")
    if deny_maybe:
        return Evaluation(action, Decision.UNKNOWN, deny_maybe)
    if allow_by:
        return Evaluation(action, Decision.ALLOWED, f"allowed by {allow_by}")
    return Evaluation(action, Decision.UNKNOWN, allow_maybe)


def combine_boundary(identity: Evaluation, boundary: Evaluation) -> Evaluation:
    """A permissions boundary caps what identity policies allow; both must allow."""
    for result in (identity, boundary):
        if result.decision is Decision.EXPLICIT_DENY:
            return result
    if boundary.decision is Decision.IMPLICIT_DENY:
        return Evaluation(
            identity.action, Decision.IMPLICIT_DENY, "not allowed by the permissions boundary"
        )
    if identity.decision is Decision.IMPLICIT_DENY:
        return identity
    if boundary.decision is Decision.UNKNOWN:
        return boundary
    return identity


def evaluate_actions(
    policies: Sequence[NamedPolicy],
    actions: Sequence[str],
    context: Context,
    boundary: NamedPolicy | None = None,
    resource: str = "*",
) -> list[Evaluation]:
    results = []
    for action in actions:
        result = evaluate(policies, action, context, resource)
        if boundary is not None:
            result = combine_boundary(result, evaluate([boundary], action, context, resource))
        results.append(result)
    return results


def is_star(values: Sequence[str] | None) -> bool:
    return values is not None and any(v.strip() in ("*", "*:*") for v in values)


def over_privileged(policies: Sequence[NamedPolicy]) -> list[str]:
    """Names of policies with a statement allowing every action on every resource."""
    found: list[str] = []
    for policy in policies:
        if policy.arn in ADMIN_POLICY_ARNS:
            found.append(policy.name)
            continue
        for statement in policy.statements:
            if (
                statement.effect == "Allow"
                and statement.not_actions is None
                and is_star(statement.actions)
                and statement.not_resources is None
                and is_star(statement.resources)
            ):
                found.append(policy.name)
                break
    return found
