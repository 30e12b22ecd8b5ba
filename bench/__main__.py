"""`make bench`: every figure of BENCHMARKS.md against the real local control plane, in one run.

    PYTHONPATH=devtools:. .venv/bin/python -m bench [--quick]

Order: floors first (plain client, operator not running), then the operator as its own
ServiceAccount through every phase: reconcile, injection (200, 1000), memory (2,000
Deployments), webhook, steady state. Uses the cluster in XRAY_DEV_CLUSTER_DIR (default
.cache/cluster), started if needed and stopped at the end only if started here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import injection, reconcile, steady, webhook
from bench.common import (
    CONFIG_NAMESPACE,
    Audit,
    Figure,
    Results,
    cpu_seconds,
    delete_deployments,
    kube_for,
    log,
    memory_kib,
    namespace,
)
from bench.operator_run import OPERATOR_NAMESPACE, Operator
from xray_dev import cluster as local_cluster
from xray_dev.operator_proc import install
from xray_operator.reconcile.kube import Kube
from xray_operator.render.webhook import configuration_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
Obj = dict[str, Any]


def machine() -> Obj:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "load_at_start": os.getloadavg()}


def versions(kube: Kube) -> Obj:
    out: Obj = {}
    for package in ("xray-operator", "kopf", "kubernetes", "pydantic"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    try:
        out["kube-apiserver"] = kube.request("GET", "/version").get("gitVersion")
    except Exception:  # informational only
        out["kube-apiserver"] = None
    try:
        out["git"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["git"] = None
    return out


ORDER = ("reconcile", "injection", "steady", "webhook", "memory")


def in_order(figures: list[Figure]) -> list[Figure]:
    """The order of BENCHMARKS.md (figure 1..5), whatever order the phases ran in."""
    def key(f: Figure) -> int:
        return next((i for i, p in enumerate(ORDER) if f.figure.startswith(p)), len(ORDER))
    return sorted(figures, key=key)


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "budget", "pass")]
    for f in figures:
        rows.append((f.figure, "n/a" if f.value is None else f"{f.value:g}", f.unit,
                     f.budget or "-", "-" if f.passed is None else ("yes" if f.passed else "NO")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def trace_rss(meta: Obj, op: Operator, phase: str) -> None:
    """The operator's RSS after each phase (JSON only): where the memory goes."""
    mem = memory_kib(op.pid)
    meta.setdefault("operator_rss_mib", []).append(
        {"after": phase, "rss": round(mem["VmRSS"] / 1024, 1),
         "hwm": round(mem["VmHWM"] / 1024, 1)})


def run(results: Results, cluster: local_cluster.Cluster, meta: Obj) -> None:
    kube = kube_for(cluster)
    meta["versions"] = versions(kube)
    log("install: CRD, RBAC, operator ServiceAccount (manifests/install.yaml)")
    install(cluster)
    namespace(kube, CONFIG_NAMESPACE)
    audit = Audit(cluster, kube)
    workers = injection.operator_workers()

    half = (reconcile.RUNS + 1) // 2
    log(f"phase 1/8: floors (plain client, operator not running): reconcile x{half}")
    floor_reconcile = reconcile.measure_floor(kube, half, "a")
    floors: dict[int, list[float]] = {}
    for n in injection.SIZES:
        for r in injection.floor_runs(n)[0]:
            log(f"phase 1/8: floor for injection, N={n} (run {r + 1})")
            floors.setdefault(n, []).append(injection.measure_floor(kube, n, r, workers))
    log("phase 1/8: removing the floor's Deployments (the operator must not find them)")
    delete_deployments(kube, injection.floor_namespaces(0))

    operator_injection: dict[int, list[injection.Run]] = {}
    log("phase 2/8: starting the operator")
    op = Operator(cluster)
    try:
        op.start()
        if op.note:
            results.notes.append(op.note)
        meta["operator_command"] = " ".join(op.command)
        steady.wait_idle(op, "start-up")
        trace_rss(meta, op, "start-up")

        log(f"phase 3/8: reconcile, operator x{reconcile.RUNS}")
        operator_reconcile, reconcile_requests = reconcile.measure_operator(kube, audit)
        trace_rss(meta, op, "reconcile")

        for n in injection.SIZES:
            log(f"phase 4/8: injection, N={n}")
            runs = []
            for r in range(injection.repeats(n)):
                log(f"phase 4/8: injection, N={n} (run {r + 1}/{injection.repeats(n)})")
                runs.append(injection.measure_operator(
                    kube, audit, n, r, lambda: cpu_seconds(op.pid)))
                steady.wait_idle(op, f"after injecting {n}")
                runs[-1].cpu = cpu_seconds(op.pid) - runs[-1].cpu_at_trigger
                trace_rss(meta, op, f"injection N={n} run {r + 1}")
            operator_injection[n] = runs

        log(f"phase 5/8: memory with {steady.MEMORY_TOTAL} Deployments")
        steady.measure_memory(results, kube, op)
        trace_rss(meta, op, f"{steady.MEMORY_TOTAL} Deployments")

        log(f"phase 6/8: webhook, {webhook.RATE} Pod creations/s for {webhook.SECONDS} s")
        webhook.setup(kube, op)
        # Creating the webhook-mode config starts a full injection pass over every workload;
        # the figure is the webhook's answer time, not that pass's.
        steady.wait_idle(op, "after the webhook-mode TracingConfig")
        trace_rss(meta, op, "webhook-mode TracingConfig (a full injection pass)")
        buckets, client, created = webhook.measure_apiserver(kube)
        log("phase 6/8: webhook, direct AdmissionReviews to the operator's endpoint")
        direct, patched = webhook.measure_direct(op)
        webhook.report(results, buckets, client, created, direct, patched)
        trace_rss(meta, op, "webhook load")

        log(f"phase 7/8: steady state, {steady.WINDOW:.0f} s")
        steady.measure_steady(results, kube, audit, op)
        count = len(kube.request("GET", "/apis/apps/v1/deployments")["items"])
        steady.report_memory(results, op, count)
        trace_rss(meta, op, "steady state")
        if not op.alive():
            raise RuntimeError(f"the operator died:\n{op.tail()}")
    finally:
        op.stop()
    rest = reconcile.RUNS - half
    log(f"phase 8/8: floors again, operator stopped: reconcile x{rest}")
    floor_reconcile += reconcile.measure_floor(kube, rest, "b")
    reconcile.report(results, floor_reconcile, operator_reconcile, reconcile_requests)
    for n in injection.SIZES:
        for r in injection.floor_runs(n)[1]:
            log(f"phase 8/8: floor for injection again, N={n} (run {r + 1})")
            floors[n].append(injection.measure_floor(kube, n, r, workers))
        injection.report(results, n, floors[n], operator_injection[n], workers)


