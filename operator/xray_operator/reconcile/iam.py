"""IAM preflight: may the identity the X-Ray daemon runs as send traces to the region?

Entry points: `check_tracingconfig(body, nodes)` for the operator (None, and no AWS call,
when spec.iam.check is false) and underneath it `check_identities(...) -> IamReport`, which
takes plain values rather than the TracingConfig model (`inputs_from_tracingconfig` maps
one to the other). Neither raises for AWS errors: those end up as identities with allowed
"Unknown" and reason "CheckerError" (`report.has_checker_error` tells the caller to retry
with backoff). Both block; run them off the event loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import boto3

from xray_operator.policy import (
    XRAY_ACTIONS,
    IamReport,
    IdentityResult,
    evaluate_actions,
    judge_role,
    make_context,
    over_privileged,
    parse_document,
    trust_admits,
    trust_admits_role,
)
from xray_operator.policy.report import (
    CHECKER_ERROR,
    INSTANCE_NOT_FOUND,
    MANAGED_POLICY,
    NO_INSTANCE_PROFILE,
    NO_IRSA_ROLE,
    TRUST_POLICY_MISMATCH,
    UNVERIFIABLE,
    IdentityKind,
    TriStatus,
    role_name,
)
from xray_operator.policy.trust import ASSUME_ROLE_ACTION
from xray_operator.reconcile.aws import (
    CheckerError,
    NotFound,
    ec2_client,
    iam_client,
    iam_probe_client,
)
from xray_operator.reconcile.aws_ec2 import resolve_roles, split_nodes
from xray_operator.reconcile.aws_iam import (
    RolePolicies,
    get_role,
    oidc_provider_exists,
    role_policies,
    simulate,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient

__all__ = [
    "CheckerError",
    "IamReport",
    "IdentityInputs",
    "IdentityResult",
    "RoleChecker",
    "check_identities",
    "check_tracingconfig",
    "checker_retry_delay",
    "inputs_from_tracingconfig",
    "nodes_for_daemon",
]

IDENTITY_MODES = ("auto", "nodeRole", "irsa")


@dataclass(frozen=True)
class IdentityInputs:
    region: str
    irsa_role_arn: str | None
    identity_mode: str
    service_account: tuple[str, str]
    check: bool
    node_selector: dict[str, str]
    daemon_role_arn: str | None = None


def inputs_from_tracingconfig(body: Mapping[str, Any]) -> IdentityInputs:
    """Plain inputs from a TracingConfig object (dict, camelCase as stored in the cluster)."""
    meta = body.get("metadata", {})
    spec = body.get("spec", {})
    iam = spec.get("iam") or {}
    selector = (spec.get("daemon") or {}).get("nodeSelector") or {}
    return IdentityInputs(
        region=str(spec.get("region") or ""),
        irsa_role_arn=(spec.get("serviceAccount") or {}).get("roleArn") or None,
        identity_mode=str(iam.get("identity") or "auto"),
        # The daemon's ServiceAccount is named after the TracingConfig (see render/).
        service_account=(str(meta.get("namespace", "")), f"{meta.get('name', '')}-daemon"),
        check=bool(iam.get("check", True)),
        node_selector={str(k): str(v) for k, v in selector.items()},
        daemon_role_arn=(spec.get("daemon") or {}).get("roleArn") or None,
    )


def nodes_for_daemon(
    nodes: Sequence[Mapping[str, Any]], node_selector: Mapping[str, str] | None
) -> list[Mapping[str, Any]]:
    """Only nodes the daemon is scheduled on matter (spec.daemon.nodeSelector)."""
    if not node_selector:
        return list(nodes)
    return [
        n
        for n in nodes
        if all(
            (n.get("metadata", {}).get("labels") or {}).get(k) == v
            for k, v in node_selector.items()
        )
    ]


def _unknown(
    kind: IdentityKind, role_arn: str, nodes: Sequence[str], exc: CheckerError
) -> IdentityResult:
    return IdentityResult(
        kind=kind,
        role_arn=role_arn,
        nodes=tuple(nodes),
        allowed="Unknown",
        reason=CHECKER_ERROR,
        message=exc.describe(),
        fix=exc.fix,
    )


class RoleChecker:
    """Checks roles with one IAM client for reads and one retry-less client for the simulator."""

    def __init__(self, iam: IAMClient, probe: IAMClient, region: str, use_simulator: bool) -> None:
        self.iam = iam
        self.probe = probe
        self.region = region
        # Flipped off after the first failure: one denied probe per run, not one per role.
        self.use_simulator = use_simulator

    def context(self, role_arn: str) -> dict[str, tuple[str, ...]]:
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        return make_context(
            {
                "aws:RequestedRegion": self.region,
                "aws:PrincipalArn": role_arn,
                "aws:PrincipalAccount": account,
            }
        )

    def check_role(
        self, kind: IdentityKind, role_arn: str, nodes: Sequence[str], assume_target: str = ""
    ) -> tuple[IdentityResult, dict[str, Any] | None]:
        """The verdict on one role, and the role as IAM returned it (None if unreadable).

        Checks the X-Ray actions, or with `assume_target` only sts:AssumeRole on that role."""
        actions = (ASSUME_ROLE_ACTION,) if assume_target else XRAY_ACTIONS
        resource = assume_target or "*"
        role: dict[str, Any] | None = None
        try:
            try:
                role = get_role(self.iam, role_arn)
            except NotFound:
                return (
                    IdentityResult(
                        kind=kind,
                        role_arn=role_arn,
                        nodes=tuple(nodes),
                        allowed="False",
                        reason="RoleNotFound",
                        message=f"role {role_arn} does not exist",
                        fix=f"create role {role_name(role_arn)} with {MANAGED_POLICY} attached",
                    ),
                    None,
                )
            evaluations = None
            if self.use_simulator:
                evaluations = simulate(self.probe, role_arn, actions, self.region, resource)
                self.use_simulator = evaluations is not None
            source = "IAM policy simulator"
            policies: RolePolicies | None = None
            note = ""
            try:
                policies = role_policies(self.iam, role)
            except CheckerError as exc:
                if evaluations is None:
                    raise
                note = f"; over-privilege not checked: {exc.describe()}"
            if evaluations is None:
                assert policies is not None  # role_policies raised otherwise
                source = "local evaluation"
                evaluations = evaluate_actions(
                    policies.identity,
                    actions,
                    self.context(role_arn),
                    policies.boundary,
                    resource,
                )
            broad = over_privileged(policies.identity) if policies else []
            result = judge_role(
                kind=kind,
                role_arn=role_arn,
                nodes=nodes,
                region=self.region,
                evaluations=evaluations,
                over_privileged_by=broad,
                source=source,
                assume_target=assume_target,
            )
            return replace(result, message=result.message + note), role
        except CheckerError as exc:
            return _unknown(kind, role_arn, nodes, exc), role

    def check_irsa(
        self, role_arn: str, service_account: tuple[str, str], assume_target: str = ""
    ) -> IdentityResult:
        result, role = self.check_role("irsa", role_arn, (), assume_target)
        if role is None:
            return result  # role missing or unreadable: already said so
        namespace, name = service_account
        trust_document = role.get("AssumeRolePolicyDocument") or {"Statement": []}
        trust = trust_admits(parse_document(trust_document), namespace, name)
        if trust.admits is True:
            try:
                if not oidc_provider_exists(self.iam, trust.provider):
                    return replace(
                        result,
                        allowed="False",
                        reason=TRUST_POLICY_MISMATCH,
                        message=f"OIDC provider {trust.provider} named in the trust policy is "
                        f"not registered in IAM; {result.message}",
                        fix="register the cluster's OIDC issuer as an IAM OIDC provider "
                        "(eksctl utils associate-iam-oidc-provider)",
                    )
            except (CheckerError, NotFound):
                pass  # the trust policy itself admits the ServiceAccount; good enough
            return result
        if trust.admits is False:
            return replace(
                result,
                allowed="False",
                reason=TRUST_POLICY_MISMATCH,
                message=f"{trust.why}; {result.message}",
                fix=f"allow sts:AssumeRoleWithWebIdentity for {trust.subject} in the trust "
                f"policy of role {role_name(role_arn)} (condition <oidc-issuer>:sub)"
                + (f"; also {result.fix}" if result.allowed == "False" and result.fix else ""),
            )
        if result.allowed == "True":  # trust undecidable, permissions fine
            return replace(
                result,
                allowed="Unknown",
                reason=UNVERIFIABLE,
                message=f"{trust.why}; {result.message}",
            )
        return result

    def check_daemon_role(self, role_arn: str, base: Sequence[IdentityResult]) -> IdentityResult:
        """The -r role: X-Ray actions, and a trust policy that admits every base role."""
        result, role = self.check_role("daemonRole", role_arn, ())
        if role is None:
            return result
        trust = parse_document(role.get("AssumeRolePolicyDocument") or {"Statement": []})
        verdicts = [trust_admits_role(trust, b.role_arn) for b in base if b.role_arn]
        refused = [v.subject for v in verdicts if v.admits is False]
        if refused:
            names = ", ".join(role_name(arn) for arn in refused)
            return replace(
                result,
                allowed="False",
                reason=TRUST_POLICY_MISMATCH,
                message=f"trust policy does not let role(s) {names} assume it; {result.message}",
                fix=f"add {', '.join(refused)} to Principal.AWS of the trust policy of role "
                f"{role_name(role_arn)} (action sts:AssumeRole)"
                + (f"; also {result.fix}" if result.allowed == "False" and result.fix else ""),
            )
        undecided = [v for v in verdicts if v.admits is None]
        if undecided and result.allowed == "True":
            return replace(
                result,
                allowed="Unknown",
                reason=UNVERIFIABLE,
                message=f"{undecided[0].why}; {result.message}",
            )
        return result

    def check_nodes(
        self,
        nodes: Sequence[Mapping[str, Any]],
        ec2_for: Callable[[str], EC2Client],
        assume_target: str = "",
    ) -> tuple[list[IdentityResult], list[str]]:
        targets, unchecked = split_nodes(nodes, self.region)
        if not targets:
            return [], unchecked
        try:
            resolved = resolve_roles(targets, ec2_for, self.iam)
        except CheckerError as exc:
            return [_unknown("nodeRole", "", sorted(t.node for t in targets), exc)], unchecked
        # Nodes sharing a role share one entry; so do all nodes with the same problem
        # (a big node group without an instance profile is one finding, not hundreds).
        groups: dict[tuple[str, str], list[str]] = {}
        refs: dict[tuple[str, str], list[str]] = {}
        for node, (what, ref) in sorted(resolved.items()):
            key = (what, ref) if what in ("role", "profileWithoutRole") else (what, "")
            groups.setdefault(key, []).append(node)
            refs.setdefault(key, []).append(ref)
        results: list[IdentityResult] = []
        for (what, ref), members in sorted(groups.items()):
            if what == "role":
                results.append(self.check_role("nodeRole", ref, members, assume_target)[0])
                continue
            shown = ", ".join(refs[(what, ref)][:5]) + (" ..." if len(members) > 5 else "")
            problems: dict[str, tuple[str, str, TriStatus, str]] = {
                "noProfile": (
                    f"instance(s) {shown} have no instance profile, so the daemon there has no "
                    "credentials",
                    NO_INSTANCE_PROFILE,
                    "False",
                    f"attach an instance profile whose role has {MANAGED_POLICY}",
                ),
                "profileWithoutRole": (
                    f"instance profile {ref} contains no role",
                    NO_INSTANCE_PROFILE,
                    "False",
                    f"add a role with {MANAGED_POLICY} to instance profile {role_name(ref)}",
                ),
                "notFound": (
                    f"instance(s) {shown} not found in EC2 (other account or region?)",
                    INSTANCE_NOT_FOUND,
                    "Unknown",
                    "run the check with credentials for the account that owns the nodes",
                ),
            }
            message, reason, allowed, fix = problems[what]
            results.append(
                IdentityResult(
                    kind="nodeRole",
                    role_arn="",
                    nodes=tuple(members),
                    allowed=allowed,
                    reason=reason,
                    message=message,
                    fix=fix,
                )
            )
        return results, unchecked


def check_identities(
    *,
    region: str,
    irsa_role_arn: str | None,
    identity_mode: str,
    service_account: tuple[str, str],
    nodes: Sequence[Mapping[str, Any]],
    session: boto3.Session | None = None,
    use_simulator: bool = True,
    now: dt.datetime | None = None,
    daemon_role_arn: str | None = None,
) -> IamReport:
    """Check the daemon's identity: the IRSA role, or every node's instance role.

    `identity_mode` "auto" picks IRSA when `irsa_role_arn` is set, node roles otherwise.
    `nodes` are Node objects as dicts (only metadata.name and spec.providerID are read).
    With `daemon_role_arn` (spec.daemon.roleArn, the daemon's -r) the daemon sends traces as
    that role: it is checked for the X-Ray actions and its trust policy, and the base
    identities only for sts:AssumeRole on it.
    """
    if identity_mode not in IDENTITY_MODES:
        raise ValueError(
            f"identity must be one of {', '.join(IDENTITY_MODES)}, not {identity_mode!r}"
        )
    session = session or boto3.Session()
    checker = RoleChecker(
        iam_client(session, region), iam_probe_client(session, region), region, use_simulator
    )
    assume = daemon_role_arn or ""
    mode = identity_mode
    if mode == "auto":
        mode = "irsa" if irsa_role_arn else "nodeRole"
    identities: list[IdentityResult]
    unchecked: list[str] = []
    if mode == "irsa":
        if irsa_role_arn:
            identities = [checker.check_irsa(irsa_role_arn, service_account, assume)]
        else:
            identities = [
                IdentityResult(
                    kind="irsa",
                    role_arn="",
                    nodes=(),
                    allowed="False",
                    reason=NO_IRSA_ROLE,
                    message="iam.identity is irsa but spec.serviceAccount.roleArn is empty",
                    fix="set spec.serviceAccount.roleArn, or set iam.identity to auto",
                )
            ]
    else:
        clients: dict[str, EC2Client] = {}

        def ec2_for(node_region: str) -> EC2Client:
            if node_region not in clients:
                clients[node_region] = ec2_client(session, node_region)
            return clients[node_region]

        identities, unchecked = checker.check_nodes(nodes, ec2_for, assume)
    if daemon_role_arn:
        identities.append(checker.check_daemon_role(daemon_role_arn, identities))
    return IamReport(
        checked_at=now or dt.datetime.now(dt.UTC),
        region=region,
        identities=tuple(identities),
        unchecked_nodes=tuple(unchecked),
    )


def check_tracingconfig(
    body: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    *,
    session: boto3.Session | None = None,
) -> IamReport | None:
    """The operator's one-call entry: None (and no AWS call at all) when spec.iam.check is
    false; otherwise the report for the daemon's identity on the nodes it is scheduled on.
    Blocking: call it through asyncio.to_thread from a handler."""
    inputs = inputs_from_tracingconfig(body)
    if not inputs.check:
        return None
    return check_identities(
        region=inputs.region,
        irsa_role_arn=inputs.irsa_role_arn,
        identity_mode=inputs.identity_mode,
        service_account=inputs.service_account,
        nodes=nodes_for_daemon(nodes, inputs.node_selector),
        session=session,
        daemon_role_arn=inputs.daemon_role_arn,
    )


def checker_retry_delay(attempt: int, *, base: float = 30.0, cap: float = 900.0) -> float:
    """Seconds to wait before re-running a check that hit a checker error (attempt 0, 1, ...).

    botocore already retried the single calls; this is the slower, operator-level backoff
    (kopf.TemporaryError(delay=...)), capped so a fixed permission is noticed soon."""
    return float(min(cap, base * 2 ** max(0, attempt)))
