"""Turn per-action decisions about one role into an IdentityResult with a message and a fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xray_operator.policy.evaluate import Decision, Evaluation
from xray_operator.policy.report import (
    ALLOWED,
    EXPLICIT_DENY,
    MANAGED_POLICY,
    MISSING_PERMISSIONS,
    UNVERIFIABLE,
    IdentityKind,
    IdentityResult,
    TriStatus,
    role_name,
)


def judge_role(
    *,
    kind: IdentityKind,
    role_arn: str,
    nodes: Sequence[str],
    region: str,
    evaluations: Sequence[Evaluation],
    over_privileged_by: Sequence[str] = (),
    source: str = "local evaluation",
    assume_target: str = "",
) -> IdentityResult:
    """With `assume_target` the evaluations are for sts:AssumeRole on that role (the daemon's
    -r role): this identity only needs to reach it, the X-Ray calls are made as the target."""
    name = role_name(role_arn)
    missing = tuple(e.action for e in evaluations if e.decision.denied)
    explicit = [e for e in evaluations if e.decision is Decision.EXPLICIT_DENY]
    unknown = [e for e in evaluations if e.decision is Decision.UNKNOWN]

    def result(
        allowed: TriStatus,
        reason: str,
        message: str,
        fix: str,
        missing_actions: tuple[str, ...] = (),
    ) -> IdentityResult:
        return IdentityResult(
            kind=kind,
            role_arn=role_arn,
            nodes=tuple(nodes),
            allowed=allowed,
            reason=reason,
            message=message,
            missing_actions=missing_actions,
            over_privileged=bool(over_privileged_by),
            over_privileged_by=tuple(over_privileged_by),
            fix=fix,
        )

    if assume_target:
        return _judge_assume(result, name, assume_target, evaluations, over_privileged_by, source)
    if missing:
        if len(missing) == len(evaluations) > 1:
            message = f"cannot call any of the {len(missing)} X-Ray daemon actions in {region}"
        else:
            message = f"cannot call {', '.join(missing)} in {region}"
        if explicit:
            message += f" ({explicit[0].why})"
            deny_source = explicit[0].why.removeprefix("explicitly denied by ")
            fix = (
                f"remove or narrow the Deny ({deny_source}) "
                f"on role {name}, then attach {MANAGED_POLICY} if still needed"
            )
            reason = EXPLICIT_DENY
        else:
            fix = f"attach {MANAGED_POLICY} to role {name}"
            reason = MISSING_PERMISSIONS
        return result("False", reason, message, fix, missing)
    if unknown:
        actions = ", ".join(e.action for e in unknown)
        return result(
            "Unknown",
            UNVERIFIABLE,
            f"cannot tell whether {actions} are allowed in {region}: {unknown[0].why}",
            f"check that condition by hand, or attach {MANAGED_POLICY} to role {name}",
        )
    message = f"all {len(evaluations)} X-Ray daemon actions allowed in {region} ({source})"
    fix = ""
    if over_privileged_by:
        message += f"; over-privileged: {', '.join(over_privileged_by)} allows * on *"
        fix = f"replace {', '.join(over_privileged_by)} on role {name} with {MANAGED_POLICY}"
    return result("True", ALLOWED, message, fix)


def _judge_assume(
    result: Callable[..., IdentityResult],
    name: str,
    target: str,
    evaluations: Sequence[Evaluation],
    over_privileged_by: Sequence[str],
    source: str,
) -> IdentityResult:
    target_name = role_name(target)
    grant = f"allow sts:AssumeRole on {target} in a policy of role {name}"
    [evaluation] = evaluations
    if evaluation.decision.denied:
        reason = (
            EXPLICIT_DENY if evaluation.decision is Decision.EXPLICIT_DENY else MISSING_PERMISSIONS
        )
        return result(
            "False",
            reason,
            f"cannot assume the daemon role {target_name} ({evaluation.why})",
            grant,
            (evaluation.action,),
        )
    if evaluation.decision is Decision.UNKNOWN:
        return result(
            "Unknown",
            UNVERIFIABLE,
            f"cannot tell whether it may assume the daemon role {target_name}: {evaluation.why}",
            f"check that condition by hand, or {grant}",
        )
    message = f"may assume the daemon role {target_name} ({source})"
    fix = ""
    if over_privileged_by:
        message += f"; over-privileged: {', '.join(over_privileged_by)} allows * on *"
        fix = f"replace {', '.join(over_privileged_by)} on role {name}: {grant} is all it needs"
    return result("True", ALLOWED, message, fix)