def kuber(cluster: local_cluster.Cluster) -> Kube:
    return kube_for(cluster, pool=2)


def cleanup(kube: Kube) -> None:
    """For a cluster that outlives the bench: nothing of ours left behind."""
    try:
        kube.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
                    configuration_name(OPERATOR_NAMESPACE))
        for ns in (CONFIG_NAMESPACE, reconcile.OPERATOR_NAMESPACE, steady.MEMORY_NAMESPACE,
                   webhook.LOAD_NAMESPACE, reconcile.FLOOR_NAMESPACE,
                   *injection.operator_namespaces(), *injection.floor_namespaces()):
            kube.delete("v1", "Namespace", None, ns)
    except Exception as err:  # best effort
        log(f"cleanup: {err}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--output", default=str(RESULTS))
    # For working on the bench itself; `make bench` uses the defaults.
    parser.add_argument("--sizes", default=None, help="injection sizes, e.g. 20,50")
    parser.add_argument("--window", type=float, default=None, help="steady-state seconds")
    parser.add_argument("--total", type=int, default=None, help="Deployments for memory")
    args = parser.parse_args(argv)
    if args.sizes:
        injection.SIZES = tuple(int(s) for s in args.sizes.split(","))
    if args.window:
        steady.WINDOW = args.window
    if args.total:
        steady.MEMORY_TOTAL = args.total
    started = time.monotonic()
    results = Results()
    meta: Obj = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "machine": machine()}
    error: str | None = None
    log(f"cluster: {local_cluster.STATE_DIR}")
    meta["cluster_reused"] = local_cluster.healthy(local_cluster.Cluster.load())
    if meta["cluster_reused"]:
        # Tests or another operator on the same cluster disturb the figures, and the bench's
        # cluster-wide operator acts on their objects: XRAY_DEV_CLUSTER_DIR gives it its own.
        log("WARNING: reusing a running cluster; anything else running on it disturbs the "
            "figures (set XRAY_DEV_CLUSTER_DIR to a directory of its own to avoid that)")
    try:
        with local_cluster.running() as cluster:
            try:
                run(results, cluster, meta)
            finally:
                cleanup(kuber(cluster))
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
        traceback.print_exc()
        log(f"FAILED: {error}")
    meta["duration_s"] = round(time.monotonic() - started, 1)
    out = {**meta, "notes": results.notes, "error": error,
           "figures": [f.as_json() for f in in_order(results.figures)]}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print()
    print(table(in_order(results.figures)))
    for note in results.notes:
        print(f"note: {note}")
    failed = [f.figure for f in results.figures if f.passed is False]
    print(f"\n{len(results.figures)} figures, {len(failed)} over budget; "
          f"{meta['duration_s']:.0f} s; written to {path}")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
