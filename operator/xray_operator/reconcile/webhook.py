"""The MutatingWebhookConfiguration exists exactly while some TracingConfig uses webhook mode.

Registered only when needed: while it exists the API server calls the operator for every Pod
created outside the excluded namespaces, which is latency nobody should pay for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xray_operator.constants import FIELD_MANAGER
from xray_operator.reconcile.kube import Kube

Obj = dict[str, Any]
KIND = ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")


def sync_configuration(kube: Kube, desired: Obj | None, name: str) -> str | None:
    """Apply `desired` (or delete `name` when None). Returns "applied"/"deleted" when it wrote,
    None when the live object already was as wanted (steady state: no writes)."""
    live = kube.get(*KIND, None, name)
    if desired is None:
        if live is None:
            return None
        kube.delete(*KIND, None, name)
        return "deleted"
    if live is not None and contains(live, desired):
        return None
    kube.apply(desired, field_manager=FIELD_MANAGER, force=True)
    return "applied"


def contains(live: Any, desired: Any) -> bool:
    """Every field of `desired` is in `live` with the same value; the API server adds defaults
    (e.g. matchPolicy, objectSelector {}) that do not count as differences."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        return (isinstance(live, Sequence) and not isinstance(live, str)
                and len(live) == len(desired)
                and all(contains(a, b) for a, b in zip(live, desired, strict=True)))
    return bool(live == desired)
