"""The TracingConfig model: what it accepts, what it refuses, and the defaults a user gets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from xray_operator.model import (
    DEFAULT_IMAGE,
    TracingConfig,
    TracingConfigSpec,
    TracingConfigStatus,
    duration_seconds,
)


def tc(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tracing.xray-operator.dev/v1alpha1",
        "kind": "TracingConfig",
        "metadata": {"name": "xray", "namespace": "xray-system", **metadata},
        "spec": spec,
    }


def errors_of(obj: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as info:
        TracingConfig.from_object(obj)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_minimal_spec_gets_the_documented_defaults() -> None:
    config = TracingConfig.from_object(tc({"region": "us-east-1"}))
    spec = config.spec
    assert spec.default is False
    assert spec.daemon.image == DEFAULT_IMAGE
    assert ":latest" not in DEFAULT_IMAGE and DEFAULT_IMAGE.rsplit(":", 1)[1][0].isdigit()
    assert (spec.daemon.buffer_size_mb, spec.daemon.concurrency) == (24, 8)
    assert (spec.daemon.udp_port, spec.daemon.tcp_port) == (2000, 2000)
    assert spec.daemon.log_level == "prod"
    assert spec.daemon.host_port is False
    assert [t.operator for t in spec.daemon.tolerations] == ["Exists"]
    assert spec.injection.mode == "deployment"
    assert spec.injection.address_mode == "service"
    assert (spec.iam.check, spec.iam.identity, spec.iam.recheck_seconds) == (True, "auto", 3600)


def test_dump_is_camel_case_and_round_trips() -> None:
    config = TracingConfig.from_object(
        tc({"region": "eu-west-1", "daemon": {"bufferSizeMB": 32, "udpPort": 3000}})
    )
    dumped = config.spec.model_dump()
    assert dumped["daemon"]["bufferSizeMB"] == 32
    assert dumped["daemon"]["udpPort"] == 3000
    assert dumped["serviceAccount"] == {"roleArn": ""}
    assert TracingConfigSpec.model_validate(dumped) == config.spec


def test_snake_case_names_are_accepted_too() -> None:
    spec = TracingConfigSpec(region="us-west-2", daemon={"buffer_size_mb": 10})  # type: ignore[arg-type]
    assert spec.daemon.buffer_size_mb == 10


def test_a_real_api_object_parses_with_server_metadata_and_kopf_status() -> None:
    obj = tc({"region": "us-east-1"}, uid="abc", generation=3, resourceVersion="42",
             managedFields=[{"manager": "kubectl"}], creationTimestamp="2026-01-01T00:00:00Z")
    obj["status"] = {
        "observedGeneration": 2,
        "daemonSet": {"desired": 3, "ready": 2},
        "conditions": [{"type": "Ready", "status": "False", "reason": "DaemonSetNotReady",
                        "message": "2/3 ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "kopf": {"progress": {}},
    }
    config = TracingConfig.from_object(obj)
    assert (config.metadata.uid, config.metadata.generation) == ("abc", 3)
    assert config.status is not None and config.status.daemon_set is not None
    assert config.status.daemon_set.ready == 2
    assert config.status.conditions[0].reason == "DaemonSetNotReady"


def test_read_only_mapping_views_are_accepted() -> None:
    # kopf hands handlers Mapping views (kopf.Body), not dicts.
    from types import MappingProxyType

    obj = tc({"region": "us-east-1", "daemon": MappingProxyType({"udpPort": 3000}),
              "injection": {"mode": "webhook"}})
    config = TracingConfig.from_object(MappingProxyType(obj))
    assert config.spec.daemon.udp_port == 3000


def test_a_status_this_version_cannot_read_does_not_make_the_spec_invalid() -> None:
    obj = tc({"region": "us-east-1"})
    obj["status"] = {"iam": {"identities": [{"kind": "podIdentity"}]}, "daemonSet": "3/3"}
    config = TracingConfig.from_object(obj)
    assert config.spec.region == "us-east-1"
    assert config.status is None


def test_status_iam_shape_round_trips() -> None:
    iam = {
        "checkedAt": "2026-01-01T00:00:00Z",
        "allowed": "False",
        "identities": [{
            "kind": "nodeRole", "roleArn": "arn:aws:iam::123456789012:role/node",
            "nodes": ["n1"], "allowed": "False", "missingActions": ["xray:PutTraceSegments"],
            "overPrivileged": False, "message": "attach AWSXRayDaemonWriteAccess",
        }],
    }
    status = TracingConfigStatus.model_validate({"iam": iam, "injectedWorkloads": 4})
    assert status.model_dump(exclude_none=True)["iam"] == iam


def test_wrong_kind_is_named() -> None:
    obj = tc({"region": "us-east-1"})
    obj["kind"] = "Deployment"
    with pytest.raises(ValueError, match="kind is 'Deployment'"):
        TracingConfig.from_object(obj)


@pytest.mark.parametrize(
    ("spec", "loc"),
    [
        ({}, ("spec", "region")),
        ({"region": "us-east"}, ("spec", "region")),
        ({"region": "US-EAST-1"}, ("spec", "region")),
        ({"region": "us-east-1", "daemon": {"udpPort": 0}}, ("spec", "daemon", "udpPort")),
        ({"region": "us-east-1", "daemon": {"tcpPort": 70000}}, ("spec", "daemon", "tcpPort")),
        ({"region": "us-east-1", "daemon": {"udpPort": "2000"}}, ("spec", "daemon", "udpPort")),
        ({"region": "us-east-1", "daemon": {"hostPort": "yes"}}, ("spec", "daemon", "hostPort")),
        ({"region": "us-east-1", "daemon": {"bufferSizeMB": -1}},
         ("spec", "daemon", "bufferSizeMB")),
        ({"region": "us-east-1", "daemon": {"logLevel": "verbose"}},
         ("spec", "daemon", "logLevel")),
        ({"region": "us-east-1", "daemon": {"roleArn": "xray-role"}},
         ("spec", "daemon", "roleArn")),
        ({"region": "us-east-1", "serviceAccount": {"roleArn": "arn:aws:iam::1234:role/x"}},
         ("spec", "serviceAccount", "roleArn")),
        ({"region": "us-east-1", "daemon": {"endpoint": "xray.local"}},
         ("spec", "daemon", "endpoint")),
        ({"region": "us-east-1", "daemon": {"image": "repo/img:1 --debug"}},
         ("spec", "daemon", "image")),
        ({"region": "us-east-1", "daemon": {"udpport": 2000}}, ("spec", "daemon", "udpport")),
        ({"region": "us-east-1", "injection": {"mode": "sidecar"}}, ("spec", "injection", "mode")),
        ({"region": "us-east-1", "iam": {"identity": "root"}}, ("spec", "iam", "identity")),
        ({"region": "us-east-1", "iam": {"recheckInterval": "hourly"}},
         ("spec", "iam", "recheckInterval")),
        ({"region": "us-east-1", "iam": {"recheckInterval": "30s"}},
         ("spec", "iam", "recheckInterval")),
    ],
)
def test_invalid_field_is_refused_at_its_path(spec: dict[str, Any], loc: tuple[str, ...]) -> None:
    assert loc in [e[0][: len(loc)] for e in errors_of(tc(spec))]


def test_resource_quantities_are_checked() -> None:
    errors = errors_of(tc({"region": "us-east-1",
                           "daemon": {"resources": {"limits": {"memory": "lots"}}}}))
    assert errors[0][0][:5] == ("spec", "daemon", "resources", "limits", "memory")
    ok = TracingConfig.from_object(
        tc({"region": "us-east-1",
            "daemon": {"resources": {"limits": {"memory": "128Mi", "cpu": 1}}}})
    )
    assert ok.spec.daemon.resources.limits == {"memory": "128Mi", "cpu": 1}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"injection": {"addressMode": "hostIP"}}, "requires daemon.hostPort"),
        ({"iam": {"identity": "irsa"}}, "requires serviceAccount.roleArn"),
        ({"iam": {"identity": "nodeRole"},
          "serviceAccount": {"roleArn": "arn:aws:iam::123456789012:role/x"}}, "use identity irsa"),
    ],
)
def test_cross_field_rules_say_what_to_change(spec: dict[str, Any], words: str) -> None:
    messages = " ".join(msg for _, msg in errors_of(tc({"region": "us-east-1", **spec})))
    assert words in messages


@pytest.mark.parametrize("limit", ["24Mi", "16M", 1000000, "0.02Gi"])
def test_memory_limit_below_the_buffers_is_refused(limit: str | int) -> None:
    spec = {"region": "us-east-1",
            "daemon": {"bufferSizeMB": 24, "resources": {"limits": {"memory": limit}}}}
    messages = " ".join(msg for _, msg in errors_of(tc(spec)))
    assert "would be OOM-killed" in messages


@pytest.mark.parametrize("limit", ["25Mi", "1Gi", "64M", 100000000])
def test_memory_limit_above_the_buffers_is_fine(limit: str | int) -> None:
    spec = {"region": "us-east-1",
            "daemon": {"bufferSizeMB": 24, "resources": {"limits": {"memory": limit}}}}
    assert TracingConfig.from_object(tc(spec)).spec.daemon.resources.limits == {"memory": limit}


def test_host_ip_mode_is_fine_with_host_port() -> None:
    config = TracingConfig.from_object(tc({
        "region": "us-east-1", "daemon": {"hostPort": True},
        "injection": {"addressMode": "hostIP"},
    }))
    assert config.spec.injection.address_mode == "hostIP"


@pytest.mark.parametrize("name", ["9xray", "Xray", "x" * 57, "xray-", "xr.ay"])
def test_names_that_cannot_name_a_service_are_refused(name: str) -> None:
    assert errors_of(tc({"region": "us-east-1"}, name=name))[0][0] == ("metadata", "name")


@pytest.mark.parametrize(
    ("region"), ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1", "us-isob-east-1",
                 "ap-southeast-5", "il-central-1"],
)
def test_real_regions_are_accepted(region: str) -> None:
    assert TracingConfigSpec(region=region).region == region


def test_durations() -> None:
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("90s") == 90
    assert duration_seconds("1500ms") == 1.5
    with pytest.raises(ValueError):
        duration_seconds("1d")


def test_spec_is_immutable_so_it_can_be_shared_between_handlers() -> None:
    config = TracingConfig.from_object(tc({"region": "us-east-1"}))
    with pytest.raises(ValidationError):
        config.spec.daemon.udp_port = 1  # type: ignore[misc]
