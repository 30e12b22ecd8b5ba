"""Figures 3 and 5: steady state (nothing changes for WINDOW seconds) and memory.

Steady state: requests by the operator's ServiceAccount in the audit log whose
requestReceivedTimestamp falls inside the window (each request once, whatever its stages, so a
watch opened in the window counts), split into writes and reads; and the operator process's
CPU seconds (utime+stime from /proc/<pid>/stat) over the same window.
Memory: VmRSS of the operator process (/proc/<pid>/status) once it is idle with MEMORY_TOTAL
Deployments in the cluster; VmHWM (the peak over the whole run) alongside.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    Audit,
    Figure,
    Results,
    budgeted,
    cpu_seconds,
    create_all,
    deployment,
    is_write,
    log,
    memory_kib,
    namespace,
    received,
)
from bench.operator_run import Operator
from xray_dev.operator_proc import OPERATOR_USER
from xray_operator.reconcile.kube import Kube

WINDOW = 120.0
MEMORY_TOTAL = 2000
MEMORY_NAMESPACE = "bench-memory"
Obj = dict[str, Any]


def wait_idle(op: Operator, what: str, quiet: float = 0.05, period: float = 2.0,
              timeout: float = 120) -> float:
    """Until the operator used less than `quiet` CPU seconds in `period`; seconds waited."""
    started = time.monotonic()
    last = cpu_seconds(op.pid)
    while time.monotonic() - started < timeout:
        time.sleep(period)
        now = cpu_seconds(op.pid)
        if now - last < quiet:
            waited = time.monotonic() - started
            log(f"    operator idle after {waited:.1f} s ({what})")
            return waited
        last = now
    log(f"    operator still busy after {timeout:.0f} s ({what}); going on")
    return timeout


def fill_to(kube: Kube, total: int) -> int:
    """Plain (not annotated) Deployments until the cluster holds `total`; returns the count."""
    have = len(kube.request("GET", "/apis/apps/v1/deployments")["items"])
    missing = max(0, total - have)
    namespace(kube, MEMORY_NAMESPACE)
    create_all(kube, [deployment(MEMORY_NAMESPACE, f"plain-{i:04d}") for i in range(missing)],
               f"{missing} plain Deployments (cluster total {total})")
    return len(kube.request("GET", "/apis/apps/v1/deployments")["items"])


def measure_memory(results: Results, kube: Kube, op: Operator) -> None:
    count = fill_to(kube, MEMORY_TOTAL)
    wait_idle(op, f"{count} Deployments")
    mem = memory_kib(op.pid)
    results.add(Figure(f"memory: operator RSS, idle after {count} Deployments were created",
                       round(mem["VmRSS"] / 1024, 1), "MiB"))


def report_memory(results: Results, op: Operator, count: int) -> None:
    """The budget applies to the end of the run: 2,000 Deployments, and everything the
    operator did since (webhook load, a full pass for the webhook config, steady state)."""
    mem = memory_kib(op.pid)
    results.add(budgeted(f"memory: operator RSS with {count} Deployments (end of run)",
                         round(mem["VmRSS"] / 1024, 1), "MiB", "<", 150))
    results.add(Figure("memory: operator peak RSS over the run (VmHWM)",
                       round(mem["VmHWM"] / 1024, 1), "MiB"))


def measure_steady(results: Results, kube: Kube, audit: Audit, op: Operator) -> None:
    wait_idle(op, "before the steady-state window")
    audit.mark()
    start_wall, cpu0 = time.time(), cpu_seconds(op.pid)
    log(f"    window of {WINDOW:.0f} s with nothing changing")
    deadline = time.monotonic() + WINDOW
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(30.0, left))
        if deadline - time.monotonic() > 1:
            log(f"    {WINDOW - (deadline - time.monotonic()):.0f}/{WINDOW:.0f} s")
    end_wall, cpu1 = time.time(), cpu_seconds(op.pid)
    requests: dict[str, Obj] = {}
    for event in audit.events_all_stages(user=OPERATOR_USER):
        if start_wall <= received(event) < end_wall:
            requests.setdefault(str(event.get("auditID")), event)
    writes = [e for e in requests.values() if is_write(e)]
    reads = [e for e in requests.values() if not is_write(e)]
    minutes = (end_wall - start_wall) / 60
    described = sorted({f"{e.get('verb')} {(e.get('objectRef') or {}).get('resource')}"
                        for e in writes})
    results.add(budgeted("steady state: writes by the operator", float(len(writes)), "requests",
                         "==", 0, note=", ".join(described[:10])))
    verbs: dict[str, int] = {}
    for e in reads:
        verbs[str(e.get("verb"))] = verbs.get(str(e.get("verb")), 0) + 1
    results.add(Figure("steady state: reads by the operator", round(len(reads) / minutes, 2),
                       "requests/min", note=f"{len(reads)} in {minutes * 60:.0f} s: {verbs}"))
    results.add(Figure("steady state: operator CPU", round(cpu1 - cpu0, 2), "CPU s",
                       note=f"over {minutes * 60:.0f} s (utime+stime)"))
