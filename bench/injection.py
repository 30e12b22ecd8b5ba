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
from concurrent.futures import ThreadPoolExecutor
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
Obj = dict[str, Any]


def operator_workers() -> int:
    """Concurrency of the operator's full injection pass (its default)."""
    default = inspect.signature(reconcile_injection.reconcile_all).parameters["workers"].default
    return int(default) if isinstance(default, int) else 1


def config_name(n: int) -> str:
    return f"bench-inject-{n}"


def deployments_for(ns: str, n: int) -> list[Obj]:
    annotations = {INJECT_ANNOTATION: f"{CONFIG_NAMESPACE}/{config_name(n)}"}
    return [deployment(ns, f"app-{i:04d}", annotations) for i in range(n)]


def deployments_path(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments"


def has_address(obj: Obj) -> bool:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers") or []
    return any(e.get("name") == DAEMON_ADDRESS_ENV for c in containers for e in c.get("env") or [])


# ---------------------------------------------------------------------------------------------
# Floor


def floor_namespace(n: int) -> str:
    return f"bench-floor-inject-{n}"


def measure_floor(kube: Kube, n: int, workers: int) -> float:
    ns = floor_namespace(n)
    namespace(kube, ns)
    create_all(kube, deployments_for(ns, n), f"floor {n} Deployments")
    config = TracingConfig.from_object(tracing_config(CONFIG_NAMESPACE, config_name(n)))
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


def operator_namespace(n: int) -> str:
    return f"bench-inject-{n}"


def measure_operator(kube: Kube, audit: Audit, n: int
                     ) -> tuple[float, Counter[str], int, Counter[str]]:
    """(seconds, operator writes per Deployment name, operator Event creations there,
    all the operator's requests from the trigger until all were injected)."""
    ns = operator_namespace(n)
    namespace(kube, ns)
    audit.mark()
    create_all(kube, deployments_for(ns, n), f"operator {n} Deployments")
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
    wall = time.time()
    started = time.perf_counter()
    kube.request("POST", tc_collection(CONFIG_NAMESPACE),
                 body=tracing_config(CONFIG_NAMESPACE, config_name(n)))
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
    return elapsed, writes, posted, breakdown(events, [(wall, wall + elapsed)])


def report(results: Results, n: int, floor: float, operator: float, writes: Counter[str],
           posted: int, workers: int, requests: Counter[str]) -> None:
    results.add(Figure(f"injection N={n}: floor ({workers} concurrent PATCH)", round(floor, 3),
                       "s"))
    results.add(Figure(f"injection N={n}: operator (config applied -> all injected)",
                       round(operator, 3), "s"))
    results.add(budgeted(f"injection N={n}: operator / floor", round(operator / floor, 2),
                         "ratio", "<=", 1.3))
    per = Counter(writes.values())
    exact = len(writes) == n and set(per) == {1}
    total = sum(writes.values())
    fig = budgeted(f"injection N={n}: writes per workload", round(total / n, 3), "writes",
                   "==", 1,
                   note=(f"{total} writes on {len(writes)}/{n} Deployments; "
                         f"distribution {dict(sorted(per.items()))}; "
                         f"plus {posted} Events created in the namespace"))
    fig.passed = exact
    results.add(fig)
    results.add(Figure(f"injection N={n}: operator requests per workload (floor: 1)",
                       round(sum(requests.values()) / n, 2), "requests",
                       note="from the config's creation until all were injected: "
                       + describe_counts(requests)))


def cleanup_configs(kube: Kube) -> None:
    for n in SIZES:
        kube.delete(API_VERSION, KIND, CONFIG_NAMESPACE, config_name(n))
