"""Figure 2: N annotated Deployments -> all injected, versus N bare PATCH calls.

Operator: N Deployments (replicas 0) annotated `inject: bench-system/bench-inject-N`, a
TracingConfig that does not exist yet, so nothing is injected. The clock starts before the
POST of that TracingConfig and stops when a watch on the namespace has seen
AWS_XRAY_DAEMON_ADDRESS in all N pod templates. That is the operator's real path: the config
appears, one full pass plans every workload and writes those that need it.
Floor: the same N Deployments in another namespace (created while the operator is not running)
and the very server-side-apply bodies the operator would send (render.injection.plan_workload,
same field manager, force=false), PATCHed by a plain client with as many concurrent requests
as the operator's full pass uses (reconcile.injection.reconcile_all's `workers`).
Writes per workload: the operator's PATCH/UPDATE requests on those Deployments in the API
server's audit log, from before their creation to the end.
"""

from __future__ import annotations

import inspect
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.common import (
    CONFIG_NAMESPACE,
    Audit,
    Figure,
    Results,
    Watch,
    breakdown,
    budgeted,
    create_all,
    deployment,
    describe_counts,
    list_rv,
    log,
    median,
    namespace,
)
from bench.reconcile import tc_collection, tracing_config
from xray_dev.operator_proc import OPERATOR_USER
from xray_operator.constants import (
    API_VERSION,
    DAEMON_ADDRESS_ENV,
    INJECT_ANNOTATION,
    INJECTION_FIELD_MANAGER,
    KIND,
)
from xray_operator.model import TracingConfig
from xray_operator.reconcile import injection as reconcile_injection
from xray_operator.reconcile.kube import Kube
from xray_operator.render import address_for
from xray_operator.render.injection import plan_workload, target_for

SIZES: tuple[int, ...] = (200, 1000)
# Small sizes are over in a couple of seconds, where a neighbour's burst of CPU decides the
# ratio: the median of a few runs (each on its own fresh Deployments).
REPEATS = {200: 3}
Obj = dict[str, Any]


def repeats(n: int) -> int:
    return REPEATS.get(n, 1)


def operator_workers() -> int:
    """Concurrency of the operator's full injection pass (its default)."""
    default = inspect.signature(reconcile_injection.reconcile_all).parameters["workers"].default
    return int(default) if isinstance(default, int) else 1


def config_name(n: int, run: int) -> str:
    return f"bench-inject-{n}-{run}"


def deployments_for(ns: str, n: int, run: int) -> list[Obj]:
    annotations = {INJECT_ANNOTATION: f"{CONFIG_NAMESPACE}/{config_name(n, run)}"}
    return [deployment(ns, f"app-{i:04d}", annotations) for i in range(n)]


