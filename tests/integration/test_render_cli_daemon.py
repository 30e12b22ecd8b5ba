"""The real X-Ray daemon accepts the cfg.yaml and the args we render.

The daemon exits at start-up on a config key it does not know or a missing Version, and the
image entrypoint's own binds would win over cfg.yaml; both mistakes show only when the real
binary runs. It is started the way the container starts it: entrypoint flags first, then
our args.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from xray_dev.cluster import free_port
from xray_operator.model import TracingConfig
from xray_operator.render import desired
from xray_operator.render.common import CONFIG_PATH

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAEMON = ROOT / ".cache" / "bin" / "xray"
# ENTRYPOINT of public.ecr.aws/xray/aws-xray-daemon (its Dockerfile).
ENTRYPOINT_FLAGS = ["-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000"]


@pytest.fixture(scope="module")
def daemon_binary() -> Path:
    if not DAEMON.exists():
        message = f"{DAEMON} missing: run scripts/xray-daemon.sh"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return DAEMON


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rendered(udp: int, tcp: int) -> tuple[dict[str, Any], list[str]]:
    config = TracingConfig.from_object({
        "apiVersion": "tracing.xray-operator.dev/v1alpha1", "kind": "TracingConfig",
        "metadata": {"name": "xray", "namespace": "xray-system"},
        "spec": {"region": "us-east-1", "daemon": {
            "udpPort": udp, "tcpPort": tcp, "localMode": True, "logLevel": "debug",
            "bufferSizeMB": 3, "endpoint": "http://127.0.0.1:9",
            "roleArn": "arn:aws:iam::123456789012:role/xray-writer",
            "proxyAddress": "http://127.0.0.1:9"}},
    })
    objects = {o["kind"]: o for o in desired(config)}
    cfg = yaml.safe_load(objects["ConfigMap"]["data"]["cfg.yaml"])
    args = objects["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["args"]
    return cfg, list(args)


def start(
    binary: Path, cfg: dict[str, Any], args: list[str], tmp_path: Path
) -> subprocess.Popen[str]:
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    args = [str(cfg_file) if a == CONFIG_PATH else a for a in args]
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
           "HOME": str(tmp_path)}
    return subprocess.Popen([str(binary), *ENTRYPOINT_FLAGS, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def test_daemon_starts_with_rendered_config_on_the_configured_ports(
    daemon_binary: Path, tmp_path: Path
) -> None:
    udp, tcp = free_udp_port(), free_port()
    cfg, args = rendered(udp, tcp)
    proc = start(daemon_binary, cfg, args, tmp_path)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None and not listening(tcp):
            time.sleep(0.1)
        assert proc.poll() is None, f"daemon exited:\n{stop(proc)}"
        assert listening(tcp), "daemon is not listening on the configured TCP port"
    finally:
        log = stop(proc)
    # Our binds, not the entrypoint's 2000, and the settings from cfg.yaml took effect.
    assert f"Listening on UDP 0.0.0.0:{udp}" in log, log
    assert f"Starting proxy http server on 0.0.0.0:{tcp}" in log, log
    assert "Using buffer memory limit of 3 MB" in log, log
    assert "Using region: us-east-1" in log, log


def test_daemon_refuses_a_key_it_does_not_know(daemon_binary: Path, tmp_path: Path) -> None:
    # The guard above means something only if a bad file really fails.
    cfg, args = rendered(free_udp_port(), free_port())
    cfg["Bogus"] = 1
    proc = start(daemon_binary, cfg, args, tmp_path)
    try:
        assert proc.wait(timeout=20) != 0
    finally:
        log = stop(proc)
    assert "Bogus" in log
