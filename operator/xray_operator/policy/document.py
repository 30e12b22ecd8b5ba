"""IAM policy documents as plain data: parsing and wildcard matching.

AWS hands documents back as dicts (boto3 decodes them) but older SDKs and hand-written
fixtures give URL-encoded JSON text, so `parse_document` takes either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" | "Deny"
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None  # None: no Resource element (trust policies)
    not_resources: tuple[str, ...] | None = None
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    principal: Any = None
    sid: str = ""


@dataclass(frozen=True)
class NamedPolicy:
    """A policy document together with where it came from, so messages can name it."""

    name: str
    statements: tuple[Statement, ...]
    arn: str = ""  # managed policies only
    inline: bool = False


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(_scalar(v) for v in value)
    return (_scalar(value),)


def _scalar(value: Any) -> str:
    # JSON booleans in conditions ("aws:SecureTransport": true) compare as IAM's "true"/"false".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_document(document: str | Mapping[str, Any]) -> JsonDict:
    if isinstance(document, Mapping):
        return dict(document)
    text = document.strip()
    if not text.startswith("{"):
        text = unquote(text)
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError("a policy document must be a JSON object")
    return loaded


def parse_document(document: str | Mapping[str, Any]) -> tuple[Statement, ...]:
    doc = load_document(document)
    raw = doc.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    statements: list[Statement] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        conditions: dict[str, dict[str, tuple[str, ...]]] = {}
        for operator, block in (item.get("Condition") or {}).items():
            if isinstance(block, Mapping):
                conditions[str(operator)] = {str(k): _strings(v) for k, v in block.items()}
        statements.append(
            Statement(
                effect=str(item.get("Effect", "")),
                actions=_strings(item.get("Action")),
                not_actions=_strings(item["NotAction"]) if "NotAction" in item else None,
                resources=_strings(item["Resource"]) if "Resource" in item else None,
                not_resources=_strings(item["NotResource"]) if "NotResource" in item else None,
                conditions=conditions,
                principal=item.get("Principal"),
                sid=str(item.get("Sid", "")),
            )
        )
    return tuple(statements)


@lru_cache(maxsize=1024)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: `*` any run of characters, `?` exactly one; everything else literal.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL)


def wildcard_match(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(glob, ignore_case).match(value) is not None


def action_matches(patterns: Sequence[str], action: str) -> bool:
    # Action names are case-insensitive in IAM ("XRay:puttracesegments" is fine).
    return any(wildcard_match(p, action, ignore_case=True) for p in patterns)


def resource_matches(patterns: Sequence[str], resource: str) -> bool:
    return any(wildcard_match(p, resource) for p in patterns)