def deployments_path(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments"


def has_address(obj: Obj) -> bool:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers") or []
    return any(e.get("name") == DAEMON_ADDRESS_ENV for c in containers for e in c.get("env") or [])


# ---------------------------------------------------------------------------------------------
# Floor


def floor_namespace(n: int, run: int) -> str:
    return f"bench-floor-inject-{n}-{run}"


def floor_runs(n: int) -> tuple[range, range]:
    """Floor runs before the operator's and after them (operator stopped), so the floor brackets
    the operator's runs in time: at least one of each."""
    total = max(2, repeats(n))
    before = (total + 1) // 2
    return range(before), range(before, total)


def floor_namespaces(which: int | None = None) -> list[str]:
    """Namespaces of the floor runs before (which=0), after (1) or both (None)."""
    parts = (0, 1) if which is None else (which,)
    return [floor_namespace(n, r) for n in SIZES for p in parts for r in floor_runs(n)[p]]


def measure_floor(kube: Kube, n: int, run: int, workers: int) -> float:
    ns = floor_namespace(n, run)
    namespace(kube, ns)
    create_all(kube, deployments_for(ns, n, run), f"floor {n} Deployments")
    config = TracingConfig.from_object(tracing_config(CONFIG_NAMESPACE, config_name(n, run)))
    target = target_for(config, address_for(config))
    live = kube.request("GET", deployments_path(ns))["items"]
    bodies = []
    for item in live:
        item.setdefault("apiVersion", "apps/v1")
        item.setdefault("kind", "Deployment")
        plan = plan_workload(item, None, [target])
        if not plan.needs_write:
            raise RuntimeError(f"floor: nothing to write for {item['metadata']['name']}")
        bodies.append(plan.body)
    log(f"    floor: {len(bodies)} PATCH (server-side apply) calls, {workers} at a time")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floor") as pool:
        list(pool.map(lambda body: kube.apply(body, field_manager=INJECTION_FIELD_MANAGER,
                                              force=False), bodies))
    elapsed = time.perf_counter() - started
    injected = sum(has_address(d) for d in kube.request("GET", deployments_path(ns))["items"])
    if injected != n:
        raise RuntimeError(f"floor: {injected}/{n} Deployments carry the address")
    log(f"    floor N={n}: {elapsed:.2f} s")
    return elapsed


# ---------------------------------------------------------------------------------------------
# Operator


def operator_namespace(n: int, run: int) -> str:
    return f"bench-inject-{n}-{run}"


def operator_namespaces() -> list[str]:
    return [operator_namespace(n, r) for n in SIZES for r in range(repeats(n))]


@dataclass
class Run:
    seconds: float
    writes: Counter[str]  # the operator's writes per Deployment name
    posted: int  # Events the operator created in the namespace
    requests: Counter[str]  # all its requests from the trigger until all were injected
    cpu_at_trigger: float = 0.0
    cpu: float = 0.0  # its CPU seconds from the trigger until it was idle again


def measure_operator(kube: Kube, audit: Audit, n: int, run: int,
                     cpu: Callable[[], float]) -> Run:
    ns = operator_namespace(n, run)
    namespace(kube, ns)
    audit.mark()
    create_all(kube, deployments_for(ns, n, run), f"operator {n} Deployments")
    # The operator sees the creations (and the controller's status updates) and must write
    # nothing yet: the TracingConfig they name does not exist. Let it catch up first.
    time.sleep(3)
    items, rv = list_rv(kube, deployments_path(ns))
    if len(items) != n or any(has_address(d) for d in items):
        raise RuntimeError(f"{ns}: expected {n} Deployments without the address")
    seen: set[str] = set()

    def all_injected(type_: str, obj: Obj) -> bool:
        if type_ != "DELETED" and has_address(obj):
            seen.add(obj["metadata"]["name"])
            if len(seen) % 250 == 0:
                log(f"    {len(seen)}/{n} injected")
        return len(seen) >= n

    watch = Watch(kube, deployments_path(ns), rv, all_injected).start()
    cpu_at_trigger = cpu()
    wall = time.time()
    started = time.perf_counter()
    kube.request("POST", tc_collection(CONFIG_NAMESPACE),
                 body=tracing_config(CONFIG_NAMESPACE, config_name(n, run)))
    finished = watch.wait(420, f"{n} injected Deployments in {ns}")
    elapsed = finished - started
    log(f"    operator N={n}: all injected after {elapsed:.2f} s")
    time.sleep(2)  # writes that would follow (re-plans, repeats) must show up in the count
    events = audit.events(user=OPERATOR_USER)
    writes: Counter[str] = Counter()
    posted = 0
    for event in events:
        ref = event.get("objectRef") or {}
        if ref.get("namespace") != ns or event.get("verb") not in ("patch", "update", "create"):
            continue
        if ref.get("resource") == "deployments" and not ref.get("subresource"):
            writes[ref.get("name", "")] += 1
        elif ref.get("resource") == "events":
            posted += 1
    return Run(elapsed, writes, posted, breakdown(events, [(wall, wall + elapsed)]),
               cpu_at_trigger)


def report(results: Results, n: int, floors: list[float], runs: list[Run],
           workers: int) -> None:
    floor, operator = median(floors), median(r.seconds for r in runs)
    each = f"{len(runs)} runs, s: " if len(runs) > 1 else ""
    results.add(Figure(f"injection N={n}: floor ({workers} concurrent PATCH)", round(floor, 3),
                       "s", note=f"median of {len(floors)} runs (before and after the "
                       "operator's), s: " + ", ".join(f"{t:.2f}" for t in floors)))
    results.add(Figure(f"injection N={n}: operator (config applied -> all injected)",
                       round(operator, 3), "s",
                       note=each + ", ".join(f"{r.seconds:.2f}" for r in runs) if each else ""))
    results.add(budgeted(f"injection N={n}: operator / floor", round(operator / floor, 2),
                         "ratio", "<=", 1.3, note="medians" if each else ""))
    total = sum(sum(r.writes.values()) for r in runs)
    per: Counter[int] = Counter()
    for r in runs:
        per.update(r.writes.values())
        per[0] += n - len(r.writes)
    fig = budgeted(f"injection N={n}: writes per workload", round(total / (n * len(runs)), 3),
                   "writes", "==", 1,
                   note=(f"{total} writes on {n * len(runs) - per[0]}/{n * len(runs)} "
                         f"Deployments; writes per Deployment -> Deployments "
                         f"{dict(sorted((k, v) for k, v in per.items() if v))}; "
                         f"plus {sum(r.posted for r in runs)} Events created in the namespace"))
    fig.passed = set(k for k, v in per.items() if v) == {1}
    results.add(fig)
    requests: Counter[str] = Counter()
    for r in runs:
        requests.update(r.requests)
    results.add(Figure(f"injection N={n}: operator requests per workload (floor: 1)",
                       round(sum(requests.values()) / (n * len(runs)), 2), "requests",
                       note="from the config's creation until all were injected: "
                       + describe_counts(requests, len(runs))))
    results.add(Figure(f"injection N={n}: operator CPU for the pass",
                       round(median(r.cpu for r in runs), 2), "CPU s",
                       note="from the config's creation until the operator is idle again "
                       "(its own writes come back as watch events)"))


def cleanup_configs(kube: Kube) -> None:
    for n in SIZES:
        for r in range(repeats(n)):
            kube.delete(API_VERSION, KIND, CONFIG_NAMESPACE, config_name(n, r))
