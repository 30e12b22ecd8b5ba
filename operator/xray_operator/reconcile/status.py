"""Status writes for a TracingConfig: read fresh, change what differs, write once.

Several flows own parts of the status (daemons, IAM, injection). Each calls `update_status`
with its own fields and conditions; Ready is derived from all conditions every time, and the
merge patch carries only the top-level keys whose value changed, so a flow that changes
nothing writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xray_operator.constants import API_VERSION, KIND
from xray_operator.reconcile.kube import Kube, KubeError
from xray_operator.render.status import (
    Cond,
    merge_conditions,
    ready_condition,
    status_patch,
    transitions,
)

Obj = dict[str, Any]


@dataclass
class StatusChange:
    fields: Obj = field(default_factory=dict)
    conditions: list[Cond] = field(default_factory=list)


@dataclass
class StatusResult:
    tc: Obj | None
    written: bool = False
    transitions: list[Cond] = field(default_factory=list)


def compute(tc: Obj, change: StatusChange) -> tuple[Obj, list[Cond]]:
    """(status patch, condition transitions) for `change` applied to `tc`. Pure."""
    current = tc.get("status") or {}
    generation = tc["metadata"].get("generation")
    conditions = merge_conditions(
        current.get("conditions", []), change.conditions, generation=generation, now=None
    )
    others = [
        Cond(c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
        for c in conditions
        if c["type"] != "Ready"
    ]
    ready = ready_condition(others)
    conditions = merge_conditions(conditions, [ready], generation=generation)
    desired = {**change.fields, "conditions": conditions}
    updates = [*change.conditions, ready]
    return status_patch(current, desired), transitions(current.get("conditions", []), updates)


def update_status(
    kube: Kube,
    namespace: str,
    name: str,
    make_change: Callable[[Obj], StatusChange | None],
    *,
    attempts: int = 5,
    current: Obj | None = None,
) -> StatusResult:
    """Read the TracingConfig, let `make_change` decide, write the difference (if any).

    The patch carries the resourceVersion it was computed from, so two flows (or two threads)
    writing at once cannot lose each other's conditions: the later one gets 409 Conflict and
    computes again from the fresh object. `current`, an object the caller just received (a
    watch event), saves the first read; a stale one only costs the 409 and a retry."""
    for attempt in range(attempts):
        tc = (
            current
            if attempt == 0 and current is not None
            else kube.get(API_VERSION, KIND, namespace, name)
        )
        if tc is None or tc["metadata"].get("deletionTimestamp"):
            return StatusResult(tc=None)
        change = make_change(tc)
        if change is None:
            return StatusResult(tc=tc)
        patch, changed = compute(tc, change)
        if not patch:
            return StatusResult(tc=tc, transitions=changed)
        body = {"metadata": {"resourceVersion": tc["metadata"]["resourceVersion"]}, "status": patch}
        try:
            updated = kube.merge_patch(
                API_VERSION, KIND, namespace, name, body, subresource="status"
            )
        except KubeError as err:
            if err.conflict and attempt + 1 < attempts:
                continue
            raise
        return StatusResult(tc=updated, written=True, transitions=changed)
    raise AssertionError("unreachable")
