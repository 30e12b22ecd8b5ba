"""The operator against the real control plane, running as its own ServiceAccount."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from xray_dev.cluster import NODE_COUNT, ROOT, Cluster
from xray_dev.fixtures_cluster import wait_for
from xray_dev.operator_proc import (
    OperatorProcess,
    audit_events,
    describe,
    wait_audit_flush,
    writes,
)

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "manifests" / "samples" / "tracingconfig.yaml"


def get(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(tc: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((tc or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}


def tracingconfig(name: str, namespace: str, **spec: Any) -> str:
    body = {
        "apiVersion": "tracing.xray-operator.dev/v1alpha1",
        "kind": "TracingConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"default": False, "region": "us-east-1", "iam": {"check": False}, **spec},
    }
    return yaml.safe_dump(body)


def apply(cluster: Cluster, manifest: str) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=test", "-f", "-", input=manifest)


def running_daemons(cluster: Cluster, namespace: str, instance: str) -> list[dict[str, Any]]:
    pods = get(cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={instance}")
    return [
        p
        for p in (pods or {"items": []})["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    tc = get(cluster, "tc", name, "-n", namespace)
    return tc if condition(tc, "Ready").get("status") == "True" else None


def other_defaults(cluster: Cluster) -> list[str]:
    items = (get(cluster, "tc", "-A") or {"items": []})["items"]
    return [
        f"{t['metadata']['namespace']}/{t['metadata']['name']}"
        for t in items
        if t["spec"].get("default") and t["metadata"]["namespace"] != "xray-system"
    ]


@pytest.fixture
def sample(cluster: Cluster, operator: OperatorProcess) -> Any:
    # Other tests' default configs go away with their namespaces; the sample must be the only
    # default one or it (correctly) reports the conflict.
    wait_for(lambda: not other_defaults(cluster), timeout=90, what="no other default configs")
    cluster.kubectl("apply", "--server-side", "--field-manager=test", "-f", str(SAMPLE))
    yield wait_for(
        lambda: ready(cluster, "xray-system", "xray"),
        timeout=60,
        what="the sample TracingConfig Ready",
    )


def test_sample_runs_a_daemon_on_every_node(cluster: Cluster, sample: dict[str, Any]) -> None:
    pods = wait_for(
        lambda: (
            len(running_daemons(cluster, "xray-system", "xray")) == NODE_COUNT
            and running_daemons(cluster, "xray-system", "xray")
        ),
        timeout=60,
        what="a Running daemon per node",
    )
    assert len({p["spec"]["nodeName"] for p in pods}) == NODE_COUNT
    for kind in ("service", "configmap", "serviceaccount", "daemonset"):
        obj = get(cluster, kind, "xray-daemon", "-n", "xray-system")
        assert obj is not None, kind
        owners = obj["metadata"]["ownerReferences"]
        assert (
            owners[0]["kind"] == "TracingConfig" and owners[0]["uid"] == sample["metadata"]["uid"]
        )
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "xray-operator"
    tc = wait_for(
        lambda: (
            (t := get(cluster, "tc", "xray", "-n", "xray-system"))
            and t["status"].get("daemonSet") == {"desired": 3, "ready": 3}
            and t
        ),
        timeout=30,
        what="status daemons 3/3",
    )
    status = tc["status"]
    assert status["daemonAddress"] == "xray-daemon.xray-system.svc.cluster.local:2000"
    assert status["observedGeneration"] == tc["metadata"]["generation"]
    assert condition(tc, "DaemonSetAvailable")["status"] == "True"
    table = cluster.kubectl("get", "tc", "xray", "-n", "xray-system").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "READY", "ADDRESS", "DAEMONS"]
    assert "True" in row and "xray-daemon.xray-system.svc.cluster.local:2000" in row


def test_buffer_change_updates_configmap_and_rolls_daemons(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, tracingconfig("roll", namespace, daemon={"bufferSizeMB": 24}))
    wait_for(lambda: ready(cluster, namespace, "roll"), timeout=60, what="Ready")
    wait_for(lambda: len(running_daemons(cluster, namespace, "roll")) == NODE_COUNT, timeout=60)
    ds_before = get(cluster, "daemonset", "roll-daemon", "-n", namespace)
    old_pods = {p["metadata"]["name"] for p in running_daemons(cluster, namespace, "roll")}

    apply(cluster, tracingconfig("roll", namespace, daemon={"bufferSizeMB": 48}))
    cm = wait_for(
        lambda: (
            (c := get(cluster, "configmap", "roll-daemon", "-n", namespace))
            and "TotalBufferSizeMB: 48" in c["data"]["cfg.yaml"]
            and c
        ),
        timeout=15,
        what="ConfigMap with the new buffer size",
    )
    assert "TotalBufferSizeMB: 48" in cm["data"]["cfg.yaml"]
    ds_after = get(cluster, "daemonset", "roll-daemon", "-n", namespace)
    hash_key = "xray-operator.dev/config-hash"
    assert (
        ds_after["spec"]["template"]["metadata"]["annotations"][hash_key]
        != ds_before["spec"]["template"]["metadata"]["annotations"][hash_key]
    )
    new_pods = wait_for(
        lambda: (
            (pods := running_daemons(cluster, namespace, "roll"))
            and len(pods) == NODE_COUNT
            and not ({p["metadata"]["name"] for p in pods} & old_pods)
            and pods
        ),
        timeout=90,
        what="every daemon replaced by a new pod",
    )
    assert len(new_pods) == NODE_COUNT


@pytest.mark.parametrize("damage", ["delete", "edit-image"])
def test_drift_on_the_daemonset_is_put_right(
    cluster: Cluster, operator: OperatorProcess, namespace: str, damage: str
) -> None:
    apply(cluster, tracingconfig("drift", namespace))
    wait_for(lambda: ready(cluster, namespace, "drift"), timeout=60, what="Ready")
    ds = get(cluster, "daemonset", "drift-daemon", "-n", namespace)
    image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
    started = time.monotonic()
    if damage == "delete":
        cluster.kubectl("delete", "daemonset", "drift-daemon", "-n", namespace, "--wait=false")
        wait_for(
            lambda: (
                (d := get(cluster, "daemonset", "drift-daemon", "-n", namespace))
                and d["metadata"]["uid"] != ds["metadata"]["uid"]
            ),
            timeout=10,
            what="the DaemonSet re-created",
        )
    else:
        cluster.kubectl(
            "set", "image", "daemonset/drift-daemon", "-n", namespace, "xray-daemon=busybox:latest"
        )
        wait_for(
            lambda: (
                get(cluster, "daemonset", "drift-daemon", "-n", namespace)["spec"]["template"][
                    "spec"
                ]["containers"][0]["image"]
                == image
            ),
            timeout=10,
            what="the image restored",
        )
    assert time.monotonic() - started < 10


def test_steady_state_sends_no_writes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, tracingconfig("quiet", namespace))
    wait_for(lambda: ready(cluster, namespace, "quiet"), timeout=60, what="Ready")
    wait_for(lambda: len(running_daemons(cluster, namespace, "quiet")) == NODE_COUNT, timeout=60)
    # Namespaces of earlier tests still being deleted are changes; wait until they are gone.
    wait_for(
        lambda: "Terminating" not in cluster.kubectl("get", "namespaces").stdout,
        timeout=120,
        what="no namespace terminating",
    )
    # "Nothing changing" starts once the operator has finished what earlier changes asked of it
    # (status updates, retried Events into namespaces deleted by earlier tests, whose retries
    # come seconds apart): 30 s without a request from it.
    def quiet_for_30s() -> bool:
        wait_audit_flush()
        return not audit_events(cluster, since=time.time() - 32)

    wait_for(quiet_for_30s, timeout=300, interval=1, what="the operator idle for 30 s")
    since = time.time()
    time.sleep(60)
    wait_audit_flush()
    seen = audit_events(cluster, since=since)
    sent = writes(seen)
    assert sent == [], "writes while nothing changed:\n" + "\n".join(map(describe, sent))


def test_sigkill_mid_reconcile_converges_without_duplicates(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, tracingconfig("crash", namespace))
    time.sleep(0.3)
    operator.kill()
    operator.start()
    wait_for(lambda: ready(cluster, namespace, "crash"), timeout=60, what="Ready after restart")
    selector = "app.kubernetes.io/instance=crash"
    for kind in ("daemonset", "configmap", "service", "serviceaccount"):
        items = get(cluster, kind, "-n", namespace, "-l", selector)["items"]
        assert [i["metadata"]["name"] for i in items] == ["crash-daemon"], kind
    pods = wait_for(
        lambda: (
            len(running_daemons(cluster, namespace, "crash")) == NODE_COUNT
            and running_daemons(cluster, namespace, "crash")
        ),
        timeout=60,
    )
    assert len(pods) == NODE_COUNT


def test_deleting_the_config_removes_every_child(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, tracingconfig("gone", namespace))
    wait_for(lambda: ready(cluster, namespace, "gone"), timeout=60, what="Ready")
    cluster.kubectl("delete", "tc", "gone", "-n", namespace, "--wait=true", "--timeout=30s")
    selector = "app.kubernetes.io/instance=gone"

    def leftovers() -> list[str]:
        out = []
        for kind in ("daemonset", "configmap", "service", "serviceaccount", "pods"):
            items = get(cluster, kind, "-n", namespace, "-l", selector)["items"]
            out += [f"{kind}/{i['metadata']['name']}" for i in items]
        return out

    wait_for(lambda: not leftovers(), timeout=60, what="children garbage-collected")


def test_two_defaults_conflict_is_reported_not_fought(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    # Whichever default config is oldest wins (the sample may be one); the newest one loses.
    apply(cluster, tracingconfig("first", namespace, default=True))
    wait_for(
        lambda: condition(get(cluster, "tc", "first", "-n", namespace), "Ready"),
        timeout=60,
        what="first reconciled",
    )
    time.sleep(1.1)  # creationTimestamp has one-second resolution
    apply(cluster, tracingconfig("second", namespace, default=True))
    tc = wait_for(
        lambda: (
            (t := get(cluster, "tc", "second", "-n", namespace))
            and condition(t, "Ready").get("reason") == "ConflictingDefault"
            and t
        ),
        timeout=30,
        what="second reports ConflictingDefault",
    )
    assert condition(tc, "Ready")["status"] == "False"
    assert f"{namespace}/first" in condition(tc, "Ready")["message"]
    assert "default: false" in condition(tc, "Ready")["message"]
    events = get(
        cluster, "events", "-n", namespace, "--field-selector", "involvedObject.name=second"
    )["items"]
    assert any(e["reason"] == "ConflictingDefault" for e in events)
    # Resolving it clears the condition.
    apply(cluster, tracingconfig("second", namespace, default=False))
    wait_for(lambda: ready(cluster, namespace, "second"), timeout=30, what="second Ready")


def test_name_taken_by_a_foreign_object_is_reported_and_left_alone(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "taken-daemon", "namespace": namespace},
        "data": {"owner": "somebody else"},
    }
    apply(cluster, yaml.safe_dump(foreign))
    apply(cluster, tracingconfig("taken", namespace))
    tc = wait_for(
        lambda: (
            (t := get(cluster, "tc", "taken", "-n", namespace))
            and condition(t, "Ready").get("reason") == "NameConflict"
            and t
        ),
        timeout=30,
        what="NameConflict",
    )
    assert "ConfigMap" in condition(tc, "Ready")["message"]
    cm = get(cluster, "configmap", "taken-daemon", "-n", namespace)
    assert cm["data"] == {"owner": "somebody else"}
    assert get(cluster, "daemonset", "taken-daemon", "-n", namespace) is None
    events = get(
        cluster, "events", "-n", namespace, "--field-selector", "involvedObject.name=taken"
    )["items"]
    assert any(e["reason"] == "NameConflict" for e in events)


def test_install_manifest_is_accepted_and_operator_pod_is_restricted(cluster: Cluster) -> None:
    install = ROOT / "manifests" / "install.yaml"
    result = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", str(install)
    )
    assert "would violate PodSecurity" not in result.stderr
    ns = get(cluster, "namespace", "xray-system")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = next(
        d for d in yaml.safe_load_all(install.read_text()) if d and d["kind"] == "Deployment"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-psa-check", "namespace": "xray-system"},
        "spec": deployment["spec"]["template"]["spec"],
    }
    # PodSecurity admission runs on a server-side dry run too: refused if not restricted.
    check = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert check.returncode == 0, check.stderr
    assert "violate" not in check.stderr


def test_rbac_has_no_wildcards_or_secrets() -> None:
    docs = list(yaml.safe_load_all(Path(ROOT / "manifests" / "base" / "rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "secrets" not in rule["resources"]


def _env_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"] if "template" in obj.get("spec", {}) else obj["spec"]
    return {e["name"]: e.get("value") for e in spec["containers"][0].get("env", [])}


def test_operator_injects_with_its_own_service_account(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, tracingconfig("tc", namespace))
    wait_for(lambda: ready(cluster, namespace, "tc"), timeout=60, what="Ready")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": namespace,
            "annotations": {"xray-operator.dev/inject": f"{namespace}/tc"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }
    apply(cluster, yaml.safe_dump(deployment))
    address = f"tc-daemon.{namespace}.svc.cluster.local:2000"
    wait_for(
        lambda: (
            _env_of(get(cluster, "deployment", "web", "-n", namespace)).get(
                "AWS_XRAY_DAEMON_ADDRESS"
            )
            == address
        ),
        timeout=20,
        what="injected address",
    )
    tc = wait_for(
        lambda: (
            (t := get(cluster, "tc", "tc", "-n", namespace))
            and t["status"].get("injectedWorkloads") == 1
            and t
        ),
        timeout=20,
        what="injectedWorkloads 1",
    )
    assert condition(tc, "InjectionHealthy")["status"] == "True"


def test_operator_webhook_mode_injects_pods_at_admission(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, tracingconfig("hooked", namespace, injection={"mode": "webhook"}))
    wait_for(lambda: ready(cluster, namespace, "hooked"), timeout=60, what="Ready")
    cluster.kubectl(
        "annotate", "namespace", namespace, f"xray-operator.dev/inject={namespace}/hooked"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }
    address = f"hooked-daemon.{namespace}.svc.cluster.local:2000"

    def admitted_with_env() -> bool:
        cluster.kubectl("delete", "pod", "p", "-n", namespace, "--ignore-not-found", "--wait=true")
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        return bool(
            _env_of(get(cluster, "pod", "p", "-n", namespace)).get("AWS_XRAY_DAEMON_ADDRESS")
            == address
        )

    # The webhook configuration is registered once the config asks for webhook mode.
    wait_for(admitted_with_env, timeout=30, interval=1, what="a Pod mutated at admission")
