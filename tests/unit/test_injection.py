"""Injection decisions and the apply body a workload gets (deployment mode)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from xray_operator.constants import (
    CONTAINERS_ANNOTATION,
    INJECT_ANNOTATION,
    INJECTED_BY_ANNOTATION,
    INJECTION_FIELD_MANAGER,
)
from xray_operator.model import TracingConfig
from xray_operator.render.injection import (
    HOST_IP_ENTRY,
    Target,
    decide,
    owned_env,
    plan_workload,
    target_for,
    valid_address,
)

SERVICE = Target(
    config="xray-system/default",
    default=True,
    mode="deployment",
    address="default-daemon.xray-system.svc.cluster.local:2000",
    host_ip=False,
)
HOSTIP = Target(
    config="xray-system/nodes", default=False, mode="deployment",
    address="$(HOST_IP):2000", host_ip=True,
)
WEBHOOK = Target(
    config="xray-system/hooked", default=False, mode="webhook",
    address="hooked-daemon.xray-system.svc.cluster.local:2000", host_ip=False,
)
TARGETS = [SERVICE, HOSTIP, WEBHOOK]
ADDR = "AWS_XRAY_DAEMON_ADDRESS"


def deployment(
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": containers if containers is not None else [{"name": "app", "image": "a"}],
    }
    if init is not None:
        pod_spec["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout",
            "namespace": "shop",
            "annotations": annotations or {},
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update",
                 "fieldsV1": {"f:spec": {}}},
            ],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {"metadata": {"labels": {"app": "checkout"}}, "spec": pod_spec},
        },
    }


def as_applied(workload: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns after the injection manager applied `body` for the first
    time: env entries appended, annotation set, and the manager's managedFields entry."""
    live = copy.deepcopy(workload)
    containers = {c["name"]: c for c in live["spec"]["template"]["spec"]["containers"]}
    fields: dict[str, Any] = {}
    for applied in body.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        env = containers[applied["name"]].setdefault("env", [])
        names = [e["name"] for e in env]
        for entry in applied["env"]:
            if entry["name"] in names:
                env[names.index(entry["name"])] = entry
            else:
                env.append(entry)
        fields[json.dumps({"name": applied["name"]}, separators=(",", ":"))] = {
            "f:env": {"k:" + json.dumps({"name": e["name"]}, separators=(",", ":")): {}
                      for e in applied["env"]},
        }
    annotations = body["metadata"].get("annotations", {})
    live["metadata"]["annotations"].update(annotations)
    live["metadata"]["managedFields"].append({
        "manager": INJECTION_FIELD_MANAGER, "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:" + k: v for k, v in fields.items()}}}}},
    })
    return live


