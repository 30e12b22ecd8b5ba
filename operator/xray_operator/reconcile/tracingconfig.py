"""Reconcile one TracingConfig: children applied, stale children pruned, status written.

Blocking code (the Kubernetes client is synchronous); handlers run it off the event loop and
post the returned Events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from xray_operator import render
from xray_operator.constants import FIELD_MANAGER
from xray_operator.model import TracingConfig
from xray_operator.reconcile.children import (
    ChildrenResult,
    apply_children,
    in_sync,
    owned_by,
    prune_children,
    ref,
    with_ownership,
)
from xray_operator.reconcile.kube import Kube
from xray_operator.reconcile.status import StatusChange, update_status
from xray_operator.render.status import Cond, daemonset_condition, daemonset_counts

Obj = dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # "Normal" | "Warning"
    reason: str
    message: str


@dataclass
class Outcome:
    children: ChildrenResult | None = None
    status_written: bool = False
    events: list[Event] = field(default_factory=list)
    invalid: str | None = None


def transition_events(transitions: list[Cond]) -> list[Event]:
    """An Event for each condition whose status or reason changed."""
    return [
        Event("Normal" if c.status == "True" else "Warning", c.reason, f"{c.type}: {c.message}")
        for c in transitions
    ]


def default_conflict(tc: Obj, configs: list[Obj]) -> str | None:
    """If `tc` is one of several `default: true` configs and not the oldest, say so."""
    if not (tc.get("spec") or {}).get("default"):
        return None
    defaults = sorted(
        (
            c
            for c in configs
            if (c.get("spec") or {}).get("default") and not c["metadata"].get("deletionTimestamp")
        ),
        key=lambda c: (
            c["metadata"].get("creationTimestamp", ""),
            c["metadata"]["namespace"],
            c["metadata"]["name"],
        ),
    )
    if len(defaults) < 2:
        return None
    names = ", ".join(f"{c['metadata']['namespace']}/{c['metadata']['name']}" for c in defaults)
    winner = defaults[0]["metadata"]
    me = tc["metadata"]
    if (winner["namespace"], winner["name"]) == (me["namespace"], me["name"]):
        return None
    return (
        f"TracingConfigs {names} all have default: true; workloads annotated inject=true "
        f"use {winner['namespace']}/{winner['name']} (the oldest). Set default: false on "
        "all but one"
    )


def invalid_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        parts.append(f"{path}: {e['msg']}")
    return "; ".join(parts)


def default_conditions(tc: Obj, clash: str | None) -> list[Cond]:
    """InjectionHealthy for the default rule: False while clashing; back to True once resolved
    (the injection flow refines it afterwards)."""
    if clash:
        return [Cond("InjectionHealthy", "False", "ConflictingDefault", clash)]
    for cond in (tc.get("status") or {}).get("conditions", []):
        if cond.get("type") == "InjectionHealthy" and cond.get("reason") == "ConflictingDefault":
            return [
                Cond(
                    "InjectionHealthy",
                    "True",
                    "DefaultResolved",
                    "no other TracingConfig claims default: true",
                )
            ]
    return []


def refresh_default_conflict(kube: Kube, tc: Obj, configs: list[Obj]) -> Outcome:
    """Re-evaluate the default: true rule for `tc` after another config changed or went away."""
    outcome = Outcome()
    meta = tc["metadata"]
    clash = default_conflict(tc, configs)
    status = update_status(
        kube,
        meta["namespace"],
        meta["name"],
        lambda fresh: StatusChange(conditions=default_conditions(fresh, clash)),
    )
    outcome.status_written = status.written
    outcome.events.extend(transition_events(status.transitions))
    return outcome


def daemon_status(
    tc: Obj, model: TracingConfig, ds: Obj | None, conflicts: list[str], default_clash: str | None
) -> StatusChange:
    conflict = "; ".join(conflicts) if conflicts else None
    conditions = [
        daemonset_condition(ds, conflict=conflict),
        *default_conditions(tc, default_clash),
    ]
    fields: Obj = {
        "observedGeneration": tc["metadata"].get("generation"),
        "daemonAddress": render.address_for(model),
        "daemonSet": daemonset_counts(ds),
    }
    if not model.spec.iam.check:
        # Said here, in the same write, rather than by the IAM flow in one more.
        fields["iam"] = None
        conditions.append(
            Cond(
                "IAMPermissionsVerified",
                "Unknown",
                "CheckDisabled",
                "spec.iam.check is false; the daemon's permissions are not checked",
            )
        )
    return StatusChange(fields=fields, conditions=conditions)


def reconcile(
    kube: Kube,
    tc: Obj,
    *,
    configs: list[Obj],
    prune: bool = True,
) -> Outcome:
    """Make the children match the spec and write the status. `configs` are all
    TracingConfigs (for the default: true rule)."""
    meta = tc["metadata"]
    outcome = Outcome()
    try:
        model = TracingConfig.from_object(tc)
    except (ValidationError, ValueError) as err:
        # The CRD schema refuses almost everything; what slips through is reported, not retried.
        message = invalid_message(err) if isinstance(err, ValidationError) else str(err)
        outcome.invalid = message
        update_status(
            kube,
            meta["namespace"],
            meta["name"],
            lambda _: StatusChange(
                fields={"observedGeneration": meta.get("generation")},
                conditions=[Cond("DaemonSetAvailable", "False", "InvalidSpec", message)],
            ),
        )
        outcome.events.append(Event("Warning", "InvalidSpec", message))
        return outcome

    desired = render.desired(model)
    result = apply_children(kube, tc, desired)
    outcome.children = result
    if prune and not result.conflicts:
        result.deleted = prune_children(kube, tc, desired)
    clash = default_conflict(tc, configs)
    ds_key = ref(desired[-1])
    ds = result.live.get(ds_key) if not result.conflicts else None

    status = update_status(
        kube,
        meta["namespace"],
        meta["name"],
        lambda fresh: daemon_status(fresh, model, ds, result.conflicts, clash),
    )
    outcome.status_written = status.written
    if result.applied:
        outcome.events.append(Event("Normal", "Applied", "applied " + ", ".join(result.applied)))
    if result.deleted:
        outcome.events.append(Event("Normal", "Pruned", "deleted " + ", ".join(result.deleted)))
    outcome.events.extend(transition_events(status.transitions))
    return outcome


def refresh_daemon_status(kube: Kube, tc: Obj, ds: Obj | None, configs: list[Obj]) -> Outcome:
    """Status only, from a DaemonSet just seen by the watch (no child writes, no reads of them)."""
    outcome = Outcome()
    try:
        model = TracingConfig.from_object(tc)
    except (ValidationError, ValueError):
        return outcome
    meta = tc["metadata"]
    clash = default_conflict(tc, configs)
    status = update_status(
        kube,
        meta["namespace"],
        meta["name"],
        lambda fresh: daemon_status(fresh, model, ds, [], clash),
    )
    outcome.status_written = status.written
    outcome.events.extend(transition_events(status.transitions))
    return outcome


def namespace_terminating(kube: Kube, namespace: str) -> bool:
    ns = kube.get("v1", "Namespace", None, namespace)
    return ns is None or bool(ns["metadata"].get("deletionTimestamp"))


def reconcile_child(
    kube: Kube, tc: Obj, child: Obj, *, deleted: bool, configs: list[Obj]
) -> Outcome:
    """A watched child changed or vanished: put it right if it drifted, and for the DaemonSet
    refresh the status. Reads nothing but the TracingConfig when the child is in sync."""
    outcome = Outcome()
    try:
        model = TracingConfig.from_object(tc)
    except (ValidationError, ValueError):
        return outcome
    key = f"{child['kind']}/{child['metadata']['name']}"
    wanted = next((with_ownership(d, tc) for d in render.desired(model) if ref(d) == key), None)
    if wanted is None:
        return outcome
    current: Obj | None = None if deleted else child
    if current is not None and not owned_by(current, tc):
        return outcome
    if child["metadata"].get("deletionTimestamp"):
        return outcome  # on its way out (namespace or config deletion); its DELETED event follows
    namespace = child["metadata"]["namespace"]
    if (deleted or not in_sync(current, wanted)) and namespace_terminating(kube, namespace):
        return outcome  # the namespace controller is removing everything; don't fight it
    if deleted:
        # The TracingConfig may be going away (garbage collection deletes its children):
        # only re-create for the same live incarnation.
        fresh = kube.get(
            tc["apiVersion"], tc["kind"], tc["metadata"]["namespace"], tc["metadata"]["name"]
        )
        if (
            fresh is None
            or fresh["metadata"].get("deletionTimestamp")
            or fresh["metadata"]["uid"] != tc["metadata"]["uid"]
        ):
            return outcome
    if not in_sync(current, wanted):
        current = kube.apply(wanted, field_manager=FIELD_MANAGER, force=True)
        verb = "re-created" if deleted else "restored"
        outcome.events.append(Event("Normal", "DriftCorrected", f"{verb} {key}"))
    if child["kind"] == "DaemonSet":
        if namespace_terminating(kube, namespace):
            return outcome  # daemons going away with their namespace: nothing to report
        status = refresh_daemon_status(kube, tc, current, configs)
        outcome.status_written = status.status_written
        outcome.events.extend(status.events)
    return outcome
