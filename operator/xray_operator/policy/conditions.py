"""Three-valued evaluation of IAM `Condition` blocks.

The result is True, False or None (cannot tell). The checker only knows a few request
context keys (the region the daemon sends to, the principal); for any other key, operator
or policy variable it answers None, because guessing "allowed" would hide a real outage
and guessing "denied" would send people to fix a policy that works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xray_operator.policy.document import wildcard_match

Tri = bool | None
Context = Mapping[str, Sequence[str]]  # keys in lower case; IAM keys are case-insensitive


@dataclass(frozen=True)
class ConditionResult:
    value: Tri
    why: str = ""  # set when value is None: which key/operator could not be evaluated


def _equals(a: str, b: str) -> bool:
    return a == b


def _equals_ci(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _like(pattern: str, value: str) -> bool:
    return wildcard_match(pattern, value)


def _bool(a: str, b: str) -> bool:
    return a.lower() == b.lower()


# base operator -> (compare(policy_value, context_value), negated)
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "stringequals": (_equals, False),
    "stringnotequals": (_equals, True),
    "stringequalsignorecase": (_equals_ci, False),
    "stringnotequalsignorecase": (_equals_ci, True),
    "stringlike": (_like, False),
    "stringnotlike": (_like, True),
    "arnequals": (_like, False),  # ARN operators accept wildcards like StringLike
    "arnlike": (_like, False),
    "arnnotequals": (_like, True),
    "arnnotlike": (_like, True),
    "bool": (_bool, False),
}


def _evaluate_key(
    operator: str, key: str, expected: Sequence[str], context: Context
) -> ConditionResult:
    name = operator
    qualifier = ""
    if ":" in name:
        qualifier, name = name.split(":", 1)
        qualifier = qualifier.lower()
    name = name.lower()
    if_exists = name.endswith("ifexists")
    if if_exists:
        name = name[: -len("ifexists")]

    values = context.get(key.lower())
    if values is None:
        # Not knowing a key is not the same as it being absent at request time
        # (aws:SourceIp is always there), so IfExists does not rescue it.
        return ConditionResult(None, f"condition key {key} cannot be evaluated")
    if any("${" in v for v in expected):
        return ConditionResult(None, f"policy variable in condition on {key}")

    if name == "null":
        # Null: "true" means the key must be absent; known keys are present.
        wanted_absent = [v.lower() == "true" for v in expected]
        return ConditionResult(any(not absent for absent in wanted_absent))

    known = _OPERATORS.get(name)
    if known is None or qualifier not in ("", "foranyvalue", "forallvalues"):
        return ConditionResult(None, f"condition operator {operator} is not evaluated locally")
    compare, negated = known

    def matches(value: str) -> bool:
        return any(compare(pattern, value) for pattern in expected)

    if qualifier == "forallvalues":
        return ConditionResult(all(matches(v) != negated for v in values))
    if qualifier == "foranyvalue":
        return ConditionResult(any(matches(v) != negated for v in values))
    hit = any(matches(v) for v in values)
    return ConditionResult(hit != negated)


def evaluate_conditions(
    conditions: Mapping[str, Mapping[str, Sequence[str]]], context: Context
) -> ConditionResult:
    """All operators and keys must hold (AND); False beats None, None beats True."""
    unknown: ConditionResult | None = None
    for operator, block in conditions.items():
        for key, expected in block.items():
            result = _evaluate_key(operator, key, expected, context)
            if result.value is False:
                return result
            if result.value is None and unknown is None:
                unknown = result
    return unknown if unknown is not None else ConditionResult(True)


def make_context(values: Mapping[str, str | Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {k.lower(): (v,) if isinstance(v, str) else tuple(v) for k, v in values.items()}
