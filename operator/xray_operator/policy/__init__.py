"""Pure IAM logic: policy parsing, local evaluation, trust checks and the report shape.

No AWS calls here; reconcile/iam.py fetches documents and feeds them in.
"""

from xray_operator.policy.conditions import make_context
from xray_operator.policy.document import NamedPolicy, Statement, parse_document
from xray_operator.policy.evaluate import (
    Decision,
    Evaluation,
    evaluate,
    evaluate_actions,
    over_privileged,
)
from xray_operator.policy.report import (
    CONDITION_TYPE,
    XRAY_ACTIONS,
    IamEvent,
    IamReport,
    IdentityResult,
)
from xray_operator.policy.trust import TrustResult, trust_admits, trust_admits_role
from xray_operator.policy.verdict import judge_role

__all__ = [
    "CONDITION_TYPE",
    "XRAY_ACTIONS",
    "Decision",
    "Evaluation",
    "IamEvent",
    "IamReport",
    "IdentityResult",
    "NamedPolicy",
    "Statement",
    "TrustResult",
    "evaluate",
    "evaluate_actions",
    "judge_role",
    "make_context",
    "over_privileged",
    "parse_document",
    "trust_admits",
    "trust_admits_role",
]
