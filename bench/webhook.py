"""Figure 4: admission webhook latency at 50 Pod creations per second.

A TracingConfig in webhook mode makes the operator register its MutatingWebhookConfiguration
(url https://127.0.0.1:<port>/inject-pods). Pods are created in an opted-in namespace at a
fixed rate of RATE per second for SECONDS, each with a scheduling gate (they stay Pending: the
scheduler and kwok are not what is measured). Every create response must carry the address.

- As the API server sees it: apiserver_admission_webhook_admission_duration_seconds for the
  webhook, from /metrics before and after the load (bucket differences -> quantiles, linear
  interpolation within a bucket as Prometheus' histogram_quantile does; the buckets are coarse,
  so the pass/fail test is "at least 99% of calls in the le=0.005 bucket").
- Next to the operator: the operator exposes no latency measurement of its own, so the bench
  POSTs the same AdmissionReview to the operator's webhook endpoint itself (TLS, keep-alive, one
  connection, RATE per second) and times each round trip.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    CONFIG_NAMESPACE,
    PAUSE_IMAGE,
    Figure,
    Results,
    budgeted,
    log,
    namespace,
    quantile,
    raw_get,
    wait_for,
)
from bench.operator_run import OPERATOR_NAMESPACE, Operator
from bench.reconcile import tc_collection, tracing_config
from xray_operator.constants import DAEMON_ADDRESS_ENV, INJECT_ANNOTATION
from xray_operator.reconcile.kube import Kube, KubeError
from xray_operator.render.webhook import WEBHOOK_ID, WEBHOOK_NAME, configuration_name

RATE = 50
SECONDS = 10
LOAD_NAMESPACE = "bench-webhook"
CONFIG_NAME = "bench-webhook"
METRIC = "apiserver_admission_webhook_admission_duration_seconds"
Obj = dict[str, Any]


def pod(ns: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "load-", "namespace": ns, "labels": {"app": "load"}},
        "spec": {
            "schedulingGates": [{"name": "bench.xray-operator.dev/hold"}],
            "automountServiceAccountToken": False,
            "containers": [{"name": "app", "image": PAUSE_IMAGE}],
        },
    }


def has_address(obj: Obj) -> bool:
    return any(e.get("name") == DAEMON_ADDRESS_ENV
               for c in obj["spec"]["containers"] for e in c.get("env") or [])


def histogram(kube: Kube) -> dict[float, float]:
    """Cumulative bucket counts (le -> count) of our webhook's admit calls."""
    buckets: dict[float, float] = defaultdict(float)
    for line in raw_get(kube, "/metrics").decode().splitlines():
        if not line.startswith(METRIC + "_bucket{") or f'name="{WEBHOOK_NAME}"' not in line:
            continue
        labels, value = line.rsplit(" ", 1)
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        buckets[float("inf") if le == "+Inf" else float(le)] += float(value)
    return dict(buckets)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower
            inside = buckets[le] - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, buckets[le]
    return None


