"""`xray-operator render` output applied to a real API server, as a GitOps user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from xray_dev.cluster import NODE_COUNT, Cluster
from xray_dev.fixtures_cluster import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INPUTS = [*sorted((ROOT / "manifests" / "samples").glob("*.yaml")),
          ROOT / "tests" / "unit" / "golden" / "full.input.yaml"]
SCRIPT = Path(sys.executable).parent / "xray-operator"


def render(doc: dict[str, Any], tmp_path: Path, output: str = "yaml") -> str:
    path = tmp_path / "tc.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = subprocess.run([str(SCRIPT), "render", "-f", str(path), "-o", output],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def in_namespace(path: Path, namespace: str, **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec)
    return dict(doc)


def get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(out))


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("output", ["yaml", "json"])
def test_render_output_is_accepted_by_server_side_apply(
    cluster: Cluster, namespace: str, tmp_path: Path, source: Path, output: str
) -> None:
    text = render(in_namespace(source, namespace), tmp_path, output)
    result = cluster.kubectl("apply", "--server-side", "--field-manager=xray-operator",
                             "--dry-run=server", "-f", "-", input=text)
    applied = result.stdout.splitlines()
    assert len(applied) == 4, result.stdout
    assert all("serverside-applied (server dry run)" in line for line in applied)


def test_applied_output_runs_a_daemon_on_every_node(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    sample = in_namespace(ROOT / "manifests" / "samples" / "tracingconfig.yaml", namespace)
    cluster.kubectl("apply", "--server-side", "-f", "-", input=render(sample, tmp_path))

    def ready() -> dict[str, Any] | None:
        status = get(cluster, "daemonset", "xray-daemon", namespace).get("status", {})
        done = (status.get("desiredNumberScheduled") == NODE_COUNT
                and status.get("numberReady") == NODE_COUNT)
        return status if done else None

    wait_for(ready, timeout=90, what=f"{NODE_COUNT} ready daemon pods")
    pods = json.loads(cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/instance=xray",
        "-o", "json").stdout)["items"]
    assert len({p["spec"]["nodeName"] for p in pods}) == NODE_COUNT
    service = get(cluster, "service", "xray-daemon", namespace)
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    assert service["spec"]["clusterIP"] not in ("", "None")


def test_reapplying_unchanged_output_changes_nothing_and_config_changes_roll(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    source = ROOT / "manifests" / "samples" / "tracingconfig.yaml"

    def apply(**spec: Any) -> dict[str, Any]:
        text = render(in_namespace(source, namespace, **spec), tmp_path)
        cluster.kubectl("apply", "--server-side", "-f", "-", input=text)
        return get(cluster, "daemonset", "xray-daemon", namespace)

    def versions() -> dict[str, str]:
        # Only we write these two; the DaemonSet's own version moves with its status.
        return {kind: get(cluster, kind, "xray-daemon", namespace)["metadata"]["resourceVersion"]
                for kind in ("configmap", "serviceaccount")}

    first = apply()
    before = versions()
    # A change outside cfg.yaml and the pod template (the IAM check) renders the same objects.
    same = apply(iam={"check": False})
    assert same["metadata"]["generation"] == first["metadata"]["generation"]
    assert versions() == before
    # A daemon config change reaches the ConfigMap and rolls the pods through the hash.
    rolled = apply(daemon={"bufferSizeMB": 32})
    assert rolled["metadata"]["generation"] == first["metadata"]["generation"] + 1
    annotation = "xray-operator.dev/config-hash"
    assert (rolled["spec"]["template"]["metadata"]["annotations"][annotation]
            != first["spec"]["template"]["metadata"]["annotations"][annotation])
    cfg = get(cluster, "configmap", "xray-daemon", namespace)["data"]["cfg.yaml"]
    assert "TotalBufferSizeMB: 32" in cfg


def pod_from_template(text: str, namespace: str) -> dict[str, Any]:
    ds = next(d for d in yaml.safe_load_all(text) if d["kind"] == "DaemonSet")
    template = ds["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "xray-daemon-probe", "namespace": namespace,
                         "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def apply_all_but_daemonset(cluster: Cluster, text: str) -> None:
    docs = [d for d in yaml.safe_load_all(text) if d["kind"] != "DaemonSet"]
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs))


def test_daemon_pods_pass_pod_security_restricted(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("label", "namespace", namespace,
                    "pod-security.kubernetes.io/enforce=restricted")
    sample = in_namespace(ROOT / "manifests" / "samples" / "tracingconfig.yaml", namespace)
    text = render(sample, tmp_path)
    apply_all_but_daemonset(cluster, text)
    pod = pod_from_template(text, namespace)
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod),
                             check=False)
    assert result.returncode == 0, result.stderr
    assert "would violate" not in result.stderr

    # And the DaemonSet controller really gets its pods admitted on every node.
    cluster.kubectl("apply", "--server-side", "-f", "-", input=text)
    wait_for(lambda: get(cluster, "daemonset", "xray-daemon", namespace).get("status", {})
             .get("currentNumberScheduled") == NODE_COUNT,
             timeout=90, what=f"{NODE_COUNT} daemon pods admitted under restricted")

    # hostPort (for addressMode hostIP) is what restricted forbids, as the CRD says.
    host = in_namespace(ROOT / "manifests" / "samples" / "tracingconfig-irsa-hostip.yaml",
                        namespace)
    host_text = render(host, tmp_path)
    apply_all_but_daemonset(cluster, host_text)
    refused = cluster.kubectl("apply", "--dry-run=server", "-f", "-", check=False,
                              input=json.dumps(pod_from_template(host_text, namespace)))
    assert refused.returncode != 0
    assert "hostPort" in refused.stderr
