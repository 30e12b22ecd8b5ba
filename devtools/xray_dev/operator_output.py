"""What the operator produced for the sample TracingConfig and the sample apps, in the shape
the local trace path consumes (tracepath.OperatorOutput). Two sources:

- from_cluster(): the real thing. Applies the sample TracingConfig and the sample apps to the
  API server the operator (already running) watches, and reads back the daemon ConfigMap and
  DaemonSet `<tc-name>-daemon` and the injected Deployments. For `make demo` and the trace test.
- from_render(): the operator's own pure functions, no cluster: the ConfigMap and DaemonSet
  from `render.desired()`, the Deployments from `render.injection.plan_workload()` with the
  apply body merged as the API server would. For when no operator runs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from xray_dev import tracepath
from xray_dev.cluster import Cluster
from xray_dev.tracepath import DAEMON_ADDRESS_ENV, SAMPLE_SERVICES, OperatorOutput

# The sample the quick start applies, and where the sample apps go.
SAMPLE_TRACING_CONFIG = tracepath.ROOT / "manifests" / "samples" / "tracingconfig.yaml"
SAMPLE_NAMESPACE = "xray-samples"
FIELD_MANAGER = "xray-samples"

T = TypeVar("T")


def load_tracing_config(path: Path = SAMPLE_TRACING_CONFIG) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), f"{path}: not a single object"
    return loaded


def from_render(tracing_config: dict[str, Any] | None = None,
                namespace: str = SAMPLE_NAMESPACE) -> OperatorOutput:
    from xray_operator.model import TracingConfig
    from xray_operator.render import address_for, desired
    from xray_operator.render.injection import plan_workload, target_for

    obj = copy.deepcopy(tracing_config or load_tracing_config())
    config = TracingConfig.from_object(copy.deepcopy(obj))
    children = {o["kind"]: o for o in desired(config)}
    configmap, daemonset = children["ConfigMap"], children["DaemonSet"]
    targets = [target_for(config, address_for(config))]

    deployments: dict[str, dict[str, Any]] = {}
    for service in SAMPLE_SERVICES:
        deployment = next(o for o in tracepath.sample_manifest(service)
                          if o["kind"] == "Deployment")
        deployment["metadata"]["namespace"] = namespace
        plan = plan_workload(deployment, None, targets)
        deployments[service] = merge_apply_body(deployment, plan.body)
    return OperatorOutput("render", obj, configmap, daemonset, deployments)


def merge_apply_body(live: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
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


def get_json(cluster: Cluster, *args: str) -> dict[str, Any] | None:
    """`kubectl get ... -o json`, or None when it is not there (yet)."""
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _wait(check: Callable[[], T | None], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def apply_samples(cluster: Cluster, tracing_config: Path = SAMPLE_TRACING_CONFIG,
                  namespace: str = SAMPLE_NAMESPACE) -> None:
    """The TracingConfig and both sample apps, applied as a person would."""
    apply = ("apply", "--server-side", f"--field-manager={FIELD_MANAGER}")
    cluster.kubectl(*apply, "-f", str(tracing_config))
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    cluster.kubectl(*apply, "-f", "-", input=json.dumps(ns))
    for service in SAMPLE_SERVICES:
        cluster.kubectl(*apply, "-n", namespace,
                        "-f", str(tracepath.SAMPLE_APPS / service / "k8s.yaml"))


def from_cluster(cluster: Cluster, tracing_config: Path = SAMPLE_TRACING_CONFIG,
                 namespace: str = SAMPLE_NAMESPACE, timeout: float = 90.0,
                 progress: tracepath.Progress = tracepath.no_progress) -> OperatorOutput:
    """Apply the samples, wait for the operator (which must be running) to render the daemon's
    children and inject both Deployments, and return what it wrote."""
    obj = load_tracing_config(tracing_config)
    progress(f"applying {tracing_config.name} and the sample apps (namespace {namespace})")
    apply_samples(cluster, tracing_config, namespace)

    meta = obj["metadata"]
    child = ("-n", meta["namespace"], f"{meta['name']}-daemon")
    configmap = _wait(lambda: get_json(cluster, "configmap", *child),
                      f"ConfigMap {meta['namespace']}/{meta['name']}-daemon", timeout)
    daemonset = _wait(lambda: get_json(cluster, "daemonset", *child),
                      f"DaemonSet {meta['namespace']}/{meta['name']}-daemon", timeout)
    progress(f"operator rendered ConfigMap and DaemonSet {meta['name']}-daemon")

    def injected(service: str) -> dict[str, Any] | None:
        deployment = get_json(cluster, "deployment", service, "-n", namespace)
        if deployment and DAEMON_ADDRESS_ENV in tracepath.container_env(deployment):
            return deployment
        return None

    deployments: dict[str, dict[str, Any]] = {}
    for service in SAMPLE_SERVICES:
        deployments[service] = _wait(lambda s=service: injected(s),  # type: ignore[misc]
                                     f"{DAEMON_ADDRESS_ENV} injected into {service}", timeout)
        address = tracepath.container_env(deployments[service])[DAEMON_ADDRESS_ENV]
        progress(f"operator injected {DAEMON_ADDRESS_ENV}={address} into {service}")
    return OperatorOutput("api-server", obj, configmap, daemonset, deployments)


def remove_samples(cluster: Cluster, namespace: str = SAMPLE_NAMESPACE,
                   tracing_config: Path = SAMPLE_TRACING_CONFIG) -> None:
    """Delete the sample apps' namespace and the sample TracingConfig: a `default: true` config
    left behind would be the default for every later test in the same cluster."""
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found",
                    check=False)
    cluster.kubectl("delete", "-f", str(tracing_config), "--ignore-not-found", "--wait=true",
                    "--timeout=60s", check=False)
