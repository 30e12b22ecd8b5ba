"""Webhook mode: the JSON patch a Pod gets at admission."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import kubernetes_validate

from xray_operator.constants import (
    CONTAINERS_ANNOTATION,
    INJECT_ANNOTATION,
    INJECTED_BY_ANNOTATION,
)
from xray_operator.render.injection import Target, plan_pod

HOOKED = Target("xray-system/hooked", True, "webhook",
                "hooked-daemon.xray-system.svc.cluster.local:2000", False)
NODES = Target("xray-system/nodes", False, "webhook", "$(HOST_IP):2000", True)
PATCHING = Target("xray-system/patching", False, "deployment",
                  "patching-daemon.xray-system.svc.cluster.local:2000", False)
TARGETS = [HOOKED, NODES, PATCHING]
ADDR = "AWS_XRAY_DAEMON_ADDRESS"


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"generateName": "checkout-", "namespace": "shop"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "a"}], **spec},
    }


def admitted(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    return result


def env(obj: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = obj["spec"]["containers"][index].get("env", [])
    return value


def test_pod_in_an_opted_in_namespace_gets_the_address_and_stays_valid() -> None:
    original = pod()
    plan = plan_pod(original, {INJECT_ANNOTATION: "true"}, TARGETS)
    result = admitted(original, plan.patch)
    assert env(result) == [{"name": ADDR, "value": HOOKED.address}]
    record = json.loads(result["metadata"]["annotations"][INJECTED_BY_ANNOTATION])
    assert record["config"] == "xray-system/hooked"
    kubernetes_validate.validate(result, "1.36.0", strict=True)


def test_existing_env_and_annotations_are_appended_to_not_replaced() -> None:
    original = pod({"team": "payments", INJECT_ANNOTATION: "xray-system/nodes"},
                   containers=[{"name": "app", "image": "a",
                                "env": [{"name": "LOG", "value": "debug"}]}],
                   initContainers=[{"name": "migrate", "image": "m"}])
    result = admitted(original, plan_pod(original, {}, TARGETS).patch)
    assert [e["name"] for e in env(result)] == ["LOG", "HOST_IP", ADDR]
    assert env(result)[2]["value"] == "$(HOST_IP):2000"
    assert result["metadata"]["annotations"]["team"] == "payments"
    assert "env" not in result["spec"]["initContainers"][0]


def test_pod_opted_out_or_unannotated_is_admitted_unchanged() -> None:
    assert plan_pod(pod(), {}, TARGETS).patch == []
    opted_out = pod({INJECT_ANNOTATION: "false"})
    assert plan_pod(opted_out, {INJECT_ANNOTATION: "true"}, TARGETS).patch == []


def test_deployment_mode_config_leaves_pods_to_their_template() -> None:
    # The template already carries the env; adding it again would be a duplicate.
    assert plan_pod(pod({INJECT_ANNOTATION: "xray-system/patching"}), {}, TARGETS).patch == []


def test_reinvocation_does_not_inject_twice() -> None:
    original = pod()
    once = admitted(original, plan_pod(original, {INJECT_ANNOTATION: "true"}, TARGETS).patch)
    assert plan_pod(once, {INJECT_ANNOTATION: "true"}, TARGETS).patch == []


def test_hand_set_address_in_a_pod_is_kept_and_reported() -> None:
    original = pod(containers=[
        {"name": "app", "image": "a", "env": [{"name": ADDR, "value": "10.0.0.9:2000"}]},
        {"name": "side", "image": "s"},
    ])
    plan = plan_pod(original, {INJECT_ANNOTATION: "true"}, TARGETS)
    result = admitted(original, plan.patch)
    assert env(result, 0) == [{"name": ADDR, "value": "10.0.0.9:2000"}]
    assert env(result, 1) == [{"name": ADDR, "value": HOOKED.address}]
    assert any("10.0.0.9:2000" in p for p in plan.problems)


def test_containers_annotation_on_the_pod_limits_injection() -> None:
    original = pod({CONTAINERS_ANNOTATION: "side"}, containers=[
        {"name": "app", "image": "a"}, {"name": "side", "image": "s"}])
    result = admitted(original, plan_pod(original, {INJECT_ANNOTATION: "true"}, TARGETS).patch)
    assert env(result, 0) == []
    assert env(result, 1) == [{"name": ADDR, "value": HOOKED.address}]


def test_missing_config_is_reported_and_the_pod_admitted() -> None:
    plan = plan_pod(pod({INJECT_ANNOTATION: "xray-system/gone"}), {}, TARGETS)
    assert plan.patch == []
    assert plan.problems and "xray-system/gone" in plan.problems[0]
