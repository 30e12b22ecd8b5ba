"""Run the IAM check for a TracingConfig and put the result into its status and Events.

When to check is decided by the caller (on spec change, and every `iam.recheckInterval`; with
backoff after a checker error). Writing is frugal: the status changes when the result changes,
and otherwise at most once per recheck interval (to move `checkedAt`), so an unchanged result
costs no write between rechecks.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from xray_operator.reconcile.iam import check_tracingconfig
from xray_operator.reconcile.kube import Kube
from xray_operator.reconcile.status import StatusChange, update_status
from xray_operator.render.status import Cond

Obj = dict[str, Any]
_DURATION = re.compile(r"(\d+)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_INTERVAL = 3600.0


@dataclass
class IamOutcome:
    checked: bool = False
    checker_error: bool = False
    status_written: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def interval_seconds(tc: Obj) -> float:
    text = str(((tc.get("spec") or {}).get("iam") or {}).get("recheckInterval") or "1h")
    total = sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(text))
    return max(60.0, total or DEFAULT_INTERVAL)


def check_enabled(tc: Obj) -> bool:
    return bool(((tc.get("spec") or {}).get("iam") or {}).get("check", True))


def _parse(stamp: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def seconds_since_check(tc: Obj, now: dt.datetime | None = None) -> float | None:
    iam = (tc.get("status") or {}).get("iam") or {}
    checked = _parse(iam.get("checkedAt", ""))
    if checked is None:
        return None
    return ((now or dt.datetime.now(dt.UTC)) - checked).total_seconds()


def _without_time(iam: Obj | None) -> Obj | None:
    if not iam:
        return None
    return {k: v for k, v in iam.items() if k != "checkedAt"}


def iam_change(fresh: Obj, new_iam: Obj | None, cond: Cond) -> StatusChange | None:
    """The status change for a check result, or None when nothing worth a write changed."""
    current = (fresh.get("status") or {}).get("iam")
    same = _without_time(current) == _without_time(new_iam)
    age = seconds_since_check(fresh)
    fresh_enough = age is not None and age < interval_seconds(fresh)
    conds = {c.get("type"): c for c in (fresh.get("status") or {}).get("conditions", [])}
    old = conds.get(cond.type, {})
    cond_same = (old.get("status"), old.get("reason"), old.get("message")) == (
        cond.status,
        cond.reason,
        cond.message,
    )
    if same and cond_same and (new_iam is None or fresh_enough):
        return None
    fields: Obj = {"iam": new_iam if not same or not fresh_enough else current}
    return StatusChange(fields=fields, conditions=[cond])


def run_iam_check(kube: Kube, tc: Obj) -> IamOutcome:
    """Check now (blocking: AWS and API calls) and write the status if it changed."""
    meta = tc["metadata"]
    outcome = IamOutcome()
    if not check_enabled(tc):
        cond = Cond(
            "IAMPermissionsVerified",
            "Unknown",
            "CheckDisabled",
            "spec.iam.check is false; the daemon's permissions are not checked",
        )
        result = update_status(
            kube, meta["namespace"], meta["name"], lambda fresh: iam_change(fresh, None, cond)
        )
        outcome.status_written = result.written
        return outcome

    nodes = kube.list("v1", "Node")
    report = check_tracingconfig(tc, nodes)
    if report is None:  # disabled between the read and now
        return outcome
    outcome.checked = True
    outcome.checker_error = report.has_checker_error
    raw = report.condition()
    cond = Cond(raw["type"], raw["status"], raw["reason"], raw["message"])
    new_iam = report.to_status()
    result = update_status(
        kube, meta["namespace"], meta["name"], lambda fresh: iam_change(fresh, new_iam, cond)
    )
    outcome.status_written = result.written
    # Events only when the verdict changed, not on every recheck with the same answer.
    if any(c.type == "IAMPermissionsVerified" for c in result.transitions):
        outcome.events = [(e.type, e.reason, e.message) for e in report.events()]
    return outcome
