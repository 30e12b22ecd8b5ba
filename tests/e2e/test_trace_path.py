"""The trace path with real parts: sample apps instrumented with the real X-Ray SDK send
segments to the real X-Ray daemon, running the cfg.yaml the operator rendered, which uploads
them to an X-Ray API (moto on loopback). Assertions go through the X-Ray API, as a person
looking for their traces would.

The daemon is started as the pod starts it: the image entrypoint's flags, then the args of
the rendered DaemonSet, reading the rendered cfg.yaml. What differs from a cluster, and nothing
else (each asserted below):
- the daemon's cfg.yaml: Endpoint (moto), LocalMode (no EC2 metadata here), loopback binds on
  a free port (tracepath.LOCAL_SUBSTITUTIONS);
- the daemon's command line: the -c path (a local file) and the -b/-t binds (the same port);
- the apps' environment: the injected daemon address points at the local daemon, and
  service-a's SERVICE_B_URL at the local service-b (there is no cluster DNS here).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from xray_dev import tracepath
from xray_dev.tracepath import (
    DAEMON_ADDRESS_ENV,
    LOCAL_SUBSTITUTIONS,
    SAMPLE_SERVICES,
    OperatorOutput,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REQUESTS = 3


def rendered_cfg(output: OperatorOutput) -> dict[str, Any]:
    parsed = yaml.safe_load(output.daemon_configmap["data"]["cfg.yaml"])
    assert isinstance(parsed, dict)
    return parsed


def local_cfg(output: OperatorOutput, endpoint: str) -> dict[str, Any]:
    rendered = rendered_cfg(output)
    config = tracepath.localize_daemon_config(rendered, endpoint=endpoint,
                                              port=tracepath.free_port())
    assert tracepath.changed_keys(rendered, config) <= LOCAL_SUBSTITUTIONS
    return config


def check_only_local_flags_change(args: list[str], config: dict[str, Any],
                                  config_path: Path) -> None:
    """Making the daemon's command line local changes only the -c path and the bind values."""
    port = int(config["Socket"]["TCPAddress"].rpartition(":")[2])
    local = tracepath.localize_daemon_args(args, config_path=config_path, port=port)
    local_flags = {"-c", "--config", "-b", "--bind", "-t", "--bind-tcp"}
    for i, (before, after) in enumerate(zip(args, local, strict=True)):
        if before != after:
            flag = before.partition("=")[0] if "=" in before else args[i - 1]
            assert flag in local_flags, f"{before!r} -> {after!r} changes more than the binds"


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        pytest.param({"SamplingRate": 0.5}, "SamplingRate flag is invalid", id="unknown-key"),
        pytest.param({"Version": None}, "Config Version is missing", id="missing-version"),
    ],
)
def test_daemon_refuses_a_config_it_cannot_honour(
    xray_binary: Path, xray_endpoint: tracepath.XRayEndpoint, operator_output: OperatorOutput,
    tmp_path: Path, change: dict[str, Any], refusal: str,
) -> None:
    good = local_cfg(operator_output, xray_endpoint.endpoint_url)
    args = tracepath.container_args(operator_output.daemonset)
    check_only_local_flags_change(args, good, tmp_path / "cfg.yaml")
    # Control: the very same file without the change starts, so the refusal below is the
    # daemon's validator speaking, not a broken setup.
    accepted = tracepath.check_config(xray_binary, good, tmp_path, args=args, name="good")
    assert accepted.accepted, accepted.output

    bad = {k: v for k, v in {**good, **change}.items() if v is not None}
    verdict = tracepath.check_config(xray_binary, bad, tmp_path, args=args, name="bad")

    assert not verdict.accepted, f"daemon started with {change}:\n{verdict.output}"
    assert verdict.returncode != 0
    assert refusal in verdict.output


def test_segments_of_both_services_arrive_as_one_trace(
    xray_binary: Path, xray_endpoint: tracepath.XRayEndpoint, operator_output: OperatorOutput,
    tmp_path: Path,
) -> None:
    with tracepath.local_trace_path(operator_output, xray_binary, xray_endpoint,
                                    tmp_path) as path:
        try:
            check_trace_path(path, xray_endpoint)
        except BaseException as error:
            error.add_note(path.logs())
            raise


