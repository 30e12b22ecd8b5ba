"""Deployment-mode injection against the real API server and controller-manager.

These drive reconcile/injection.py directly (what the operator's handlers call), against the
real server-side apply implementation: merging env lists by name, releasing fields a manager
stops applying, and leaving every other manager's fields alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from xray_dev.audit import Audit
from xray_dev.cluster import Cluster
from xray_dev.fixtures_cluster import wait_for
from xray_operator.constants import (
    API_VERSION,
    INJECT_ANNOTATION,
    INJECTED_BY_ANNOTATION,
    KIND,
)
from xray_operator.reconcile.injection import (
    InjectionResult,
    injected_counts,
    reconcile_all,
    targets_from_configs,
)
from xray_operator.reconcile.kube import Kube
from xray_operator.render.injection import Target

pytestmark = pytest.mark.integration

PAUSE = "registry.k8s.io/pause:3.10"
ADDR = "AWS_XRAY_DAEMON_ADDRESS"
Obj = dict[str, Any]


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster.api_client())


@pytest.fixture
def audit(cluster: Cluster, kube: Kube) -> Audit:
    return Audit(cluster, kube)


def tracing_config(kube: Kube, namespace: str, name: str = "default", **spec: Any) -> Obj:
    body = {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"region": "us-east-1", **spec}}
    return kube.request("POST", f"/apis/{API_VERSION}/namespaces/{namespace}/tracingconfigs",
                        body=body)


def workload(namespace: str, name: str, *, kind: str = "Deployment",
             annotations: dict[str, str] | None = None,
             containers: list[Obj] | None = None, init: list[Obj] | None = None,
             replicas: int = 1) -> Obj:
    pod_spec: Obj = {"containers": containers or [{"name": "app", "image": PAUSE}]}
    if init:
        pod_spec["initContainers"] = init
    spec: Obj = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": annotations or {}},
            "spec": spec}


def create(kube: Kube, obj: Obj) -> Obj:
    plural = {"Deployment": "deployments", "StatefulSet": "statefulsets",
              "DaemonSet": "daemonsets"}[obj["kind"]]
    created = kube.request(
        "POST", f"/apis/apps/v1/namespaces/{obj['metadata']['namespace']}/{plural}", body=obj)
    created.setdefault("apiVersion", "apps/v1")
    created.setdefault("kind", obj["kind"])
    return created


def get(kube: Kube, obj: Obj) -> Obj:
    found = kube.get("apps/v1", obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
    assert found is not None
    return found


def targets_in(kube: Kube, namespace: str) -> list[Target]:
    # Other tests may run default configs elsewhere; only this namespace's count here.
    return targets_from_configs(kube.list(API_VERSION, KIND, namespace))


def reconcile(kube: Kube, namespace: str) -> dict[str, InjectionResult]:
    return {r.name: r for r in reconcile_all(kube, targets_in(kube, namespace), namespace)}


def containers(obj: Obj) -> list[Obj]:
    value: list[Obj] = obj["spec"]["template"]["spec"]["containers"]
    return value


def env_of(obj: Obj, index: int = 0) -> dict[str, Any]:
    env = containers(obj)[index].get("env", [])
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def events(kube: Kube, namespace: str, name: str) -> list[Obj]:
    items: list[Obj] = kube.request(
        "GET", f"/api/v1/namespaces/{namespace}/events",
        query={"fieldSelector": f"involvedObject.name={name}"})["items"]
    return [e for e in items if e.get("source", {}).get("component") == "xray-operator"]


def pods_of(kube: Kube, namespace: str, app: str) -> list[Obj]:
    return [p for p in kube.list("v1", "Pod", namespace, label_selector=f"app={app}")
            if not p["metadata"].get("deletionTimestamp")]


def test_annotated_deployment_gets_the_address_and_its_pods_carry_it(
    kube: Kube, namespace: str, crd: Any, audit: Audit
) -> None:
    tracing_config(kube, namespace, default=True)
    annotated = create(kube, workload(namespace, "checkout",
                                      annotations={INJECT_ANNOTATION: "true"}))
    plain = create(kube, workload(namespace, "plain"))

    results = reconcile(kube, namespace)

    assert results["checkout"].wrote and not results["plain"].wrote
    assert audit.writes(namespace) == Counter({"checkout": 1})
    injected = get(kube, annotated)
    assert injected["metadata"]["generation"] == annotated["metadata"]["generation"] + 1
    expected = f"default-daemon.{namespace}.svc.cluster.local:2000"
    assert env_of(injected) == {ADDR: expected}
    assert "xray-operator-injection" not in {
        m["manager"] for m in get(kube, plain)["metadata"]["managedFields"]}
    assert injected_counts(results.values())[f"{namespace}/default"] == 1

    def injected_pods() -> list[Obj]:
        pods = pods_of(kube, namespace, "checkout")
        return pods if pods and all(
            {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env", [])}
            .get(ADDR) == expected for p in pods) else []

    wait_for(injected_pods, timeout=60, what="checkout pods created with the address")
    assert [e["reason"] for e in events(kube, namespace, "checkout")] == ["Injected"]

    # Steady state: a second pass writes nothing at all.
    again = reconcile(kube, namespace)
    assert not any(r.wrote for r in again.values())
    assert audit.writes(namespace) == Counter()
    assert len(events(kube, namespace, "checkout")) == 1


@pytest.mark.parametrize("opt_out", ["false", None], ids=["inject=false", "annotation removed"])
def test_opting_out_restores_the_workload_byte_for_byte(
    kube: Kube, namespace: str, crd: Any, opt_out: str | None
) -> None:
    tracing_config(kube, namespace, "nodes", default=True, daemon={"hostPort": True},
                   injection={"addressMode": "hostIP"})
    original = create(kube, workload(
        namespace, "shop", annotations={INJECT_ANNOTATION: f"{namespace}/nodes"},
        containers=[
            {"name": "app", "image": PAUSE, "env": [{"name": "LOG", "value": "debug"}],
             "envFrom": [{"configMapRef": {"name": "settings", "optional": True}}]},
            {"name": "worker", "image": PAUSE},
        ],
        init=[{"name": "migrate", "image": PAUSE, "env": [{"name": "DB", "value": "x"}]}],
        replicas=0,
    ))
    reconcile(kube, namespace)
    injected = get(kube, original)
    assert [e["name"] for e in containers(injected)[0]["env"]] == ["LOG", "HOST_IP", ADDR]
    assert [e["name"] for e in containers(injected)[1]["env"]] == ["HOST_IP", ADDR]
    assert env_of(injected)[ADDR] == "$(HOST_IP):2000"
    assert injected["spec"]["template"]["spec"]["initContainers"] == \
        original["spec"]["template"]["spec"]["initContainers"]

    kube.merge_patch("apps/v1", "Deployment", namespace, "shop",
                     {"metadata": {"annotations": {INJECT_ANNOTATION: opt_out}}})
    results = reconcile(kube, namespace)

    assert results["shop"].wrote
    restored = get(kube, original)
    assert restored["spec"]["template"] == original["spec"]["template"]
    assert restored["spec"] == {**original["spec"], "template": restored["spec"]["template"]}
    assert INJECTED_BY_ANNOTATION not in restored["metadata"]["annotations"]
    managers = {m["manager"] for m in restored["metadata"]["managedFields"]}
    assert "xray-operator-injection" not in managers
    assert sorted(e["reason"] for e in events(kube, namespace, "shop")) == \
        ["Injected", "InjectionRemoved"]
    assert not any(r.wrote for r in reconcile(kube, namespace).values())


def test_hand_set_address_is_kept_and_reported_once(
    kube: Kube, namespace: str, crd: Any
) -> None:
    tracing_config(kube, namespace, default=True)
    original = create(kube, workload(
        namespace, "legacy", annotations={INJECT_ANNOTATION: "true"}, replicas=0,
        containers=[{"name": "app", "image": PAUSE,
                     "env": [{"name": ADDR, "value": "10.9.8.7:2000"}]},
                    {"name": "sidecar", "image": PAUSE}]))
    results = reconcile(kube, namespace)
    assert results["legacy"].hand_set == ("app",)

    live = get(kube, original)
    assert containers(live)[0] == containers(original)[0]
    assert env_of(live, 1) == {ADDR: f"default-daemon.{namespace}.svc.cluster.local:2000"}
    warnings = [e for e in events(kube, namespace, "legacy") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["DaemonAddressSetByHand"]
    assert "'app'" in warnings[0]["message"]

    assert not reconcile(kube, namespace)["legacy"].wrote
    assert len(events(kube, namespace, "legacy")) == 2  # Injected (sidecar) + the warning


def test_address_change_and_config_deletion(kube: Kube, namespace: str, crd: Any) -> None:
    tracing_config(kube, namespace, default=True)
    original = create(kube, workload(namespace, "api", annotations={INJECT_ANNOTATION: "true"},
                                     replicas=0))
    reconcile(kube, namespace)
    generation = get(kube, original)["metadata"]["generation"]

    kube.merge_patch(API_VERSION, KIND, namespace, "default",
                     {"spec": {"daemon": {"udpPort": 2100, "tcpPort": 2100}}})
    assert reconcile(kube, namespace)["api"].wrote
    moved = get(kube, original)
    assert env_of(moved) == {ADDR: f"default-daemon.{namespace}.svc.cluster.local:2100"}
    assert moved["metadata"]["generation"] == generation + 1

    kube.delete(API_VERSION, KIND, namespace, "default")
    wait_for(lambda: kube.get(API_VERSION, KIND, namespace, "default") is None, timeout=30,
             what="TracingConfig gone")
    assert reconcile(kube, namespace)["api"].wrote
    assert get(kube, original)["spec"]["template"] == original["spec"]["template"]


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulsets_and_daemonsets_are_injected_too(
    kube: Kube, namespace: str, crd: Any, kind: str
) -> None:
    tracing_config(kube, namespace, default=True)
    original = create(kube, workload(namespace, "db", kind=kind, replicas=0,
                                     annotations={INJECT_ANNOTATION: "true"}))
    assert reconcile(kube, namespace)["db"].wrote
    live = get(kube, original)
    assert ADDR in env_of(live)
    assert live["metadata"]["generation"] == original["metadata"]["generation"] + 1


def test_namespace_opt_in_and_workload_opt_out(
    kube: Kube, namespace: str, crd: Any, audit: Audit
) -> None:
    tracing_config(kube, namespace, default=True)
    kube.merge_patch("v1", "Namespace", None, namespace,
                     {"metadata": {"annotations": {INJECT_ANNOTATION: "true"}}})
    inherits = create(kube, workload(namespace, "inherits", replicas=0))
    opts_out = create(kube, workload(namespace, "optsout", replicas=0,
                                     annotations={INJECT_ANNOTATION: "false"}))
    results = reconcile(kube, namespace)
    assert results["inherits"].wrote and not results["optsout"].wrote
    assert ADDR in env_of(get(kube, inherits))
    assert ADDR not in env_of(get(kube, opts_out))
    assert audit.writes(namespace) == Counter({"inherits": 1})


def test_two_hundred_deployments_are_each_injected_with_one_write(
    kube: Kube, namespace: str, crd: Any, audit: Audit,
    record_property: Callable[[str, object], None],
) -> None:
    tracing_config(kube, namespace, default=True)
    count = 200
    created = [create(kube, workload(namespace, f"svc-{i}", replicas=0,
                                     annotations={INJECT_ANNOTATION: "true"}))
               for i in range(count)]

    # The floor: one bare PATCH making the same kind of change (an env entry in the pod
    # template) by a plain client on the same server, on a separate set of deployments.
    floor = [create(kube, workload(namespace, f"floor-{i}", replicas=0)) for i in range(50)]
    start = time.perf_counter()
    for obj in floor:
        kube.request(
            "PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{obj['metadata']['name']}",
            body={"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "FLOOR", "value": "1"}]}]}}}},
            content_type="application/strategic-merge-patch+json")
    per_patch = (time.perf_counter() - start) / len(floor)
    audit.writes(namespace)  # start counting here

    start = time.perf_counter()
    results = reconcile(kube, namespace)
    elapsed = time.perf_counter() - start

    assert sum(r.wrote for r in results.values()) == count
    writes = audit.writes(namespace)
    assert {name: n for name, n in writes.items() if name.startswith("svc-")} == \
        {obj["metadata"]["name"]: 1 for obj in created}
    for obj in created:
        live = get(kube, obj)
        assert live["metadata"]["generation"] == obj["metadata"]["generation"] + 1
        assert ADDR in env_of(live)
    record_property("inject_200_seconds", round(elapsed, 2))
    record_property("bare_patch_seconds_x200", round(per_patch * count, 2))
    print(f"\n200 deployments injected in {elapsed:.2f} s "
          f"(200 bare PATCH calls ~ {per_patch * count:.2f} s)")
    assert not any(r.wrote for r in reconcile(kube, namespace).values())
    # Informational on a shared 2-core machine; bench/ holds the enforced ratio.
    record_property("inject_vs_floor_ratio", round(elapsed / (per_patch * count), 2))


def test_a_gitops_owner_of_the_old_value_is_not_overridden(
    kube: Kube, namespace: str, crd: Any
) -> None:
    """A GitOps tool that applied the injected entry itself co-owns it; when the address
    changes, injection reports the conflict instead of fighting over the value."""
    tracing_config(kube, namespace, default=True)
    original = create(kube, workload(namespace, "gitops", replicas=0,
                                     annotations={INJECT_ANNOTATION: "true"}))
    reconcile(kube, namespace)
    address = f"default-daemon.{namespace}.svc.cluster.local:2000"
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "gitops", "namespace": namespace},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "app", "env": [{"name": ADDR, "value": address}]}]}}}},
               field_manager="argocd", force=False)

    kube.merge_patch(API_VERSION, KIND, namespace, "default",
                     {"spec": {"daemon": {"udpPort": 2100, "tcpPort": 2100}}})
    result = reconcile(kube, namespace)["gitops"]

    assert not result.wrote and result.error is not None and "argocd" in result.error
    assert env_of(get(kube, original)) == {ADDR: address}
    assert [e["reason"] for e in events(kube, namespace, "gitops")].count("InjectionConflict") == 1

    # Asked again with nothing changed: same report, no new request, no new Event.
    again = reconcile(kube, namespace)["gitops"]
    assert again.error == result.error and not again.wrote
    assert [e["reason"] for e in events(kube, namespace, "gitops")].count("InjectionConflict") == 1