def env_of(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    containers = body.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return {c["name"]: c["env"] for c in containers}


# --- which config applies ---------------------------------------------------------------------

def test_true_means_the_default_config() -> None:
    decision = decide({INJECT_ANNOTATION: "true"}, {}, TARGETS, "shop")
    assert decision.target == SERVICE


def test_namespace_opt_in_applies_to_unannotated_workloads() -> None:
    decision = decide({}, {INJECT_ANNOTATION: "xray-system/nodes"}, TARGETS, "shop")
    assert decision.target == HOSTIP


def test_workload_false_opts_out_of_an_opted_in_namespace() -> None:
    decision = decide({INJECT_ANNOTATION: "false"}, {INJECT_ANNOTATION: "true"}, TARGETS, "shop")
    assert decision.target is None
    assert decision.problem is None


def test_named_config_that_does_not_exist_is_reported() -> None:
    decision = decide({INJECT_ANNOTATION: "xray-system/nope"}, {}, TARGETS, "shop")
    assert decision.target is None
    assert decision.problem is not None and "xray-system/nope" in decision.problem


def test_garbage_value_is_reported_with_what_to_write() -> None:
    decision = decide({INJECT_ANNOTATION: "yes"}, {}, TARGETS, "shop")
    assert decision.target is None
    assert decision.problem is not None and '"true"' in decision.problem


def test_true_without_any_default_config_is_reported() -> None:
    decision = decide({INJECT_ANNOTATION: "true"}, {}, [HOSTIP], "shop")
    assert decision.target is None
    assert decision.problem is not None and "spec.default" in decision.problem


def test_several_defaults_the_oldest_wins_as_the_status_says() -> None:
    older = Target("zz/older", True, "deployment", "older-daemon.zz.svc.cluster.local:2000",
                   False, created="2026-01-01T00:00:00Z")
    newer = Target("aa/newer", True, "deployment", "newer-daemon.aa.svc.cluster.local:2000",
                   False, created="2026-06-01T00:00:00Z")
    assert decide({INJECT_ANNOTATION: "true"}, {}, [newer, older], "aa").target == older
    twins = [Target("b/x", True, "deployment", "x:2000", False, created="2026-01-01T00:00:00Z"),
             Target("a/y", True, "deployment", "y:2000", False, created="2026-01-01T00:00:00Z")]
    assert decide({INJECT_ANNOTATION: "true"}, {}, twins, "c").target == twins[1]


def test_target_for_reads_the_tracingconfig() -> None:
    config = TracingConfig.from_object({
        "apiVersion": "tracing.xray-operator.dev/v1alpha1", "kind": "TracingConfig",
        "metadata": {"name": "nodes", "namespace": "xray-system"},
        "spec": {"region": "us-east-1", "default": True, "daemon": {"hostPort": True},
                 "injection": {"addressMode": "hostIP"}},
    })
    assert target_for(config, "$(HOST_IP):2000") == Target(
        "xray-system/nodes", True, "deployment", "$(HOST_IP):2000", True)


@pytest.mark.parametrize("address", ["host", "host:", ":2000", "host:0", "host:70000",
                                     "::1:2000", "host:20a0"])
def test_addresses_without_a_usable_port_are_refused(address: str) -> None:
    assert not valid_address(address)


# --- deployment mode --------------------------------------------------------------------------

def test_annotated_deployment_gets_the_service_address_in_every_app_container() -> None:
    workload = deployment(
        {INJECT_ANNOTATION: "true"},
        containers=[{"name": "app", "image": "a"}, {"name": "worker", "image": "w"}],
        init=[{"name": "migrate", "image": "m"}],
    )
    plan = plan_workload(workload, {}, TARGETS)
    assert plan.needs_write
    assert plan.body["apiVersion"] == "apps/v1" and plan.body["kind"] == "Deployment"
    assert plan.body["metadata"]["name"] == "checkout"
    assert env_of(plan.body) == {
        "app": [{"name": ADDR, "value": SERVICE.address}],
        "worker": [{"name": ADDR, "value": SERVICE.address}],
    }
    assert "initContainers" not in plan.body["spec"]["template"]["spec"]
    record = json.loads(plan.body["metadata"]["annotations"][INJECTED_BY_ANNOTATION])
    assert record == {"config": "xray-system/default", "address": SERVICE.address,
                      "env": {"app": [ADDR], "worker": [ADDR]}}


def test_unannotated_workload_is_not_written() -> None:
    plan = plan_workload(deployment(), {}, TARGETS)
    assert not plan.needs_write
    assert "spec" not in plan.body


def test_second_reconcile_of_an_injected_workload_writes_nothing() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"})
    first = plan_workload(workload, {}, TARGETS)
    second = plan_workload(as_applied(workload, first.body), {}, TARGETS)
    assert second.body == first.body
    assert not second.needs_write


def test_host_ip_is_declared_before_the_address_that_uses_it() -> None:
    workload = deployment({INJECT_ANNOTATION: "xray-system/nodes"},
                          containers=[{"name": "app", "image": "a",
                                       "env": [{"name": "LOG", "value": "1"}]}])
    plan = plan_workload(workload, {}, TARGETS)
    assert env_of(plan.body)["app"] == [HOST_IP_ENTRY, {"name": ADDR, "value": "$(HOST_IP):2000"}]
    assert not plan_workload(as_applied(workload, plan.body), {}, TARGETS).needs_write


def test_a_containers_own_host_ip_from_the_downward_api_is_reused() -> None:
    own = {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
    workload = deployment({INJECT_ANNOTATION: "xray-system/nodes"},
                          containers=[{"name": "app", "image": "a", "env": [own]}])
    plan = plan_workload(workload, {}, TARGETS)
    assert env_of(plan.body)["app"] == [{"name": ADDR, "value": "$(HOST_IP):2000"}]


def test_a_containers_own_unrelated_host_ip_is_not_used() -> None:
    own = {"name": "HOST_IP", "value": "10.0.0.1"}
    workload = deployment({INJECT_ANNOTATION: "xray-system/nodes"},
                          containers=[{"name": "app", "image": "a", "env": [own]}])
    plan = plan_workload(workload, {}, TARGETS)
    assert plan.injected == ()
    assert any("HOST_IP" in p for p in plan.problems)


def test_containers_annotation_limits_injection_and_reports_unknown_names() -> None:
    workload = deployment(
        {INJECT_ANNOTATION: "true", CONTAINERS_ANNOTATION: "worker, migrate, ghost"},
        containers=[{"name": "app", "image": "a"}, {"name": "worker", "image": "w"}],
        init=[{"name": "migrate", "image": "m"}],
    )
    plan = plan_workload(workload, {}, TARGETS)
    assert list(env_of(plan.body)) == ["worker"]
    assert any("init container 'migrate'" in p for p in plan.problems)
    assert any("'ghost'" in p for p in plan.problems)


def test_hand_set_address_is_kept_and_reported() -> None:
    mine = {"name": ADDR, "value": "127.0.0.1:2000"}
    workload = deployment(
        {INJECT_ANNOTATION: "true"},
        containers=[{"name": "app", "image": "a", "env": [mine]}, {"name": "side", "image": "s"}],
    )
    plan = plan_workload(workload, {}, TARGETS)
    assert plan.hand_set == ("app",)
    assert list(env_of(plan.body)) == ["side"]
    assert any("127.0.0.1:2000" in p and "'app'" in p for p in plan.problems)
    # Recorded, so the next pass neither writes nor reports it again.
    again = plan_workload(as_applied(workload, plan.body), {}, TARGETS)
    assert not again.needs_write and again.hand_set == ("app",)


def test_only_container_hand_set_records_that_without_touching_the_template() -> None:
    mine = {"name": ADDR, "value": "127.0.0.1:2000"}
    workload = deployment({INJECT_ANNOTATION: "true"},
                          containers=[{"name": "app", "image": "a", "env": [mine]}])
    plan = plan_workload(workload, {}, TARGETS)
    assert plan.needs_write and "spec" not in plan.body
    assert not plan_workload(as_applied(workload, plan.body), {}, TARGETS).needs_write


def test_address_changed_by_hand_after_injection_becomes_theirs() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"})
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    # `kubectl set env` is an Update: the API server moves ownership of the entry to it.
    live["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "10.1.1.1:2000"
    live["metadata"]["managedFields"][-1]["fieldsV1"] = {}
    plan = plan_workload(live, {}, TARGETS)
    assert plan.hand_set == ("app",)
    assert "spec" not in plan.body  # no env entry is ours any more
    record = json.loads(plan.body["metadata"]["annotations"][INJECTED_BY_ANNOTATION])
    assert record["handSet"] == ["app"] and record["env"] == {}
    assert plan.needs_write


def test_opting_out_releases_everything_injected() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"})
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    live["metadata"]["annotations"][INJECT_ANNOTATION] = "false"
    plan = plan_workload(live, {}, TARGETS)
    assert plan.needs_write
    assert plan.body == {"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "checkout", "namespace": "shop"}}


def test_config_switched_to_webhook_mode_releases_the_template() -> None:
    workload = deployment({INJECT_ANNOTATION: "xray-system/hooked"})
    live = as_applied(deployment({INJECT_ANNOTATION: "true"}),
                      plan_workload(deployment({INJECT_ANNOTATION: "true"}), {}, TARGETS).body)
    live["metadata"]["annotations"][INJECT_ANNOTATION] = "xray-system/hooked"
    assert not plan_workload(workload, {}, TARGETS).needs_write
    plan = plan_workload(live, {}, TARGETS)
    assert plan.needs_write and "spec" not in plan.body


def test_new_address_is_applied_in_place() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"})
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    moved = Target(SERVICE.config, True, "deployment",
                   "default-daemon.xray-system.svc.cluster.local:3000", False)
    plan = plan_workload(live, {}, [moved])
    assert plan.needs_write
    assert env_of(plan.body)["app"] == [{"name": ADDR, "value": moved.address}]
    assert plan.hand_set == ()


def test_entry_deleted_by_hand_is_put_back() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"})
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    del live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert plan_workload(live, {}, TARGETS).needs_write


def test_without_managed_fields_the_record_annotation_says_what_is_ours() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"})
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    del live["metadata"]["managedFields"]
    assert owned_env(live) is None
    plan = plan_workload(live, {}, TARGETS)
    assert not plan.needs_write and plan.hand_set == ()


def test_statefulset_and_daemonset_keep_their_kind() -> None:
    for kind in ("StatefulSet", "DaemonSet"):
        workload = deployment({INJECT_ANNOTATION: "true"})
        workload["kind"] = kind
        plan = plan_workload(workload, {}, TARGETS)
        assert plan.body["kind"] == kind and plan.needs_write


def test_owned_env_reads_the_injection_managers_fields_only() -> None:
    workload = deployment({INJECT_ANNOTATION: "xray-system/nodes"})
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    assert owned_env(live) == {"app": frozenset({"HOST_IP", ADDR})}


@pytest.mark.parametrize("address", ["h:2000", "tcp:h:2001 udp:h:2000", "udp:h:1 tcp:h:2"])
def test_both_sdk_address_forms_are_accepted(address: str) -> None:
    assert valid_address(address)


@pytest.mark.parametrize("address", ["tcp:h:2001 tcp:h:2000", "tcp:h udp:h:2", "h:1 h:2"])
def test_two_part_addresses_need_one_tcp_and_one_udp_with_ports(address: str) -> None:
    assert not valid_address(address)


def test_the_operators_own_daemonset_is_never_injected() -> None:
    daemon = deployment()
    daemon["kind"] = "DaemonSet"
    daemon["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "xray-operator"}
    plan = plan_workload(daemon, {INJECT_ANNOTATION: "true"}, TARGETS)
    assert not plan.needs_write and plan.decision.target is None


def test_narrowing_the_containers_annotation_releases_the_others() -> None:
    workload = deployment({INJECT_ANNOTATION: "true"},
                          containers=[{"name": "app", "image": "a"},
                                      {"name": "worker", "image": "w"}])
    live = as_applied(workload, plan_workload(workload, {}, TARGETS).body)
    live["metadata"]["annotations"][CONTAINERS_ANNOTATION] = "app"
    plan = plan_workload(live, {}, TARGETS)
    assert plan.needs_write
    assert list(env_of(plan.body)) == ["app"]
