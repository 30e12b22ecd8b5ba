"""The outcome of an IAM check, shaped for status.iam, the condition and Events.

Pure data so the operator, the `check-iam` command and tests read the same thing.
`allowed` is a string ("True"/"False"/"Unknown") because it goes straight into a
Kubernetes condition status.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

TriStatus = Literal["True", "False", "Unknown"]
# daemonRole: spec.daemon.roleArn, which the daemon assumes (-r) and sends traces as.
IdentityKind = Literal["nodeRole", "irsa", "daemonRole"]
CONDITION_TYPE = "IAMPermissionsVerified"

XRAY_ACTIONS: tuple[str, ...] = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)
MANAGED_POLICY = "AWSXRayDaemonWriteAccess"

# What the operator's own AWS identity needs to run the check (all read-only). The simulator
# is optional: without it the checker reads the policies and evaluates them locally.
CHECKER_ACTIONS: tuple[str, ...] = (
    "ec2:DescribeInstances",
    "iam:GetInstanceProfile",
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:GetOpenIDConnectProvider",
    "iam:SimulatePrincipalPolicy",
)


def checker_policy() -> dict[str, Any]:
    """The IAM policy document to give the operator's role (IRSA) for the IAM check."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "XRayOperatorIamCheck",
                "Effect": "Allow",
                "Action": list(CHECKER_ACTIONS),
                "Resource": "*",
            }
        ],
    }


# Reasons an identity can end up with; CHECKER_ERROR never means "missing permissions".
ALLOWED = "Allowed"
MISSING_PERMISSIONS = "MissingPermissions"
EXPLICIT_DENY = "ExplicitDeny"
TRUST_POLICY_MISMATCH = "TrustPolicyMismatch"
NO_INSTANCE_PROFILE = "NoInstanceProfile"
INSTANCE_NOT_FOUND = "InstanceNotFound"
UNVERIFIABLE = "Unverifiable"
CHECKER_ERROR = "CheckerError"
NO_IRSA_ROLE = "IrsaRoleMissing"


def role_name(role_arn: str) -> str:
    """`arn:aws:iam::123:role/path/k8s-nodes` -> `k8s-nodes` (what the console shows)."""
    return role_arn.rsplit("/", 1)[-1] if role_arn else ""


@dataclass(frozen=True)
class IdentityResult:
    kind: IdentityKind
    role_arn: str
    nodes: tuple[str, ...]
    allowed: TriStatus
    reason: str
    message: str
    missing_actions: tuple[str, ...] = ()
    over_privileged: bool = False
    over_privileged_by: tuple[str, ...] = ()
    fix: str = ""

    @property
    def checker_error(self) -> bool:
        return self.reason == CHECKER_ERROR

    @property
    def subject(self) -> str:
        name = role_name(self.role_arn)
        who = f"role {name}" if name else "no role"
        if self.kind == "irsa":
            return f"IRSA {who}"
        if self.kind == "daemonRole":
            return f"daemon {who} (spec.daemon.roleArn)"
        if self.nodes:
            shown = ", ".join(self.nodes[:5]) + (" ..." if len(self.nodes) > 5 else "")
            return f"node {who} (nodes {shown})"
        return f"node {who}"

    def to_status(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "roleArn": self.role_arn,
            "nodes": list(self.nodes),
            "allowed": self.allowed,
            "missingActions": list(self.missing_actions),
            "overPrivileged": self.over_privileged,
            "message": self.message,
        }


@dataclass(frozen=True)
class IamEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IamReport:
    checked_at: dt.datetime
    region: str
    identities: tuple[IdentityResult, ...]
    # Nodes without an EC2 providerID: not checkable, and not a failure either.
    unchecked_nodes: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> TriStatus:
        states = {i.allowed for i in self.identities}
        if "False" in states:
            return "False"
        if not states or "Unknown" in states:
            return "Unknown"
        return "True"

    @property
    def has_checker_error(self) -> bool:
        """True when the check itself failed somewhere: worth retrying with backoff."""
        return any(i.checker_error for i in self.identities)

    def to_status(self) -> dict[str, Any]:
        return {
            "checkedAt": rfc3339(self.checked_at),
            "allowed": self.allowed,
            "identities": [i.to_status() for i in self.identities],
        }

    def condition(self) -> dict[str, str]:
        """`IAMPermissionsVerified` as {type, status, reason, message}."""
        allowed = self.allowed
        denied = [i for i in self.identities if i.allowed == "False"]
        unknown = [i for i in self.identities if i.allowed == "Unknown"]
        if denied:
            reasons = {i.reason for i in denied}
            reason = reasons.pop() if len(reasons) == 1 else MISSING_PERMISSIONS
            message = "; ".join(f"{i.subject}: {i.message}" for i in denied)
        elif unknown:
            reason = CHECKER_ERROR if any(i.checker_error for i in unknown) else UNVERIFIABLE
            message = "; ".join(f"{i.subject}: {i.message}" for i in unknown)
        elif not self.identities:
            reason = "NoCheckableIdentity"
            message = "no node has an EC2 providerID and no IRSA role is set; nothing to check"
        else:
            reason = "Verified"
            roles = ", ".join(sorted({role_name(i.role_arn) for i in self.identities}))
            message = f"all X-Ray daemon actions are allowed in {self.region} for role(s) {roles}"
            broad = [i for i in self.identities if i.over_privileged]
            if broad:
                message += "; over-privileged: " + ", ".join(i.subject for i in broad)
        if self.unchecked_nodes:
            message += f"; not checkable (no EC2 providerID): {', '.join(self.unchecked_nodes)}"
        return {"type": CONDITION_TYPE, "status": allowed, "reason": reason, "message": message}

    def events(self) -> list[IamEvent]:
        out: list[IamEvent] = []
        for i in self.identities:
            fix = f" Fix: {i.fix}" if i.fix else ""
            if i.allowed == "False":
                out.append(IamEvent("Warning", i.reason, f"{i.subject}: {i.message}.{fix}"))
            elif i.checker_error:
                out.append(IamEvent("Warning", "IAMCheckFailed", f"{i.subject}: {i.message}.{fix}"))
            elif i.allowed == "Unknown":
                out.append(IamEvent("Warning", UNVERIFIABLE, f"{i.subject}: {i.message}.{fix}"))
            if i.over_privileged:
                out.append(
                    IamEvent(
                        "Warning",
                        "IAMOverPrivileged",
                        f"{i.subject} allows every action on every resource via "
                        f"{', '.join(i.over_privileged_by)}; "
                        f"the daemon needs only {MANAGED_POLICY}",
                    )
                )
        if self.unchecked_nodes:
            out.append(
                IamEvent(
                    "Normal",
                    "IAMNodeNotCheckable",
                    "nodes without an EC2 providerID cannot be checked: "
                    + ", ".join(self.unchecked_nodes),
                )
            )
        if self.allowed == "True":
            cond = self.condition()
            out.append(IamEvent("Normal", "IAMPermissionsVerified", cond["message"]))
        return out
