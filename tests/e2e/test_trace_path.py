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
from collections.abc import Iterator
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


def pod_args(output: OperatorOutput, config: dict[str, Any], tmp_path: Path) -> list[str]:
    """The daemon container's command line (entrypoint flags + rendered args), after checking
    that making it local changes only the -c path and the bind values."""
    args = tracepath.container_args(output.daemonset)
    port = int(config["Socket"]["TCPAddress"].rpartition(":")[2])
    local = tracepath.localize_daemon_args(args, config_path=tmp_path / "cfg.yaml", port=port)
    local_flags = {"-c", "--config", "-b", "--bind", "-t", "--bind-tcp"}
    for i, (before, after) in enumerate(zip(args, local, strict=True)):
        if before != after:
            flag = before.partition("=")[0] if "=" in before else args[i - 1]
            assert flag in local_flags, f"{before!r} -> {after!r} changes more than the binds"
    return args


def subsegments(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for sub in doc.get("subsegments") or []:
        yield sub
        yield from subsegments(sub)


def sleep_into_next_second() -> None:
    # With no sampling rules from the X-Ray API (moto has none), the SDK samples with its
    # local default rule: the first request of every second, then 5%. One request per
    # second is therefore traced every time.
    time.sleep(1.05 - (time.time() % 1.0))


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
    args = pod_args(operator_output, good, tmp_path)
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
    config = local_cfg(operator_output, xray_endpoint.endpoint_url)
    assert config["Endpoint"] == xray_endpoint.endpoint_url
    assert config["LocalMode"] is True

    procs: list[tracepath.Proc] = []
    try:
        args = pod_args(operator_output, config, tmp_path)
        daemon = tracepath.start_daemon(xray_binary, config, tmp_path, args=args)
        procs.append(daemon.proc)

        ports = {service: tracepath.free_port() for service in SAMPLE_SERVICES}
        local_urls = {"SERVICE_B_URL": f"http://127.0.0.1:{ports['service-b']}"}
        # service-b first: service-a calls it.
        for service in reversed(SAMPLE_SERVICES):
            injected = tracepath.container_env(operator_output.deployments[service])
            assert DAEMON_ADDRESS_ENV in injected, f"{service}: nothing injected: {injected}"
            env = {**injected, DAEMON_ADDRESS_ENV: daemon.address}
            env.update({k: v for k, v in local_urls.items() if k in injected})
            assert tracepath.changed_keys(injected, env) <= {DAEMON_ADDRESS_ENV, *local_urls}
            procs.append(tracepath.start_service(service, env, ports[service], tmp_path))

        since = time.time()
        delays: dict[str, int] = {}
        for _ in range(REQUESTS):
            sleep_into_next_second()
            status, headers, body = tracepath.get_json(f"http://127.0.0.1:{ports['service-a']}/")
            assert status == 200
            assert body["service"] == "service-a"
            assert body["downstream"]["service"] == "service-b"
            root = tracepath.trace_root(headers.get("X-Amzn-Trace-Id", ""))
            assert root, f"service-a answered without a trace id: {headers}"
            delays[root] = body["downstream"]["delay_ms"]

        traces = tracepath.fetch_traces(
            xray_endpoint.xray(), list(delays), since=since, timeout=60,
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
            calls = {sub["id"]: sub for sub in subsegments(a)}
            assert b.get("parent_id") in calls, (
                f"service-b's parent {b.get('parent_id')} is no subsegment of service-a")
            call = calls[b["parent_id"]]
            assert call["http"]["request"]["url"] == f"{local_urls['SERVICE_B_URL']}/work"
            assert a["start_time"] <= b["start_time"] <= b["end_time"] <= a["end_time"]
            # The random delay is B's own subsegment, annotated with what B answered.
            delay = next(s for s in subsegments(b) if s["name"] == "random-delay")
            assert delay["annotations"]["delay_ms"] == delay_ms

        # The daemon ran on the local binds, not the entrypoint's 0.0.0.0:2000. These are Info
        # lines; at "prod" (the daemon's default) Info is logged too, at warn/error it is not.
        if config.get("Logging", {}).get("LogLevel", "prod") in ("dev", "debug", "info", "prod"):
            log = daemon.proc.output()
            assert f"Starting proxy http server on {daemon.address}" in log
            assert "Successfully sent batch" in log
    except BaseException as error:
        for proc in procs:
            error.add_note(f"--- {proc.name} (pid {proc.pid}) ---\n{proc.output()[-4000:]}")
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()
