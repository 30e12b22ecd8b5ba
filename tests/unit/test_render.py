"""Desired state rendered from a TracingConfig: what runs on every node and how pods reach it."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from xray_operator.constants import CONFIG_HASH_ANNOTATION
from xray_operator.model import TracingConfig
from xray_operator.render import address_for, child_name, config_hash, daemon_address, desired
from xray_operator.render.configmap import daemon_config
from xray_operator.render.serialize import to_json, to_yaml

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"
# kubernetes-validate ships schemas per minor version; ours is v1.36 (scripts/k8s-bins.sh).
K8S_SCHEMA_VERSION = "1.36.0"

# The keys of the daemon's Config struct (aws/aws-xray-daemon pkg/cfg/cfg.go); the daemon
# exits at start-up on any other key.
DAEMON_KEYS = {
    "TotalBufferSizeMB", "Concurrency", "Endpoint", "Region", "Socket", "Logging",
    "LocalMode", "ResourceARN", "RoleARN", "Profile", "NoVerifySSL", "ProxyAddress", "Version",
}
DAEMON_SUBKEYS = {"Socket": {"UDPAddress", "TCPAddress"},
                  "Logging": {"LogRotation", "LogLevel", "LogPath"}}

EXPECTED_LABELS = {
    "app.kubernetes.io/name": "xray-daemon",
    "app.kubernetes.io/managed-by": "xray-operator",
    "app.kubernetes.io/component": "daemon",
    "app.kubernetes.io/part-of": "xray-operator",
}


def load(path: Path) -> TracingConfig:
    return TracingConfig.from_object(yaml.safe_load(path.read_text()))


def config(spec: dict[str, Any] | None = None, name: str = "xray",
           namespace: str = "xray-system") -> TracingConfig:
    return TracingConfig.from_object({
        "apiVersion": "tracing.xray-operator.dev/v1alpha1", "kind": "TracingConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"region": "us-east-1", **(spec or {})},
    })


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def daemonset(cfg: TracingConfig) -> dict[str, Any]:
    return by_kind(desired(cfg))["DaemonSet"]


def container(cfg: TracingConfig) -> dict[str, Any]:
    return dict(daemonset(cfg)["spec"]["template"]["spec"]["containers"][0])


def cfg_file(cfg: TracingConfig) -> dict[str, Any]:
    return dict(yaml.safe_load(by_kind(desired(cfg))["ConfigMap"]["data"]["cfg.yaml"]))


VARIANTS = {
    "minimal": config(),
    "irsa": config({"serviceAccount": {"roleArn": "arn:aws:iam::123456789012:role/xray"}}),
    "hostip": config({"daemon": {"hostPort": True}, "injection": {"addressMode": "hostIP"}}),
    "ports": config({"daemon": {"udpPort": 3000, "tcpPort": 3001}}),
    "resources": config({"daemon": {"resources": {"limits": {"memory": "1Gi", "cpu": 2}}}}),
    "no-tolerations": config({"daemon": {"tolerations": [], "priorityClassName": "high"}}),
    "everything": load(GOLDEN / "full.input.yaml"),
    **{f"sample-{p.stem}": load(p) for p in sorted(SAMPLES.glob("*.yaml"))},
}


@pytest.mark.parametrize("name", ["minimal", "full"])
def test_golden(name: str) -> None:
    """The whole rendered output, reviewed by a person; UPDATE_GOLDEN=1 rewrites it."""
    rendered = to_yaml(desired(load(GOLDEN / f"{name}.input.yaml")))
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_is_valid_kubernetes(variant: str) -> None:
    for obj in desired(VARIANTS[variant]):
        # strict: an unknown or misspelt field is an error, not silently pruned.
        kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def test_validation_would_catch_a_broken_object() -> None:
    broken = copy.deepcopy(daemonset(config()))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "2000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_SCHEMA_VERSION, strict=True)


def test_order_names_and_labels() -> None:
    objects = desired(config(name="tracing", namespace="obs"))
    assert [o["kind"] for o in objects] == ["ServiceAccount", "ConfigMap", "Service", "DaemonSet"]
    for obj in objects:
        assert obj["metadata"]["name"] == "tracing-daemon"
        assert obj["metadata"]["namespace"] == "obs"
        assert obj["metadata"]["labels"] == {
            **EXPECTED_LABELS, "app.kubernetes.io/instance": "tracing"}
        assert "ownerReferences" not in obj["metadata"]
    pod_labels = objects[3]["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/instance"] == "tracing"


def test_rendering_is_deterministic() -> None:
    for variant in VARIANTS.values():
        assert to_yaml(desired(variant)) == to_yaml(desired(variant))
        # A re-parsed equal config (a fresh object from the API server) renders the same.
        again = TracingConfig.from_object({
            "metadata": variant.metadata.model_dump(), "spec": variant.spec.model_dump()})
        assert to_json(desired(again)) == to_json(desired(variant))


def test_address_for_the_sample() -> None:
    sample = load(SAMPLES / "tracingconfig.yaml")
    assert child_name(sample) == "xray-daemon"
    assert daemon_address(sample) == "xray-daemon.xray-system.svc.cluster.local:2000"
    assert address_for(sample) == "xray-daemon.xray-system.svc.cluster.local:2000"


def test_address_in_host_ip_mode() -> None:
    assert address_for(VARIANTS["hostip"]) == "$(HOST_IP):2000"


def test_address_with_different_ports_names_both() -> None:
    # A single host:port would send the SDK's sampling calls to the UDP port.
    cfg = VARIANTS["ports"]
    host = "xray-daemon.xray-system.svc.cluster.local"
    assert address_for(cfg) == f"tcp:{host}:3001 udp:{host}:3000"
    assert daemon_address(cfg) == f"{host}:3000"


def test_address_parses_in_the_python_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_xray_sdk.core.daemon_config import DaemonConfig

    for variant in ("minimal", "ports"):
        monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address_for(VARIANTS[variant]))
        parsed = DaemonConfig()
        daemon = VARIANTS[variant].spec.daemon
        assert (parsed.udp_port, parsed.tcp_port) == (daemon.udp_port, daemon.tcp_port)


def test_daemon_config_file() -> None:
    cfg = cfg_file(config({"daemon": {"udpPort": 2100, "tcpPort": 2200, "bufferSizeMB": 10,
                                      "logLevel": "warn"}}))
    assert cfg["Version"] == 2
    assert cfg["Socket"] == {"UDPAddress": "0.0.0.0:2100", "TCPAddress": "0.0.0.0:2200"}
    assert cfg["TotalBufferSizeMB"] == 10
    assert cfg["Region"] == "us-east-1"
    assert cfg["Logging"] == {"LogLevel": "warn"}
    # Unset optional strings are left out rather than written empty.
    assert not {"Endpoint", "RoleARN", "ProxyAddress"} & set(cfg)


@pytest.mark.parametrize("variant", VARIANTS)
def test_daemon_config_has_only_keys_the_daemon_knows(variant: str) -> None:
    cfg = daemon_config(VARIANTS[variant])
    assert set(cfg) <= DAEMON_KEYS
    for key, sub in DAEMON_SUBKEYS.items():
        assert set(cfg.get(key, {})) <= sub
    assert "Version" in cfg


def test_optional_daemon_settings_reach_the_file() -> None:
    cfg = cfg_file(load(GOLDEN / "full.input.yaml"))
    assert cfg["Endpoint"] == "https://xray.us-gov-west-1.amazonaws.com"
    assert cfg["RoleARN"] == "arn:aws-us-gov:iam::123456789012:role/cross-account/xray-writer"
    assert cfg["ProxyAddress"] == "http://proxy.internal:3128"
    assert cfg["LocalMode"] is True


def test_container_runs_the_image_entrypoint_with_the_config() -> None:
    c = container(VARIANTS["ports"])
    assert "command" not in c
    assert c["args"][:2] == ["-c", "/etc/xray/cfg.yaml"]
    # The image entrypoint binds 2000; ours must come after it and win.
    assert c["args"][2:] == ["-b", "0.0.0.0:3000", "-t", "0.0.0.0:3001"]
    assert {"name": "config", "mountPath": "/etc/xray", "readOnly": True} in c["volumeMounts"]
    volumes = daemonset(VARIANTS["ports"])["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "config", "configMap": {"name": "xray-daemon"}}]


def test_ports_probes_and_host_ports() -> None:
    c = container(VARIANTS["ports"])
    assert c["ports"] == [
        {"name": "xray-udp", "containerPort": 3000, "protocol": "UDP"},
        {"name": "xray-tcp", "containerPort": 3001, "protocol": "TCP"},
    ]
    assert c["readinessProbe"]["tcpSocket"] == {"port": "xray-tcp"}
    assert c["livenessProbe"]["tcpSocket"] == {"port": "xray-tcp"}
    host = container(VARIANTS["hostip"])
    assert [p["hostPort"] for p in host["ports"]] == [2000, 2000]


def test_default_daemon_passes_pod_security_restricted() -> None:
    pod = daemonset(config())["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any("hostPort" in p for p in c["ports"])
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    assert all("hostPath" not in v for v in pod["volumes"])


def test_default_daemon_runs_on_every_linux_node() -> None:
    pod = daemonset(config())["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    chosen = daemonset(VARIANTS["no-tolerations"])["spec"]["template"]["spec"]
    assert chosen["tolerations"] == []
    assert chosen["priorityClassName"] == "high"


def test_resources_default_from_buffer_size_and_can_be_given() -> None:
    assert container(config({"daemon": {"bufferSizeMB": 100}}))["resources"] == {
        "requests": {"cpu": "50m", "memory": "140Mi"}, "limits": {"memory": "264Mi"}}
    assert container(VARIANTS["resources"])["resources"] == {"limits": {"memory": "1Gi", "cpu": 2}}


def test_rolling_update_and_stable_selector() -> None:
    ds = daemonset(config())
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    # The selector is immutable: it must not change with anything a user can edit.
    changed = daemonset(load(GOLDEN / "full.input.yaml").model_copy(
        update={"metadata": config().metadata}))
    assert changed["spec"]["selector"] == ds["spec"]["selector"]


def test_service_is_node_local_cluster_ip_for_udp_and_tcp() -> None:
    svc = by_kind(desired(VARIANTS["ports"]))["Service"]["spec"]
    assert svc["type"] == "ClusterIP" and "clusterIP" not in svc  # not headless
    assert svc["internalTrafficPolicy"] == "Local"
    assert [(p["protocol"], p["port"], p["targetPort"]) for p in svc["ports"]] == [
        ("UDP", 3000, "xray-udp"), ("TCP", 3001, "xray-tcp")]
    assert svc["selector"] == daemonset(VARIANTS["ports"])["spec"]["selector"]["matchLabels"]


def test_irsa_annotation_only_with_a_role() -> None:
    sa = by_kind(desired(VARIANTS["irsa"]))["ServiceAccount"]
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/xray"}
    assert "annotations" not in by_kind(desired(config()))["ServiceAccount"]["metadata"]
    pod = daemonset(VARIANTS["irsa"])["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "xray-daemon"


def hash_of(cfg: TracingConfig) -> str:
    annotations = daemonset(cfg)["spec"]["template"]["metadata"]["annotations"]
    return str(annotations[CONFIG_HASH_ANNOTATION])


@pytest.mark.parametrize(
    "change",
    [
        {"region": "eu-west-1"},
        {"daemon": {"bufferSizeMB": 25}},
        {"daemon": {"concurrency": 9}},
        {"daemon": {"logLevel": "debug"}},
        {"daemon": {"udpPort": 2001}},
        {"daemon": {"tcpPort": 2001}},
        {"daemon": {"roleArn": "arn:aws:iam::123456789012:role/other"}},
        {"daemon": {"localMode": True}},
        {"daemon": {"endpoint": "http://xray.local:4566"}},
        {"daemon": {"proxyAddress": "http://proxy:3128"}},
        # Not in cfg.yaml, but EKS gives a pod its IRSA role only when the pod is created.
        {"serviceAccount": {"roleArn": "arn:aws:iam::123456789012:role/irsa"}},
    ],
)
def test_config_hash_changes_when_the_daemon_config_changes(change: dict[str, Any]) -> None:
    assert hash_of(config(change)) != hash_of(config())
    assert hash_of(config(change)) == config_hash(config(change))


@pytest.mark.parametrize(
    "change",
    [
        {"default": True},
        {"daemon": {"image": "amazon/aws-xray-daemon:3.3.15"}},
        {"daemon": {"hostPort": True}},
        {"daemon": {"resources": {"limits": {"memory": "1Gi"}}}},
        {"daemon": {"nodeSelector": {"pool": "a"}}},
        {"daemon": {"tolerations": []}},
        {"daemon": {"priorityClassName": "high"}},
        {"injection": {"mode": "webhook"}},
        {"daemon": {"hostPort": True}, "injection": {"addressMode": "hostIP"}},
        {"iam": {"check": False, "recheckInterval": "5m"}},
    ],
)
def test_config_hash_stays_when_the_daemon_config_does_not_change(
    change: dict[str, Any],
) -> None:
    # Anything that is not in cfg.yaml either changes the pod template by itself (and rolls
    # the pods once) or does not concern the daemon at all; the hash must not add a rollout.
    assert hash_of(config(change)) == hash_of(config())


def test_config_hash_is_the_sha256_of_the_config_file_a_person_can_check() -> None:
    import hashlib

    cfg = config()
    text = by_kind(desired(cfg))["ConfigMap"]["data"]["cfg.yaml"]
    assert hash_of(cfg) == hashlib.sha256(text.encode()).hexdigest()


def test_yaml_output_is_reapplicable_text() -> None:
    text = to_yaml(desired(config()))
    docs = list(yaml.safe_load_all(text))
    assert docs == desired(config())
    assert "cfg.yaml: |" in text  # the daemon config reads as a file
