"""Fixtures of the end-to-end trace path: the daemon binary, a moto X-Ray endpoint, and what
the operator produced (the SEAM below)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from xray_dev import tracepath
from xray_dev.fixtures_trace import xray_binary  # noqa: F401  (until tests/conftest.py loads it)
from xray_dev.moto import MotoServer
from xray_dev.tracepath import SAMPLE_SERVICES, OperatorOutput
from xray_operator.constants import API_VERSION, KIND

# The TracingConfig the trace path runs: what the quick start applies.
TRACING_CONFIG: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "metadata": {"name": "default", "namespace": "xray-system"},
    "spec": {"default": True, "region": "us-east-1"},
}
# Where the sample apps run (they opt in with xray-operator.dev/inject: "true").
SAMPLE_NAMESPACE = "xray-samples"


@pytest.fixture(scope="session")
def xray_endpoint(moto_server: MotoServer) -> tracepath.XRayEndpoint:
    """moto's X-Ray API on loopback (a real moto_server process, shared with the IAM tests:
    the traces of a test are read back within the same test, so its resets do no harm)."""
    return tracepath.XRayEndpoint(moto_server.endpoint)


@pytest.fixture(scope="session")
def operator_output() -> OperatorOutput:
    """SEAM (lead): switch this to the real operator on the real API server.

    Today the objects come from the operator's own pure functions: the ConfigMap from
    `render.desired()` and the injected Deployments from `render.injection.plan_workload()`
    applied to the sample manifests (the apply body merged as the API server would).
    The final version applies TRACING_CONFIG and the sample manifests to the cluster the
    operator runs against, waits for the operator, and reads back the ConfigMap
    and DaemonSet `<tc-name>-daemon` and the two Deployments, e.g. with
    `cluster.kubectl("get", "configmap", "default-daemon", "-n", "xray-system", "-o", "json")`.
    Nothing else in tests/e2e needs to change.
    """
    return _from_render()


def _from_render() -> OperatorOutput:
    from xray_operator.model import TracingConfig
    from xray_operator.render import address_for, desired
    from xray_operator.render.injection import plan_workload, target_for

    config = TracingConfig.from_object(copy.deepcopy(TRACING_CONFIG))
    name = TRACING_CONFIG["metadata"]["name"]
    children = {o["kind"]: o for o in desired(config)}
    configmap, daemonset = children["ConfigMap"], children["DaemonSet"]
    assert configmap["metadata"]["name"] == daemonset["metadata"]["name"] == f"{name}-daemon"
    targets = [target_for(config, address_for(config))]

    deployments: dict[str, dict[str, Any]] = {}
    for service in SAMPLE_SERVICES:
        deployment = next(o for o in tracepath.sample_manifest(service)
                          if o["kind"] == "Deployment")
        deployment["metadata"]["namespace"] = SAMPLE_NAMESPACE
        plan = plan_workload(deployment, None, targets)
        deployments[service] = _merge_apply_body(deployment, plan.body)
    return OperatorOutput("render", TRACING_CONFIG, configmap, daemonset, deployments)


def _merge_apply_body(live: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What the API server would hold after the injection's server-side apply: annotations
    merged, env entries merged by name into the containers named in the body."""
    merged = copy.deepcopy(live)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    merged["metadata"].setdefault("annotations", {}).update(annotations)
    wanted = (((body.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers") or []
    containers = {c["name"]: c for c in merged["spec"]["template"]["spec"]["containers"]}
    for patch in wanted:
        env = containers[patch["name"]].setdefault("env", [])
        for entry in patch.get("env") or []:
            env[:] = [e for e in env if e["name"] != entry["name"]] + [entry]
    return merged