def paced(total: int, rate: float, action: Any, workers: int = 16) -> list[float]:
    """Start `action()` `total` times at `rate` per second; latencies of each (seconds)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        started = time.perf_counter()
        action()
        with lock:
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paced") as pool:
        futures = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one))
        for future in futures:
            future.result()
    achieved = total / (time.perf_counter() - start)
    log(f"    {total} calls at {achieved:.1f}/s")
    return latencies


def setup(kube: Kube, op: Operator) -> None:
    kube.request("POST", tc_collection(CONFIG_NAMESPACE), body=tracing_config(
        CONFIG_NAMESPACE, CONFIG_NAME, injection={"mode": "webhook"}))
    name = configuration_name(OPERATOR_NAMESPACE)
    wait_for(lambda: kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
                              None, name), 60, f"MutatingWebhookConfiguration {name}")
    wait_for(op.webhook_listening, 30, "the operator's webhook server")
    namespace(kube, LOAD_NAMESPACE, {INJECT_ANNOTATION: f"{CONFIG_NAMESPACE}/{CONFIG_NAME}"})
    wait_for(lambda: kube.get("v1", "ServiceAccount", LOAD_NAMESPACE, "default"), 60,
             "the default ServiceAccount")

    # The API server picks the configuration up a moment after it exists: warm up until a
    # created Pod comes back with the address.
    def warm() -> bool:
        created = kube.request("POST", f"/api/v1/namespaces/{LOAD_NAMESPACE}/pods",
                               body=pod(LOAD_NAMESPACE))
        return has_address(created)
    wait_for(warm, 60, "a Pod mutated by the webhook", interval=0.5)


def measure_apiserver(kube: Kube) -> tuple[dict[float, float], list[float], int]:
    before = histogram(kube)
    created: list[bool] = []

    def create() -> None:
        try:
            obj = kube.request("POST", f"/api/v1/namespaces/{LOAD_NAMESPACE}/pods",
                               body=pod(LOAD_NAMESPACE))
            created.append(has_address(obj))
        except KubeError as err:
            log(f"    pod create failed: {err}")
            created.append(False)

    client = paced(RATE * SECONDS, RATE, create)
    time.sleep(1)
    after = histogram(kube)
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    return delta, client, sum(created)


def measure_direct(op: Operator) -> tuple[list[float], int]:
    """The AdmissionReview the API server sends, POSTed by the bench to the operator."""
    context = ssl.create_default_context(cafile=str(op.cert_dir / "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", op.webhook_port, context=context, timeout=10)
    template = pod(LOAD_NAMESPACE)
    template["metadata"]["name"] = "direct"
    patched = 0
    lock = threading.Lock()

    def review() -> None:
        nonlocal patched
        body = json.dumps({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": LOAD_NAMESPACE, "operation": "CREATE",
                "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
                "object": template, "oldObject": None, "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        })
        with lock:  # one connection, as the API server keeps one alive per webhook
            conn.request("POST", f"/{WEBHOOK_ID}", body=body,
                         headers={"Content-Type": "application/json"})
            response = json.loads(conn.getresponse().read())
        if (response.get("response") or {}).get("patch"):
            patched += 1

    latencies = paced(RATE * SECONDS, RATE, review, workers=4)
    conn.close()
    return latencies, patched


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def report(results: Results, buckets: dict[float, float], client: list[float], created: int,
           direct: list[float], patched: int) -> None:
    total = buckets.get(float("inf"), 0.0)
    within = buckets.get(0.005, 0.0)
    share = within / total if total else 0.0
    p50 = histogram_quantile(0.5, buckets)
    p99 = histogram_quantile(0.99, buckets)
    shown = {("+Inf" if k == float("inf") else k): int(v) for k, v in sorted(buckets.items())}
    note = (f"{int(total)} webhook calls counted by the API server; {share:.1%} in the "
            f"le=5ms bucket; {created}/{RATE * SECONDS} created Pods carry the address; "
            f"buckets {shown}")
    results.add(Figure("webhook: API server p50 (histogram)", ms(p50), "ms", note=note))
    fig = budgeted("webhook: API server p99 (histogram)", ms(p99), "ms", "<", 5,
                   note="pass = at least 99% of calls in the le=0.005 bucket")
    fig.passed = share >= 0.99 and created == RATE * SECONDS
    results.add(fig)
    results.add(Figure("webhook: Pod create round trip p50 (client)",
                       round(quantile(client, 0.5) * 1000, 2), "ms"))
    results.add(Figure("webhook: Pod create round trip p99 (client)",
                       round(quantile(client, 0.99) * 1000, 2), "ms"))
    direct_note = f"{patched}/{len(direct)} answers carried a patch"
    results.add(Figure("webhook: operator endpoint p50 (direct AdmissionReview)",
                       round(quantile(direct, 0.5) * 1000, 2), "ms", note=direct_note))
    results.add(budgeted("webhook: operator endpoint p99 (direct AdmissionReview)",
                         round(quantile(direct, 0.99) * 1000, 2), "ms", "<", 5,
                         note=direct_note))
