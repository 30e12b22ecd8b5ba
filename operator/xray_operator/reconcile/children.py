"""Apply a TracingConfig's children with server-side apply, and only when something differs.

An apply of an identical object does not change etcd, but it is still a write request that an
API server must admit and process. So each child is compared with its live copy first: the
live object must contain every desired field (drift check) and carry the hash of the desired
object (so a field we stopped setting is noticed too). Only a mismatch costs a PATCH.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from xray_operator.constants import (
    API_VERSION,
    FIELD_MANAGER,
    INSTANCE_LABEL,
    KIND,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)
from xray_operator.reconcile.kube import Kube

Obj = dict[str, Any]
APPLIED_HASH_ANNOTATION = "xray-operator.dev/applied-hash"
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "DaemonSet"),
)


@dataclass
class ChildrenResult:
    applied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    live: dict[str, Obj] = field(default_factory=dict)  # "Kind/name" -> object after apply


def ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def owner_reference(tc: Obj) -> Obj:
    meta = tc["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def with_ownership(obj: Obj, tc: Obj) -> Obj:
    """`obj` with the owner reference and the applied-hash annotation."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    out: Obj = json.loads(json.dumps(obj))
    meta = out["metadata"]
    meta["ownerReferences"] = [owner_reference(tc)]
    meta.setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = digest
    return out


def contains(live: Any, desired: Any) -> bool:
    """True if every field of `desired` is present with the same value in `live`.

    Lists are compared item by item and must have the same length: the API server keeps our
    lists (ports, env, volumes) in the order we gave, and may only add defaults inside items.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            k in live and contains(live[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def owned_by(obj: Obj, tc: Obj) -> bool:
    uid = tc["metadata"]["uid"]
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences", []))


def ours(obj: Obj, tc: Obj) -> bool:
    """Ours: owned by this TracingConfig, or labelled as the child of one with its name (a
    previous incarnation whose garbage collection has not happened yet)."""
    labels = obj["metadata"].get("labels", {})
    return owned_by(obj, tc) or (
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
        and labels.get(INSTANCE_LABEL) == tc["metadata"]["name"]
    )


def in_sync(live: Obj | None, desired: Obj) -> bool:
    return live is not None and contains(live, desired)


def find_conflicts(kube: Kube, tc: Obj, desired: list[Obj], live: dict[str, Obj]) -> list[str]:
    """Names taken by objects this operator does not own. Fills `live` as it reads."""
    conflicts = []
    for obj in desired:
        meta = obj["metadata"]
        current = kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if current is None:
            continue
        current.setdefault("apiVersion", obj["apiVersion"])
        current.setdefault("kind", obj["kind"])
        live[ref(obj)] = current
        if not ours(current, tc):
            conflicts.append(
                f"{obj['kind']} {meta['namespace']}/{meta['name']} already exists and is not "
                "managed by this TracingConfig; delete or rename it, or rename the TracingConfig"
            )
    return conflicts


def apply_children(kube: Kube, tc: Obj, desired: list[Obj]) -> ChildrenResult:
    """Apply every desired child that is missing or differs. Nothing is applied when any name
    is taken by a foreign object: a half-applied daemon set-up is worse than none."""
    result = ChildrenResult()
    known: dict[str, Obj] = {}
    wanted = [with_ownership(obj, tc) for obj in desired]
    result.conflicts = find_conflicts(kube, tc, wanted, known)
    if result.conflicts:
        result.live = known
        return result
    for obj in wanted:
        key = ref(obj)
        if in_sync(known.get(key), obj):
            result.unchanged.append(key)
            result.live[key] = known[key]
            continue
        result.live[key] = kube.apply(obj, field_manager=FIELD_MANAGER, force=True)
        result.applied.append(key)
    return result


def prune_children(kube: Kube, tc: Obj, desired: list[Obj]) -> list[str]:
    """Delete children of this TracingConfig that are no longer desired."""
    wanted = {ref(obj) for obj in desired}
    meta = tc["metadata"]
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{INSTANCE_LABEL}={meta['name']}"
    deleted = []
    for api_version, kind in CHILD_KINDS:
        for obj in kube.list(api_version, kind, meta["namespace"], label_selector=selector):
            if ref(obj) in wanted or not owned_by(obj, tc):
                continue
            name = obj["metadata"]["name"]
            if kube.delete(api_version, kind, meta["namespace"], name, uid=obj["metadata"]["uid"]):
                deleted.append(ref(obj))
    return deleted
