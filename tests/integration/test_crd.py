"""The TracingConfig CRD on a real API server: what it accepts, defaults, refuses and shows."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from xray_dev.cluster import Cluster
from xray_operator.model import TracingConfig, TracingConfigSpec

pytestmark = pytest.mark.integration

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))
ARN = "arn:aws:iam::123456789012:role/xray-daemon"


def tc(name: str, namespace: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "tracing.xray-operator.dev/v1alpha1", "kind": "TracingConfig",
        "metadata": {"name": name, "namespace": namespace},
    }
    if spec is not None:
        obj["spec"] = spec
    return obj


@pytest.fixture(scope="module")
def shared_ns(cluster: Cluster, crd: Path) -> Iterator[str]:
    """One namespace for the refusal table: refused objects are never stored."""
    name = f"crd-refusals-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_crd_is_established_with_short_name_and_category(cluster: Cluster, crd: Path) -> None:
    doc = json.loads(cluster.kubectl(
        "get", "crd", "tracingconfigs.tracing.xray-operator.dev", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in doc["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    resources = cluster.kubectl("api-resources", "--api-group=tracing.xray-operator.dev").stdout
    assert "tc" in resources.split() and "TracingConfig" in resources


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_samples_are_accepted_and_defaulted_like_the_model(
    cluster: Cluster, crd: Path, namespace: str, sample: Path
) -> None:
    obj = yaml.safe_load(sample.read_text())
    obj["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
    stored = json.loads(cluster.kubectl(
        "get", "tc", obj["metadata"]["name"], "-n", namespace, "-o", "json").stdout)
    # What the API server stored (its defaults applied) is what the model makes of the
    # sample (the model's defaults applied): the two sets of defaults agree.
    from_server = TracingConfig.from_object(stored).spec
    assert from_server == TracingConfigSpec.model_validate(obj["spec"])
    assert stored["spec"] == from_server.model_dump(exclude_none=True)


def test_minimal_object_gets_every_default_from_the_server(
    cluster: Cluster, crd: Path, namespace: str
) -> None:
    cluster.kubectl("create", "-f", "-",
                    input=json.dumps(tc("xray", namespace, {"region": "us-east-1"})))
    stored = json.loads(cluster.kubectl("get", "tc", "xray", "-n", namespace, "-o", "json").stdout)
    expected = TracingConfigSpec(region="us-east-1").model_dump(exclude_none=True)
    assert stored["spec"] == expected


# (spec or None for no spec, name, words the server's message must contain). Every entry
# is a mistake a person could make; the message must point at the field.
REFUSED: dict[str, tuple[dict[str, Any] | None, str, list[str]]] = {
    "udp-port-0": ({"region": "us-east-1", "daemon": {"udpPort": 0}}, "xray",
                   ["spec.daemon.udpPort", "greater than or equal to 1"]),
    "tcp-port-70000": ({"region": "us-east-1", "daemon": {"tcpPort": 70000}}, "xray",
                       ["spec.daemon.tcpPort", "less than or equal to 65535"]),
    "unknown-log-level": ({"region": "us-east-1", "daemon": {"logLevel": "verbose"}}, "xray",
                          ["spec.daemon.logLevel", "Unsupported value", '"debug"']),
    "hostip-without-hostport": (
        {"region": "us-east-1", "injection": {"addressMode": "hostIP"}}, "xray",
        ["spec.injection.addressMode", "requires daemon.hostPort: true"]),
    "malformed-daemon-role-arn": (
        {"region": "us-east-1", "daemon": {"roleArn": "xray-role"}}, "xray",
        ["spec.daemon.roleArn", "should match"]),
    "malformed-irsa-role-arn": (
        {"region": "us-east-1", "serviceAccount": {"roleArn": "arn:aws:iam::1234:role/x"}},
        "xray", ["spec.serviceAccount.roleArn", "should match"]),
    "malformed-region": ({"region": "US East"}, "xray", ["spec.region", "should match"]),
    "missing-region": ({"daemon": {"udpPort": 2000}}, "xray", ["spec.region", "Required value"]),
    "missing-spec": (None, "xray", ["spec", "Required value"]),
    "negative-buffer": ({"region": "us-east-1", "daemon": {"bufferSizeMB": -1}}, "xray",
                        ["spec.daemon.bufferSizeMB", "greater than or equal to 3"]),
    "unknown-field": ({"region": "us-east-1", "daemon": {"udpport": 2000}}, "xray",
                      ['unknown field "spec.daemon.udpport"']),
    "port-as-string": ({"region": "us-east-1", "daemon": {"udpPort": "2000"}}, "xray",
                       ["spec.daemon.udpPort", "integer"]),
    "bool-as-string": ({"region": "us-east-1", "daemon": {"hostPort": "yes"}}, "xray",
                       ["spec.daemon.hostPort", "boolean"]),
    "unknown-injection-mode": ({"region": "us-east-1", "injection": {"mode": "sidecar"}}, "xray",
                               ["spec.injection.mode", "Unsupported value"]),
    "irsa-without-role": ({"region": "us-east-1", "iam": {"identity": "irsa"}}, "xray",
                          ["spec.iam.identity", "requires serviceAccount.roleArn"]),
    "noderole-with-irsa-role": (
        {"region": "us-east-1", "iam": {"identity": "nodeRole"},
         "serviceAccount": {"roleArn": ARN}}, "xray",
        ["spec.iam.identity", "use identity irsa or auto"]),
    "recheck-too-often": ({"region": "us-east-1", "iam": {"recheckInterval": "10s"}}, "xray",
                          ["spec.iam.recheckInterval", "use 1m or more"]),
    "recheck-not-a-duration": ({"region": "us-east-1", "iam": {"recheckInterval": "hourly"}},
                               "xray", ["spec.iam.recheckInterval", "should match"]),
    "endpoint-not-a-url": ({"region": "us-east-1", "daemon": {"endpoint": "xray.local"}}, "xray",
                           ["spec.daemon.endpoint", "should match"]),
    "bad-quantity": ({"region": "us-east-1",
                      "daemon": {"resources": {"limits": {"memory": "lots"}}}}, "xray",
                     ["spec.daemon.resources.limits.memory", "should match"]),
    "bad-toleration-operator": ({"region": "us-east-1",
                                 "daemon": {"tolerations": [{"operator": "Maybe"}]}}, "xray",
                                ["spec.daemon.tolerations[0].operator", "Unsupported value"]),
    "concurrency-0": ({"region": "us-east-1", "daemon": {"concurrency": 0}}, "xray",
                      ["spec.daemon.concurrency", "greater than or equal to 1"]),
    "name-too-long-for-the-service": ({"region": "us-east-1"}, "x" * 57,
                                      ["metadata.name must", "at most 56 characters"]),
}


@pytest.mark.parametrize("case", REFUSED)
def test_invalid_tracingconfig_is_refused_with_the_field_named(
    cluster: Cluster, shared_ns: str, case: str
) -> None:
    spec, name, words = REFUSED[case]
    result = cluster.kubectl("create", "-f", "-", check=False,
                             input=json.dumps(tc(name, shared_ns, copy.deepcopy(spec))))
    assert result.returncode != 0, f"{case} was accepted"
    for word in words:
        assert word in result.stderr, f"{case}: {word!r} not in {result.stderr}"
    assert cluster.kubectl("get", "tc", name, "-n", shared_ns, check=False).returncode != 0


def test_model_refuses_what_the_server_refuses() -> None:
    # The render command must not print objects for a config the server would refuse.
    for case, (spec, name, _) in REFUSED.items():
        with pytest.raises(ValueError):
            TracingConfig.from_object(tc(name, "ns", copy.deepcopy(spec)))
        assert case


def server_table(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """What `kubectl get tc` prints, as the server's Table, with each row's object from the
    same read (an operator running against this cluster may rewrite status at any time)."""
    client = cluster.api_client()
    method, url, headers, _, _ = client.param_serialize(
        "GET", f"/apis/tracing.xray-operator.dev/v1alpha1/namespaces/{namespace}/tracingconfigs",
        query_params=[("includeObject", "Object")],
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = client.call_api(method, url, header_params=headers)
    response.read()
    return dict(json.loads(response.data))


def test_get_shows_the_printer_columns(cluster: Cluster, crd: Path, namespace: str) -> None:
    cluster.kubectl("create", "-f", "-",
                    input=json.dumps(tc("xray", namespace, {"region": "us-east-1"})))
    status = {
        "observedGeneration": 1,
        "daemonAddress": f"xray-daemon.{namespace}.svc.cluster.local:2000",
        "daemonSet": {"desired": 3, "ready": 2},
        "injectedWorkloads": 7,
        "iam": {"checkedAt": "2026-01-01T00:00:00Z", "allowed": "False", "identities": []},
        "conditions": [{"type": "Ready", "status": "False", "reason": "DaemonSetNotReady",
                        "message": "2 of 3 daemon pods ready",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }
    cluster.kubectl("patch", "tc", "xray", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": status}))
    lines = cluster.kubectl("get", "tc", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "ADDRESS", "DAEMONS", "INJECTED", "IAM", "AGE"]
    assert lines[1].split()[0] == "xray"

    table = server_table(cluster, namespace)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:7] == ["Name", "Ready", "Address", "Daemons", "Injected", "IAM", "Age"]
    (row,) = table["rows"]
    shown = dict(zip(columns, row["cells"], strict=True))
    seen = row["object"]["status"]
    ready = next(c["status"] for c in seen["conditions"] if c["type"] == "Ready")
    assert shown["Ready"] == ready
    assert shown["Address"] == seen["daemonAddress"]
    assert shown["Daemons"] == seen["daemonSet"]["ready"]
    assert shown["Injected"] == seen["injectedWorkloads"]
    assert shown["IAM"] == seen["iam"]["allowed"]
    assert (shown["Region"], shown["Default"]) == ("us-east-1", False)


def test_status_is_a_subresource(cluster: Cluster, crd: Path, namespace: str) -> None:
    # A spec update must not be able to overwrite status (and vice versa).
    obj = tc("xray", namespace, {"region": "us-east-1"})
    obj["status"] = {"injectedWorkloads": 99}
    cluster.kubectl("create", "-f", "-", input=json.dumps(obj))
    stored = json.loads(cluster.kubectl("get", "tc", "xray", "-n", namespace, "-o", "json").stdout)
    assert (stored.get("status") or {}).get("injectedWorkloads") != 99
    assert stored["metadata"]["generation"] == 1
    cluster.kubectl("patch", "tc", "xray", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", '{"status": {"injectedWorkloads": 1}}')
    again = json.loads(cluster.kubectl("get", "tc", "xray", "-n", namespace, "-o", "json").stdout)
    assert again["metadata"]["generation"] == 1  # status writes do not bump generation


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("tracingconfig.spec.daemon", ["bufferSizeMB", "Memory for segment buffers",
                                       "hostPort", "tolerations", "udpPort"]),
        ("tracingconfig.spec.injection.addressMode", ["hostIP", "internalTrafficPolicy Local"]),
        ("tc.spec.serviceAccount.roleArn", ["IRSA", "eks.amazonaws.com/role-arn"]),
        ("tracingconfig.spec.iam", ["recheckInterval", "identity"]),
    ],
)
def test_kubectl_explain_shows_descriptions(
    cluster: Cluster, crd: Path, field: str, words: list[str]
) -> None:
    out = cluster.kubectl("explain", field).stdout
    for word in words:
        assert word in out, f"{word!r} not in explain {field}:\n{out}"
