"""Injection handlers: keep opted-in workloads' pod templates in step with their TracingConfig.

Watch events only (`on.event`), never on.create/on.update: those make kopf store its state in
annotations on the object, i.e. a write to every Deployment in the cluster. Here a workload is
written only when its injected env must change.

Triggers:
- a workload event: that workload (cheap when nothing changes: planning is pure);
- a change of what TracingConfigs ask for (address, mode, default, deletion) or of a namespace's
  inject annotation: one pass over all workloads, coalesced when changes come in bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import kopf

from xray_operator.constants import (
    GROUP,
    INJECT_ANNOTATION,
    INJECTED_BY_ANNOTATION,
    INJECTION_FIELD_MANAGER,
    PLURAL,
    VERSION,
)
from xray_operator.handlers.common import plain
from xray_operator.reconcile import runtime
from xray_operator.reconcile.injection import (
    injected_counts,
    reconcile_all,
    reconcile_workload,
    targets_from_configs,
)
from xray_operator.render.injection import Target
from xray_operator.settings import Settings

log = logging.getLogger(__name__)

# Seconds to wait after a change before the full pass, so a burst (operator start, kubectl
# apply -f dir/) costs one pass.
COALESCE_SECONDS = 0.5

_state: dict[str, Any] = {"targets": None, "namespaces": {}, "counts": Counter()}
_dirty: asyncio.Event | None = None
_runner: asyncio.Task[None] | None = None


@kopf.index(GROUP, VERSION, PLURAL)
def injection_targets(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Targets parsed once per TracingConfig change, not on every workload event or admission."""
    obj = plain({k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")})
    return {target.config: target for target in targets_from_configs([obj])}


@kopf.index("", "v1", "namespaces")
def injection_namespaces(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {body["metadata"]["name"]: dict(body["metadata"].get("annotations") or {})}


def targets_from(index: kopf.Index[Any, Any]) -> list[Target]:
    return sorted((t for key in index for t in index[key]), key=lambda t: t.config)


def namespace_annotations_from(index: kopf.Index[Any, Any], namespace: str) -> dict[str, str]:
    for found in index.get(namespace, []):
        return dict(found)
    return {}


def injected_workloads() -> Counter[str]:
    """Workloads carrying injected env per TracingConfig ("ns/name"), as of the last full pass;
    for status.injectedWorkloads."""
    counts: Counter[str] = _state["counts"]
    return counts


def _maybe_ours(workload: Mapping[str, Any], namespace_annotations: Mapping[str, str]) -> bool:
    """Most workloads never opted in and carry nothing of ours: skip them without planning."""
    metadata = workload.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return bool(
        INJECT_ANNOTATION in annotations
        or INJECTED_BY_ANNOTATION in annotations
        or INJECT_ANNOTATION in namespace_annotations
        or any(m.get("manager") == INJECTION_FIELD_MANAGER
               for m in metadata.get("managedFields") or [])
    )


@kopf.on.event("apps", "v1", "deployments")
@kopf.on.event("apps", "v1", "statefulsets")
@kopf.on.event("apps", "v1", "daemonsets")
async def workload_event(
    body: kopf.Body, type: str | None, logger: kopf.Logger, **kwargs: Any
) -> None:
    if type == "DELETED" or body["metadata"].get("deletionTimestamp"):
        return
    namespace = body["metadata"]["namespace"]
    ns_annotations = namespace_annotations_from(kwargs["injection_namespaces"], namespace)
    if not _maybe_ours(body, ns_annotations):
        return
    workload = plain(body)
    targets = targets_from(kwargs["injection_targets"])
    result = await asyncio.to_thread(
        reconcile_workload, runtime.kube(), workload, ns_annotations, targets)
    # Problems that led to a write were posted as Events already; the rest would repeat on
    # every status update of the workload, so they are logged, not posted.
    if not result.wrote:
        for problem in result.problems:
            logger.info(problem)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def tracingconfig_event(**kwargs: Any) -> None:
    targets = targets_from(kwargs["injection_targets"])
    if targets != _state["targets"]:
        _state["targets"] = targets
        _mark_dirty()


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    name = body["metadata"]["name"]
    value = None if type == "DELETED" else (body["metadata"].get("annotations") or {}).get(
        INJECT_ANNOTATION)
    seen: dict[str, str | None] = _state["namespaces"]
    if seen.get(name) != value:
        first_sight = name not in seen
        seen[name] = value
        # At start-up every namespace is "new"; the workloads' own events cover them then.
        if not (first_sight and value is None):
            _mark_dirty()


def _mark_dirty() -> None:
    global _dirty, _runner
    if _dirty is None:
        _dirty = asyncio.Event()
    if _runner is None or _runner.done():
        _runner = asyncio.create_task(_run_passes(_dirty))
    _dirty.set()


async def _run_passes(dirty: asyncio.Event) -> None:
    while True:
        await dirty.wait()
        await asyncio.sleep(COALESCE_SECONDS)
        dirty.clear()
        try:
            await _full_pass()
        except Exception as err:  # a failed pass must not stop later ones
            log.warning("injection pass failed: %s", err)


async def _full_pass() -> None:
    targets = _state["targets"] or []
    namespaces: list[str | None] = list(Settings().namespaces) or [None]
    counts: Counter[str] = Counter()
    for namespace in namespaces:
        results = await asyncio.to_thread(
            reconcile_all, runtime.kube(), targets, namespace)
        counts += injected_counts(results)
    _state["counts"] = counts


@kopf.on.cleanup()
async def stop_passes(**_: Any) -> None:
    if _runner is not None:
        _runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _runner
