"""Deployment-mode injection against the API server: read, plan (pure), apply, report.

Writes go through server-side apply under INJECTION_FIELD_MANAGER, a manager that owns only
the injected env entries and the `injected-by` annotation. Removing injection is applying the
bare identity for that manager: the API server drops what only it owned and keeps everything
else exactly as it was. A plan that would change nothing is not sent (no needless rollouts).

Blocking calls; async callers run these with asyncio.to_thread.
"""

from __future__ import annotations

import datetime
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from xray_operator.constants import API_VERSION, INJECTION_FIELD_MANAGER, KIND
from xray_operator.model import TracingConfig
from xray_operator.reconcile.kube import Kube, KubeError
from xray_operator.reconcile.status import StatusChange, update_status
from xray_operator.render import address_for
from xray_operator.render.injection import (
    WORKLOAD_KINDS,
    Target,
    WorkloadPlan,
    plan_workload,
    target_for,
)
from xray_operator.render.status import Cond

Obj = dict[str, Any]
log = logging.getLogger(__name__)
EVENT_SOURCE = "xray-operator"


@dataclass(frozen=True)
class InjectionResult:
    """What happened to one workload: the handler logs it, status counts it."""

    kind: str
    namespace: str
    name: str
    config: str | None  # the TracingConfig that applies (deployment or webhook mode)
    wrote: bool
    injected: tuple[str, ...]  # containers that carry the injected env now
    hand_set: tuple[str, ...]
    problems: tuple[str, ...]
    error: str | None = None  # the write failed (conflict, API error)
    webhook: bool = False  # opted in to a webhook-mode config: its Pods get the env at admission

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def load_targets(kube: Kube) -> list[Target]:
    return targets_from_configs(kube.list(API_VERSION, KIND))


def targets_from_configs(configs: Iterable[Mapping[str, Any]]) -> list[Target]:
    """Targets of every TracingConfig that is not being deleted (deleting one removes its
    injection). Objects that do not parse are skipped: their own reconcile reports them."""
    targets = []
    for obj in configs:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        try:
            config = TracingConfig.from_object(dict(obj))
        except (ValidationError, ValueError):
            continue
        created = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
        targets.append(target_for(config, address_for(config), created))
    return targets


def namespace_annotations(kube: Kube) -> dict[str, dict[str, str]]:
    return {
        ns["metadata"]["name"]: ns["metadata"].get("annotations") or {}
        for ns in kube.list("v1", "Namespace")
    }


def list_workloads(kube: Kube, namespace: str | None = None) -> list[Obj]:
    workloads: list[Obj] = []
    for kind in WORKLOAD_KINDS:
        workloads.extend(kube.list("apps/v1", kind, namespace))
    return workloads


def reconcile_workload(
    kube: Kube,
    workload: Obj,
    namespace_annotations: Mapping[str, str] | None,
    targets: Sequence[Target],
    *,
    events: bool = True,
) -> InjectionResult:
    """At most one write; none when the workload already is as planned."""
    plan = plan_workload(workload, namespace_annotations, targets)
    error = None
    wrote = False
    metadata = workload.get("metadata") or {}
    key = (workload.get("kind", ""), metadata.get("namespace", ""), metadata.get("name", ""))
    with _lock_for(key):
        refused = _refused.get(key)
        if plan.needs_write and refused and refused[:2] == (plan.body, metadata.get("generation")):
            # Refused before for this very body and spec: asking again (and posting another
            # Event on every status update) changes nothing until someone edits the workload.
            return _result(workload, plan, False, refused[2])
        last = _written.get(key)
        if plan.needs_write and last is not None and last[0] == plan.body:
            # We sent this very body already. An object from before our write (watch events
            # queue up; a full pass lists while events arrive) is stale: the server has the
            # write, and neither a read nor a second write is needed. resourceVersions are
            # opaque; where one cannot be compared, read what the server has now.
            stale = _not_newer(metadata.get("resourceVersion"), last[1])
            if stale:
                return _result(workload, plan, False, None)
            if stale is None:
                fresh = kube.get(workload.get("apiVersion", "apps/v1"), key[0], key[1], key[2])
                if fresh is None:
                    return _result(workload, plan, False, None)
                workload = fresh
                plan = plan_workload(workload, namespace_annotations, targets)
        wrote, error, version = _write(kube, plan)
        if wrote:
            _written[key] = (plan.body, version)
            _refused.pop(key, None)
        elif error:
            _refused[key] = (plan.body, (workload.get("metadata") or {}).get("generation"), error)
    result = _result(workload, plan, wrote, error)
    if events and (wrote or error):
        _report(kube, workload, plan, result)
    return result


