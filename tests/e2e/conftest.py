"""Fixtures of the end-to-end trace path: the daemon binary, a moto X-Ray endpoint, and what
the operator produced (the SEAM below)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from xray_dev import tracepath
from xray_dev.cluster import Cluster
from xray_dev.fixtures_trace import xray_binary  # noqa: F401  (until tests/conftest.py loads it)
from xray_dev.moto import MotoServer
from xray_dev.tracepath import SAMPLE_SERVICES, OperatorOutput

# The TracingConfig the trace path runs: the sample the quick start applies.
TRACING_CONFIG_FILE = tracepath.ROOT / "manifests" / "samples" / "tracingconfig.yaml"
TRACING_CONFIG: dict[str, Any] = yaml.safe_load(TRACING_CONFIG_FILE.read_text())
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

    Today the objects come from the operator's own pure functions: the ConfigMap and DaemonSet
    from `render.desired()`, the injected Deployments from `render.injection.plan_workload()`
    applied to the sample manifests (the apply body merged as the API server would).

    To switch, once the operator injects into Deployments, replace the body with
        return _from_cluster(request.getfixturevalue("cluster"),
                             request.getfixturevalue("operator"))
    (and take `request: pytest.FixtureRequest`). Nothing else in tests/e2e needs to change;
    every test then runs what the operator really wrote.
    """
    return _from_render()


def _kubectl_json(cluster: Cluster, *args: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _from_cluster(cluster: Cluster, operator: object) -> OperatorOutput:
    """Apply the sample TracingConfig and the sample apps, then read back what the operator
    (already running: the `operator` fixture) made of them."""
    del operator  # needed only to be running
    from xray_dev.fixtures_cluster import wait_for

    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-f",
                    str(TRACING_CONFIG_FILE))
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": SAMPLE_NAMESPACE}}
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-",
                    input=json.dumps(namespace))
    for service in SAMPLE_SERVICES:
        cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-n", SAMPLE_NAMESPACE,
                        "-f", str(tracepath.SAMPLE_APPS / service / "k8s.yaml"))

    meta = TRACING_CONFIG["metadata"]
    child = ("-n", meta["namespace"], f"{meta['name']}-daemon")
    configmap = wait_for(lambda: _kubectl_json(cluster, "configmap", *child), timeout=60,
                         what="the daemon ConfigMap")
    daemonset = wait_for(lambda: _kubectl_json(cluster, "daemonset", *child), timeout=60,
                         what="the daemon DaemonSet")

    def injected(service: str) -> dict[str, Any] | None:
        deployment = _kubectl_json(cluster, "deployment", service, "-n", SAMPLE_NAMESPACE)
        if deployment and tracepath.DAEMON_ADDRESS_ENV in tracepath.container_env(deployment):
            return deployment
        return None

    deployments = {s: wait_for(lambda s=s: injected(s), timeout=60,
                               what=f"{tracepath.DAEMON_ADDRESS_ENV} injected into {s}")
                   for s in SAMPLE_SERVICES}
    return OperatorOutput("api-server", TRACING_CONFIG, configmap, daemonset, deployments)


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
