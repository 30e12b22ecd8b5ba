"""Pure status logic: conditions with stable transition times, and the minimal status patch.

Kept pure so the rules (when a condition flips, what counts as a change worth a write) are unit
tested without a cluster.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Cond:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    current: list[Obj], updates: list[Cond], *, generation: int | None, now: str | None = None
) -> list[Obj]:
    """Conditions after `updates`; lastTransitionTime moves only when the status flips."""
    by_type = {c.get("type"): dict(c) for c in current}
    stamp = now or now_rfc3339()
    for update in updates:
        old = by_type.get(update.type)
        keep = old is not None and old.get("status") == update.status
        new: Obj = {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": old.get("lastTransitionTime", stamp) if keep and old else stamp,
        }
        if generation is not None:
            new["observedGeneration"] = generation
        by_type[update.type] = new
    order = ["Ready", "DaemonSetAvailable", "IAMPermissionsVerified", "InjectionHealthy"]
    return sorted(
        by_type.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else 99, c["type"]),
    )


def transitions(current: list[Obj], updates: list[Cond]) -> list[Cond]:
    """The updates whose status or reason differs from the current condition (worth an Event)."""
    by_type = {c.get("type"): c for c in current}
    out = []
    for update in updates:
        old = by_type.get(update.type)
        if old is None or old.get("status") != update.status or old.get("reason") != update.reason:
            out.append(update)
    return out


def status_patch(current: Obj, desired: Obj) -> Obj:
    """Top-level status keys whose value differs; empty means no write is needed."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


def daemonset_condition(ds: Obj | None, *, conflict: str | None = None) -> Cond:
    """DaemonSetAvailable from the DaemonSet's own status."""
    if conflict:
        return Cond("DaemonSetAvailable", "False", "NameConflict", conflict)
    if ds is None:
        return Cond(
            "DaemonSetAvailable", "False", "NotCreated", "the daemon DaemonSet does not exist yet"
        )
    status = ds.get("status", {})
    desired = int(status.get("desiredNumberScheduled", 0))
    ready = int(status.get("numberReady", 0))
    available = int(status.get("numberAvailable", 0))
    updated = int(status.get("updatedNumberScheduled", 0))
    observed = status.get("observedGeneration", 0) >= ds.get("metadata", {}).get("generation", 0)
    if desired == 0:
        return Cond(
            "DaemonSetAvailable",
            "False",
            "NoNodes",
            "no node matches the daemon's nodeSelector and tolerations",
        )
    if not observed or updated < desired:
        return Cond(
            "DaemonSetAvailable",
            "False",
            "RollingOut",
            f"{updated}/{desired} daemons updated, {ready} ready",
        )
    if available < desired:
        return Cond(
            "DaemonSetAvailable",
            "False",
            "DaemonsNotReady",
            f"{ready}/{desired} daemons ready; check the daemon pods' events and logs",
        )
    return Cond("DaemonSetAvailable", "True", "AllDaemonsReady", f"{ready}/{desired} daemons ready")


def ready_condition(others: list[Cond]) -> Cond:
    """Ready is True when every other condition that matters is True (Unknown IAM is fine)."""
    for cond in others:
        if cond.status == "False":
            return Cond("Ready", "False", cond.reason, f"{cond.type}: {cond.message}")
    return Cond("Ready", "True", "Reconciled", "the daemons run and the configuration is applied")


def daemonset_counts(ds: Obj | None) -> Obj:
    status = (ds or {}).get("status", {})
    return {
        "desired": int(status.get("desiredNumberScheduled", 0)),
        "ready": int(status.get("numberReady", 0)),
    }