# Per workload: a lock, and the body of the last write.
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
_written: dict[tuple[str, str, str], tuple[Obj, str | None]] = {}
# Per workload: (body, generation, error) of the last apply the API server refused.
_refused: dict[tuple[str, str, str], tuple[Obj, Any, str]] = {}


def forget(kind: str, namespace: str, name: str) -> None:
    """Drop what is remembered of a workload that is gone (the maps would grow forever)."""
    key = (kind, namespace, name)
    _written.pop(key, None)
    _refused.pop(key, None)
    with _locks_guard:
        _locks.pop(key, None)


def _lock_for(key: tuple[str, str, str]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _not_newer(version: str | None, written: str | None) -> bool | None:
    """Is `version` at or before our write's? None when they cannot be compared."""
    try:
        return int(version or "") <= int(written or "")
    except ValueError:
        return None


def _write(kube: Kube, plan: WorkloadPlan) -> tuple[bool, str | None, str | None]:
    """(wrote, error, resourceVersion after the write)."""
    if not plan.needs_write:
        return False, None, None
    try:
        # force=False: if another manager (a GitOps tool that copied the live object) owns
        # an entry with a different value, taking it over would start a tug of war.
        applied = kube.apply(plan.body, field_manager=INJECTION_FIELD_MANAGER, force=False)
    except KubeError as err:
        if not err.conflict:
            raise
        return False, (f"not injected: another field manager owns a conflicting value "
                       f"({err.message})"), None
    return True, None, (applied.get("metadata") or {}).get("resourceVersion")


def reconcile_all(
    kube: Kube,
    targets: Sequence[Target] | None = None,
    namespace: str | None = None,
    *,
    workers: int = 4,
) -> list[InjectionResult]:
    """Every Deployment, StatefulSet and DaemonSet (in `namespace`, or cluster-wide).

    Workloads are independent, so a few are done at once: most of a write's time is spent in
    the API server's pipeline, and a TracingConfig change can touch every workload.
    """
    if targets is None:
        targets = load_targets(kube)
    annotations = namespace_annotations(kube)

    def one(workload: Obj) -> InjectionResult:
        return reconcile_workload(
            kube, workload, annotations.get(workload["metadata"]["namespace"]), targets
        )

    workloads = list_workloads(kube, namespace)
    if workers <= 1 or len(workloads) <= 1:
        return [one(w) for w in workloads]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inject") as pool:
        return list(pool.map(one, workloads))


def injected_counts(results: Iterable[InjectionResult]) -> Counter[str]:
    """Workloads carrying injected env per TracingConfig (status.injectedWorkloads)."""
    return Counter(
        r.config for r in results if r.config and (r.injected or r.webhook) and not r.error
    )


# --- status -----------------------------------------------------------------------------------

INJECTION_CONDITION = "InjectionHealthy"
# Set by reconcile/tracingconfig.py for a default: true config that lost to an older one; that
# explanation matters more than anything this flow can say, so it is left alone.
DEFAULT_CLASH_REASON = "ConflictingDefault"
MAX_LISTED = 3


def status_change(config: str, results: Iterable[InjectionResult], tc: Obj) -> StatusChange:
    """status.injectedWorkloads and InjectionHealthy for one TracingConfig ("ns/name")."""
    mine = sorted((r for r in results if r.config == config), key=lambda r: r.ref)
    count = injected_counts(mine)[config]
    fields: Obj = {"injectedWorkloads": count}
    current = {c.get("type"): c for c in (tc.get("status") or {}).get("conditions", [])}
    if (current.get(INJECTION_CONDITION) or {}).get("reason") == DEFAULT_CLASH_REASON:
        return StatusChange(fields=fields)
    troubled = [(r, r.error or "; ".join(p for p in r.problems if not _is_hand_set(p)))
                for r in mine]
    troubled = [(r, why) for r, why in troubled if why]
    if troubled:
        listed = "; ".join(f"{r.ref}: {why}" for r, why in troubled[:MAX_LISTED])
        more = len(troubled) - MAX_LISTED
        message = listed + (f" (and {more} more)" if more > 0 else "")
        cond = Cond(INJECTION_CONDITION, "False", "WorkloadsNeedAttention", message)
    else:
        hand_set = sum(1 for r in mine if r.hand_set)
        message = f"{count} workload(s) get the daemon address"
        if hand_set:
            message += f"; {hand_set} keep an address set by hand in some containers"
        cond = Cond(INJECTION_CONDITION, "True", "Injected", message)
    return StatusChange(fields=fields, conditions=[cond])


def _change_for(
    config: str, results: Sequence[InjectionResult]
) -> Callable[[Obj], StatusChange]:
    def change(tc: Obj) -> StatusChange:
        return status_change(config, results, tc)

    return change


def _is_hand_set(problem: str) -> bool:
    # A hand-set address is a person's decision, reported by Event, not a failure.
    return "sets AWS_XRAY_DAEMON_ADDRESS" in problem


def write_status(
    kube: Kube, targets: Sequence[Target], results: Sequence[InjectionResult]
) -> int:
    """Write each TracingConfig's injection status if it changed, with an Event on the
    TracingConfig when InjectionHealthy flips. Returns the number of status writes."""
    writes = 0
    for target in targets:
        namespace, name = target.config.split("/", 1)
        result = update_status(kube, namespace, name, _change_for(target.config, results))
        writes += result.written
        for cond in result.transitions:
            if cond.type == INJECTION_CONDITION and result.tc is not None:
                post_event(kube, result.tc, "Normal" if cond.status == "True" else "Warning",
                           cond.reason, f"{cond.type}: {cond.message}")
    return writes


def _result(workload: Obj, plan: WorkloadPlan, wrote: bool, error: str | None) -> InjectionResult:
    metadata = workload["metadata"]
    target = plan.decision.target
    return InjectionResult(
        kind=workload.get("kind", ""),
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        config=target.config if target else None,
        wrote=wrote,
        injected=plan.injected,
        hand_set=plan.hand_set,
        problems=plan.problems,
        error=error,
        webhook=target is not None and target.mode == "webhook",
    )


def _report(kube: Kube, workload: Obj, plan: WorkloadPlan, result: InjectionResult) -> None:
    """Events on the workload, posted only when its injection state changed (a write or a
    refused write), so a steady state stays silent."""
    target = plan.decision.target
    if result.error:
        post_event(kube, workload, "Warning", "InjectionConflict", result.error)
        return
    if result.injected and target is not None:
        post_event(
            kube,
            workload,
            "Normal",
            "Injected",
            f"AWS_XRAY_DAEMON_ADDRESS={target.address} in container(s) "
            f"{', '.join(result.injected)} (TracingConfig {target.config})",
        )
    elif not result.hand_set:
        post_event(
            kube,
            workload,
            "Normal",
            "InjectionRemoved",
            f"removed what xray-operator had injected ({plan.decision.reason})",
        )
    for container in result.hand_set:
        post_event(
            kube,
            workload,
            "Warning",
            "DaemonAddressSetByHand",
            f"container {container!r} sets AWS_XRAY_DAEMON_ADDRESS itself; "
            "xray-operator left it as it is. Remove it to let the operator manage it.",
        )
    for problem in result.problems:
        if "sets AWS_XRAY_DAEMON_ADDRESS" not in problem:
            post_event(kube, workload, "Warning", "InjectionProblem", problem)


def post_event(kube: Kube, obj: Obj, type_: str, reason: str, message: str) -> None:
    """A core/v1 Event on `obj`; failures are logged, never raised (reporting is best effort)."""
    metadata = obj["metadata"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}",
            "namespace": metadata["namespace"],
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": EVENT_SOURCE},
        "reportingComponent": EVENT_SOURCE,
        "reportingInstance": EVENT_SOURCE,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        kube.request("POST", f"/api/v1/namespaces/{metadata['namespace']}/events", body=event)
    except KubeError as err:
        log.warning(
            "could not post event %s on %s/%s: %s",
            reason,
            metadata["namespace"],
            metadata["name"],
            err,
        )
