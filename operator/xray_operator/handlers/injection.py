"""Injection handlers: keep opted-in workloads' pod templates in step with their TracingConfig.

Watch events only (`on.event`), never on.create/on.update: those make kopf store its state in
annotations on the object, i.e. a write to every Deployment in the cluster. Here a workload is
written only when its injected env must change.

Triggers:
- a workload event: that workload (cheap when nothing changes: planning is pure);
- a change of what TracingConfigs ask for (address, mode, default, deletion) or of a namespace's
  inject annotation: one pass over all workloads, coalesced when changes come in bursts.
The last result per workload is kept, so status.injectedWorkloads and InjectionHealthy are
written from memory (and only when they change), without listing workloads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
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
    InjectionResult,
    forget,
    injected_counts,
    reconcile_all,
    reconcile_workload,
    targets_from_configs,
    write_status,
)
from xray_operator.render.injection import Target
from xray_operator.settings import Settings

log = logging.getLogger(__name__)

# Seconds to wait after a change before acting, so a burst (operator start, kubectl apply -f
# dir/) costs one pass and one status write per TracingConfig.
COALESCE_SECONDS = 0.5

Key = tuple[str, str, str]  # kind, namespace, name
_targets: list[Target] | None = None
_namespaces: dict[str, str | None] = {}
_results: dict[Key, InjectionResult] = {}


class _Coalesced:
    """Run `job` once after a burst of `poke()` calls; again if poked while it ran."""

    def __init__(self, job: Callable[[], Awaitable[None]]) -> None:
        self.job = job
        self.dirty: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        if self.dirty is None:
            self.dirty = asyncio.Event()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop(self.dirty))
        self.dirty.set()

    async def _loop(self, dirty: asyncio.Event) -> None:
        while True:
            await dirty.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            dirty.clear()
            try:
                await self.job()
            except Exception as err:  # one failed run must not stop the later ones
                log.warning("%s failed: %s", getattr(self.job, "__name__", "job"), err)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


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
    """Workloads getting the address, per TracingConfig ("ns/name")."""
    return injected_counts(_results.values())


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


def _remember(key: Key, result: InjectionResult | None) -> None:
    """Keep the latest result; a change in what status reports schedules a status write."""
    before = _results.get(key)
    if result is None or (result.config is None and not result.problems):
        _results.pop(key, None)
    else:
        _results[key] = result
    if _summary(before) != _summary(_results.get(key)):
        _status.poke()


def _summary(result: InjectionResult | None) -> Any:
    if result is None:
        return None
    return (result.config, result.injected, result.webhook, result.hand_set, result.problems,
            result.error)


def _relevant(body: kopf.Body, **kwargs: Any) -> bool:
    """kopf's filter: the handler (and its log line) only for workloads that may be ours."""
    meta = body["metadata"]
    if (body.get("kind", ""), meta["namespace"], meta["name"]) in _results:
        return True
    return _maybe_ours(
        body, namespace_annotations_from(kwargs["injection_namespaces"], meta["namespace"]))


@kopf.on.event("apps", "v1", "deployments", when=_relevant)
@kopf.on.event("apps", "v1", "statefulsets", when=_relevant)
@kopf.on.event("apps", "v1", "daemonsets", when=_relevant)
async def workload_event(
    body: kopf.Body, type: str | None, logger: kopf.Logger, **kwargs: Any
) -> None:
    meta = body["metadata"]
    key: Key = (body.get("kind", ""), meta["namespace"], meta["name"])
    if type == "DELETED" or meta.get("deletionTimestamp"):
        _remember(key, None)
        if type == "DELETED":
            forget(*key)
        return
    ns_annotations = namespace_annotations_from(kwargs["injection_namespaces"], meta["namespace"])
    if not _maybe_ours(body, ns_annotations):
        _remember(key, None)
        return
    targets = targets_from(kwargs["injection_targets"])
    result = await asyncio.to_thread(
        reconcile_workload, runtime.kube(), plain(body), ns_annotations, targets)
    _remember(key, result)
    # Problems that led to a write were posted as Events already; the rest would repeat on
    # every status update of the workload, so they are logged, not posted.
    if not result.wrote:
        for problem in result.problems:
            logger.info(problem)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def tracingconfig_event(**kwargs: Any) -> None:
    global _targets
    targets = targets_from(kwargs["injection_targets"])
    if targets != _targets:
        _targets = targets
        _pass.poke()
        _status.poke()


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    name = body["metadata"]["name"]
    value = None if type == "DELETED" else (body["metadata"].get("annotations") or {}).get(
        INJECT_ANNOTATION)
    if _namespaces.get(name) != value:
        first_sight = name not in _namespaces
        _namespaces[name] = value
        # At start-up every namespace is "new"; the workloads' own events cover those.
        if not (first_sight and value is None):
            _pass.poke()


async def full_pass() -> None:
    targets = _targets or []
    namespaces: list[str | None] = [*Settings().namespaces] or [None]
    for namespace in namespaces:
        results = await asyncio.to_thread(reconcile_all, runtime.kube(), targets, namespace)
        for result in results:
            _remember((result.kind, result.namespace, result.name), result)


async def status_write() -> None:
    await asyncio.to_thread(write_status, runtime.kube(), _targets or [], list(_results.values()))


_pass = _Coalesced(full_pass)
_status = _Coalesced(status_write)


@kopf.on.cleanup()
async def stop_injection(**_: Any) -> None:
    await _pass.stop()
    await _status.stop()
