"""Figure 1: TracingConfig applied -> all four children exist and status written.

Operator: the bench POSTs a TracingConfig and waits (watch) for the status the operator writes
(status.daemonSet and status.observedGeneration), then checks the four children exist.
Floor: a plain client on the same API server POSTs the same TracingConfig, server-side applies
the output of render.desired() (with the owner reference the operator adds) one after the
other, then writes the same status patch. Both clocks start before the POST of the
TracingConfig. Median of RUNS each.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from bench.common import (
    Audit,
    Figure,
    Results,
    Watch,
    breakdown,
    budgeted,
    describe_counts,
    list_rv,
    log,
    median,
    namespace,
)
from xray_dev.operator_proc import OPERATOR_USER
from xray_operator.constants import API_VERSION, KIND, PLURAL
from xray_operator.model import TracingConfig
from xray_operator.reconcile.children import with_ownership
from xray_operator.reconcile.kube import Kube
from xray_operator.reconcile.status import compute
from xray_operator.reconcile.tracingconfig import daemon_status
from xray_operator.render import desired

RUNS = 7
FLOOR_NAMESPACE = "bench-reconcile-floor"
OPERATOR_NAMESPACE = "bench-reconcile"
Obj = dict[str, Any]


def tracing_config(ns: str, name: str, **spec: Any) -> Obj:
    """No IAM check: it would call AWS, which is not what this figure measures."""
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": name, "namespace": ns},
        "spec": {"default": False, "region": "us-east-1", "iam": {"check": False}, **spec},
    }


def tc_collection(ns: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{ns}/{PLURAL}"


def floor_once(kube: Kube, ns: str, name: str) -> float:
    started = time.perf_counter()
    tc = kube.request("POST", tc_collection(ns), body=tracing_config(ns, name))
    model = TracingConfig.from_object(tc)
    ds: Obj | None = None
    for child in desired(model):
        ds = kube.apply(with_ownership(child, tc), field_manager="bench-floor")
    patch, _ = compute(tc, daemon_status(tc, model, ds, [], None))
    kube.merge_patch(API_VERSION, KIND, ns, name, {"status": patch}, subresource="status")
    return time.perf_counter() - started


def measure_floor(kube: Kube, runs: int = RUNS, label: str = "") -> list[float]:
    """`runs` measured runs after one that is not (first use of the client's connections)."""
    namespace(kube, FLOOR_NAMESPACE)
    times = []
    for i in range(runs + 1):
        name = f"floor{label}-{i}"
        elapsed = floor_once(kube, FLOOR_NAMESPACE, name)
        if i:
            times.append(elapsed)
        log(f"    floor run {i}/{runs}{' (warm-up)' if not i else ''}: {elapsed * 1000:.1f} ms")
        time.sleep(0.5)
        kube.delete(API_VERSION, KIND, FLOOR_NAMESPACE, name)
        time.sleep(0.5)
    return times


def _status_written(name: str) -> Any:
    def done(type_: str, obj: Obj) -> bool:
        if obj.get("metadata", {}).get("name") != name or type_ == "DELETED":
            return False
        status = obj.get("status") or {}
        return "daemonSet" in status and status.get("observedGeneration") is not None
    return done


def operator_once(kube: Kube, ns: str, name: str) -> tuple[float, tuple[float, float]]:
    """(seconds, the run's window in epoch seconds)."""
    collection = tc_collection(ns)
    _, rv = list_rv(kube, collection)
    watch = Watch(kube, collection, rv, _status_written(name)).start()
    wall = time.time()
    started = time.perf_counter()
    tc = kube.request("POST", collection, body=tracing_config(ns, name))
    finished = watch.wait(60, f"the status of TracingConfig {ns}/{name}")
    # The operator writes status after the children; make sure all four are there.
    for child in desired(TracingConfig.from_object(tc)):
        meta = child["metadata"]
        if kube.get(child["apiVersion"], child["kind"], meta["namespace"], meta["name"]) is None:
            raise RuntimeError(f"status written but {child['kind']} {meta['name']} missing")
    return finished - started, (wall, wall + (finished - started))


def measure_operator(kube: Kube, audit: Audit) -> tuple[list[float], Counter[str]]:
    """Times of RUNS runs, and the operator's requests inside those runs' windows."""
    namespace(kube, OPERATOR_NAMESPACE)
    audit.mark()
    times = []
    windows = []
    for i in range(RUNS + 1):
        name = f"op-{i}"
        elapsed, window = operator_once(kube, OPERATOR_NAMESPACE, name)
        if i:
            times.append(elapsed)
            windows.append(window)
        log(f"    operator run {i}/{RUNS}{' (warm-up)' if not i else ''}: "
            f"{elapsed * 1000:.1f} ms")
        time.sleep(1.0)  # let the daemon pods' status updates settle
        kube.delete(API_VERSION, KIND, OPERATOR_NAMESPACE, name)
        time.sleep(1.0)
    return times, breakdown(audit.events(user=OPERATOR_USER), windows)


def report(results: Results, floor: list[float], operator: list[float],
           requests: Counter[str]) -> None:
    f_med, o_med = median(floor), median(operator)
    results.add(Figure("reconcile: floor (plain client), median", round(f_med * 1000, 1), "ms",
                       note=f"{len(floor)} runs (half before, half after the operator's), ms: "
                       + ", ".join(f"{t * 1000:.0f}" for t in floor)))
    results.add(Figure("reconcile: operator, median", round(o_med * 1000, 1), "ms",
                       note=f"{len(operator)} runs, ms: "
                       + ", ".join(f"{t * 1000:.0f}" for t in operator)))
    results.add(budgeted("reconcile: operator / floor", round(o_med / f_med, 2), "ratio",
                         "<=", 1.5))
    per_run = sum(requests.values()) / len(operator)
    results.add(Figure("reconcile: operator requests per run (floor: 5)", round(per_run, 1),
                       "requests", note=describe_counts(requests, len(operator))))