def check_trace_path(path: tracepath.LocalTracePath, endpoint: tracepath.XRayEndpoint) -> None:
    # The substitutions, and nothing else.
    assert tracepath.changed_keys(path.rendered_config, path.config) <= LOCAL_SUBSTITUTIONS
    assert path.config["Endpoint"] == endpoint.endpoint_url
    assert path.config["LocalMode"] is True
    check_only_local_flags_change(path.pod_args, path.config, path.daemon.config_path)
    assert path.daemon.argv[1:] == tracepath.localize_daemon_args(
        path.pod_args, config_path=path.daemon.config_path, port=path.daemon.port)
    local_urls = tracepath.service_urls(path.ports)
    for service in SAMPLE_SERVICES:
        injected = path.injected_env[service]
        assert DAEMON_ADDRESS_ENV in injected, f"{service}: nothing injected: {injected}"
        assert path.env[service][DAEMON_ADDRESS_ENV] == path.daemon.address
        assert tracepath.changed_keys(injected, path.env[service]) <= {
            DAEMON_ADDRESS_ENV, *local_urls}

    since = time.time()
    delays: dict[str, int] = {}
    for _ in range(REQUESTS):
        root, body = path.request()
        assert body["service"] == "service-a"
        assert body["downstream"]["service"] == "service-b"
        delays[root] = body["downstream"]["delay_ms"]

    traces = tracepath.fetch_traces(
        endpoint.xray(), list(delays), since=since, timeout=60,
        until=lambda found: all(len(found.get(r, [])) >= 2 for r in delays),
    )

    for root, delay_ms in delays.items():
        segments = {doc["name"]: doc for doc in traces.get(root, [])}
        assert set(segments) == {"service-a", "service-b"}, (
            f"trace {root}: segments {sorted(segments)}")
        a, b = segments["service-a"], segments["service-b"]
        assert a["trace_id"] == b["trace_id"] == root
        assert "parent_id" not in a, "service-a is the entry point: its segment is the root"
        # B's parent is the subsegment service-a recorded for its HTTP call to B.
        calls = {sub["id"]: sub for sub in tracepath.subsegments(a)}
        assert b.get("parent_id") in calls, (
            f"service-b's parent {b.get('parent_id')} is no subsegment of service-a")
        call = calls[b["parent_id"]]
        assert call["http"]["request"]["url"] == f"{local_urls['SERVICE_B_URL']}/work"
        assert a["start_time"] <= b["start_time"] <= b["end_time"] <= a["end_time"]
        # The random delay is B's own subsegment, annotated with what B answered.
        delay = next(s for s in tracepath.subsegments(b) if s["name"] == "random-delay")
        assert delay["annotations"]["delay_ms"] == delay_ms

    # The daemon ran on the local binds, not the entrypoint's 0.0.0.0:2000. These are Info
    # lines; at "prod" (the daemon's default) Info is logged too, at warn/error it is not.
    if path.config.get("Logging", {}).get("LogLevel", "prod") in ("dev", "debug", "info", "prod"):
        log = path.daemon.proc.output()
        assert f"Starting proxy http server on {path.daemon.address}" in log
        assert "Successfully sent batch" in log


def test_demo_view_shows_b_inside_a(
    xray_endpoint: tracepath.XRayEndpoint, operator_output: OperatorOutput, tmp_path: Path,
    xray_binary: Path,
) -> None:
    # What `make demo` prints: each trace read back from the X-Ray API as a tree.
    shown = tracepath.show_traces(operator_output, xray_endpoint, tmp_path, requests=1)
    [(_, lines)] = shown.items()
    names = [line.split(" (")[0] for line in lines]
    depth = {name.strip(): len(name) - len(name.lstrip()) for name in names}
    assert names[0] == "service-a"
    assert depth["service-a"] < depth["service-b"] < depth["random-delay"]
    assert any("GET" in line and "/work" in line for line in lines)
