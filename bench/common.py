"""Shared pieces of the benchmark: results, progress, a raw client, watches, the audit log,
bulk object creation and the operator process.

Everything here talks to the real local control plane (devtools/xray_dev/cluster.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3

from xray_dev.cluster import Cluster
from xray_operator.reconcile.kube import Kube, KubeError

Obj = dict[str, Any]
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
BENCH_LABEL = "bench.xray-operator.dev/run"
# Namespace of the bench's TracingConfigs (their children live there too).
CONFIG_NAMESPACE = "bench-system"
_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} +{time.monotonic() - _T0:6.1f}s] {message}",
          flush=True)


@dataclass
class Figure:
    figure: str
    value: float | None
    unit: str
    budget: str = ""  # e.g. "<= 1.5"; empty: informational
    passed: bool | None = None  # None: no budget
    note: str = ""

    def as_json(self) -> Obj:
        return {
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "budget": self.budget or None,
            "pass": self.passed,
            "note": self.note or None,
        }


def check(value: float | None, op: str, limit: float) -> bool | None:
    if value is None:
        return False
    return {"<=": value <= limit, "<": value < limit, "==": value == limit}[op]


def budgeted(name: str, value: float | None, unit: str, op: str, limit: float,
             note: str = "") -> Figure:
    return Figure(name, value, unit, f"{op} {limit:g}", check(value, op, limit), note)


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        status = "" if figure.passed is None else (" PASS" if figure.passed else " FAIL")
        value = "n/a" if figure.value is None else f"{figure.value:g}"
        log(f"  = {figure.figure}: {value} {figure.unit}"
            f"{' (budget ' + figure.budget + ')' if figure.budget else ''}{status}")
        return figure


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------------------------------
# Raw client access (metrics text, watch streams) on top of the operator's own Kube client.


def kube_for(cluster: Cluster, pool: int = 16) -> Kube:
    api = cluster.api_client()
    api.configuration.connection_pool_maxsize = pool
    # The pool size is read when the REST client is built: rebuild it.
    from kubernetes.client import rest

    api.rest_client = rest.RESTClientObject(api.configuration)
    return Kube(api)


def _url_and_headers(kube: Kube, path: str) -> tuple[str, dict[str, str]]:
    _, url, headers, _, _ = kube.api.param_serialize(
        method="GET", resource_path=path, header_params={"Accept": "*/*"},
        auth_settings=["BearerToken"],
    )
    return url, headers


def raw_get(kube: Kube, path: str, timeout: float = 30) -> bytes:
    url, headers = _url_and_headers(kube, path)
    resp = kube.api.rest_client.pool_manager.request(
        "GET", url, headers=headers, timeout=timeout, preload_content=True)
    if resp.status >= 400:
        raise KubeError(resp.status, str(resp.reason), resp.data[:300].decode(errors="replace"))
    return bytes(resp.data)


def list_rv(kube: Kube, collection: str) -> tuple[list[Obj], str]:
    result = kube.request("GET", collection)
    return result.get("items", []), str(result["metadata"]["resourceVersion"])


class Watch:
    """A watch on a collection from a resourceVersion, in a thread. `on_event(type, obj)`
    returns True once the condition waited for holds; `wait()` returns the perf_counter time
    at which that event arrived."""

    def __init__(self, kube: Kube, collection: str, resource_version: str,
                 on_event: Callable[[str, Obj], bool]) -> None:
        self.kube = kube
        self.collection = collection
        self.rv = resource_version
        self.on_event = on_event
        self.done_at: float | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._resp: Any = None

    def start(self) -> Watch:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self.done_at is None:
                self._stream()
        except BaseException as err:  # reported by wait()
            self.error = err

    def _stream(self) -> None:
        path = (f"{self.collection}?watch=1&allowWatchBookmarks=true"
                f"&resourceVersion={self.rv}&timeoutSeconds=600")
        url, headers = _url_and_headers(self.kube, path)
        self._resp = self.kube.api.rest_client.pool_manager.request(
            "GET", url, headers=headers, preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=None))
        buffer = b""
        for chunk in self._resp.stream(65536, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                self.rv = (obj.get("metadata") or {}).get("resourceVersion", self.rv)
                if event.get("type") in ("BOOKMARK", "ERROR"):
                    if event.get("type") == "ERROR":
                        raise RuntimeError(f"watch error: {obj}")
                    continue
                if self.on_event(str(event.get("type")), obj):
                    self.done_at = time.perf_counter()
                    self._resp.release_conn()
                    return
                if self._stop.is_set():
                    return

    def wait(self, timeout: float, what: str) -> float:
        self._thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"watch for {what} failed: {self.error}") from self.error
        if self.done_at is None:
            self.stop()
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        return self.done_at

    def stop(self) -> None:
        self._stop.set()
        if self._resp is not None:
            with contextlib.suppress(Exception):
                self._resp.shutdown()


# ---------------------------------------------------------------------------------------------
# Objects


def namespace(kube: Kube, name: str, annotations: dict[str, str] | None = None) -> None:
    body: Obj = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": name, "labels": {BENCH_LABEL: "true"}}}
    if annotations:
        body["metadata"]["annotations"] = annotations
    kube.apply(body, field_manager="bench")


def deployment(ns: str, name: str, annotations: dict[str, str] | None = None) -> Obj:
    """replicas 0: pods are not what is measured, and 2,000 Deployments' pods would swamp
    the 2-core machine."""
    meta: Obj = {"name": name, "namespace": ns, "labels": {"app": name}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "app", "image": PAUSE_IMAGE,
                 "env": [{"name": "PORT", "value": "8080"}]}]}},
        },
    }


def create_all(kube: Kube, objects: list[Obj], what: str, workers: int = 8) -> None:
    """POST every object (a few at once); progress every 250."""
    started = time.monotonic()
    count = 0
    lock = threading.Lock()

    def one(obj: Obj) -> None:
        nonlocal count
        ns = obj["metadata"].get("namespace")
        prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        plural = {"Deployment": "deployments", "Pod": "pods"}[obj["kind"]]
        for attempt in range(5):
            try:
                kube.request("POST", f"{prefix}/namespaces/{ns}/{plural}", body=obj)
                break
            except KubeError as err:
                if err.conflict and "already exists" in err.message:
                    break
                if attempt == 4 or err.status not in (0, 429, 500, 503, 504):
                    raise
                time.sleep(0.5 * (attempt + 1))
        with lock:
            count += 1
            if count % 250 == 0:
                log(f"    {what}: {count}/{len(objects)} created")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="create") as pool:
        list(pool.map(one, objects))
    log(f"    {what}: {len(objects)} created in {time.monotonic() - started:.1f} s")


def wait_namespaces_gone(kube: Kube, names: list[str], timeout: float = 240) -> None:
    started = time.monotonic()
    deadline = started + timeout
    remaining = list(names)
    while remaining and time.monotonic() < deadline:
        remaining = [n for n in remaining if kube.get("v1", "Namespace", None, n) is not None]
        if remaining:
            time.sleep(1)
    if remaining:
        raise TimeoutError(f"namespaces still terminating after {timeout:.0f} s: {remaining}")
    log(f"    namespaces {', '.join(names)} gone after {time.monotonic() - started:.1f} s")


def delete_namespaces(kube: Kube, names: list[str], wait: bool = True) -> None:
    for name in names:
        kube.delete("v1", "Namespace", None, name)
    if wait:
        wait_namespaces_gone(kube, names)


def delete_deployments(kube: Kube, names: list[str], timeout: float = 120) -> None:
    """Every Deployment in these namespaces gone (one DELETE collection each), then the
    namespaces deleted without waiting: namespace deletion takes the namespace controller tens
    of seconds, the Deployments are what must be gone."""
    started = time.monotonic()
    for name in names:
        kube.request("DELETE", f"/apis/apps/v1/namespaces/{name}/deployments",
                     body={"apiVersion": "v1", "kind": "DeleteOptions",
                           "propagationPolicy": "Background"})
    wait_for(lambda: all(not kube.request("GET", f"/apis/apps/v1/namespaces/{n}/deployments")
                         ["items"] for n in names), timeout, "the floor's Deployments gone", 0.5)
    delete_namespaces(kube, names, wait=False)
    log(f"    Deployments in {', '.join(names)} gone after {time.monotonic() - started:.1f} s")


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------------------------
# The audit log: the API server's own record of every request.


class Audit:
    """Reads the audit log from the offset it had when created (or at `mark()`), across a
    rotation (--audit-log-maxsize: a long-lived cluster's log is renamed to audit-<time>.log
    and started afresh)."""

    def __init__(self, cluster: Cluster, kube: Kube) -> None:
        self.path = cluster.audit_log
        self.kube = kube
        self.mark()

    def mark(self) -> None:
        stat = self.path.stat()
        self.inode, self.offset = stat.st_ino, stat.st_size

    def events(self, user: str | None = None) -> list[Obj]:
        """ResponseComplete events since the mark (see events_all_stages)."""
        return [e for e in self.events_all_stages(user) if e.get("stage") == "ResponseComplete"]

    def events_all_stages(self, user: str | None = None) -> list[Obj]:
        """Events since the mark, after making sure the batch backend has flushed everything
        up to now (a request made now must appear)."""
        marker = f"bench-audit-marker-{uuid.uuid4().hex[:10]}"
        self.kube.get("v1", "ConfigMap", "default", marker)
        lines: list[Obj] = wait_for(lambda: self._read(marker), timeout=30, what="audit flush",
                                    interval=0.25)
        return [e for e in lines
                if user is None or (e.get("user") or {}).get("username") == user]

    def _since_mark(self) -> bytes:
        if self.path.stat().st_ino == self.inode:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                return handle.read()
        # Rotated: the rest of the file we marked (now renamed), then the new one.
        data = b""
        for old in self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"):
            if old.stat().st_ino == self.inode:
                with old.open("rb") as handle:
                    handle.seek(self.offset)
                    data = handle.read()
        return data + self.path.read_bytes()

    def _read(self, marker: str) -> list[Obj] | None:
        data = self._since_mark()
        if marker.encode() not in data:
            return None
        return [json.loads(raw) for raw in data.splitlines() if raw.strip()]


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def is_write(event: Obj) -> bool:
    return event.get("verb") in WRITE_VERBS


def received(event: Obj) -> float:
    """requestReceivedTimestamp as epoch seconds."""
    text = str(event["requestReceivedTimestamp"]).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def breakdown(events: list[Obj], windows: list[tuple[float, float]]) -> Counter[str]:
    """Requests received inside any of the (start, end) epoch windows, by "verb resource"."""
    counts: Counter[str] = Counter()
    for event in events:
        stamp = received(event)
        if any(start <= stamp <= end for start, end in windows):
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "?") + (
                f"/{ref['subresource']}" if ref.get("subresource") else "")
            counts[f"{event.get('verb')} {resource}"] += 1
    return counts


def describe_counts(counts: Counter[str], per: float = 1.0) -> str:
    return ", ".join(f"{name} {n / per:g}" for name, n in counts.most_common())


# ---------------------------------------------------------------------------------------------
# Process statistics


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[0] is the state (3rd field of the file): utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / ticks


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out
