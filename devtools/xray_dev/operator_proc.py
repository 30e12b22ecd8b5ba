"""Run the operator against the local cluster exactly as in a cluster: as its own
ServiceAccount from manifests/install.yaml (a TokenRequest token), so a missing RBAC rule fails.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xray_dev.cluster import ROOT, Cluster, free_port

INSTALL = ROOT / "manifests" / "install.yaml"
OPERATOR_SA = ("xray-system", "xray-operator")
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_SA[0]}:{OPERATOR_SA[1]}"
VENV_BIN = ROOT / ".venv" / "bin"


def install(cluster: Cluster) -> None:
    """Apply manifests/install.yaml; the in-cluster operator Deployment is scaled to zero
    because the process under test plays its part (kwok pods run no code)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(INSTALL))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/tracingconfigs.tracing.xray-operator.dev",
    )
    cluster.kubectl("scale", "deployment/xray-operator", "-n", OPERATOR_SA[0], "--replicas=0")


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    token = cluster.kubectl(
        "create", "token", OPERATOR_SA[1], "-n", OPERATOR_SA[0], "--duration=24h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority-data": base64.b64encode(
                        cluster.ca_file.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "xray-operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "local",
                "context": {
                    "cluster": "local",
                    "user": "xray-operator",
                    "namespace": OPERATOR_SA[0],
                },
            }
        ],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@dataclass
class OperatorProcess:
    cluster: Cluster
    kubeconfig: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    liveness_port: int = 0
    webhook_port: int = field(default_factory=free_port)
    log_path: Path | None = None
    starts: int = 0

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        self.liveness_port = free_port()
        logs = self.cluster.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"operator-{os.getpid()}-{self.starts}.log"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "XRAY_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "XRAY_OPERATOR_LOG_LEVEL": "INFO",
            # The API server calls the webhook on loopback (URL mode), on a port of its own.
            "XRAY_OPERATOR_WEBHOOK_PORT": str(self.webhook_port),
            "XRAY_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
            "XRAY_OPERATOR_WEBHOOK_CERT_DIR": str(
                self.cluster.state_dir / f"webhook-{os.getpid()}"
            ),
            **self.env,
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "xray-operator"), "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited ({self.proc.returncode}):\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy after {timeout} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@contextmanager
def running_operator(cluster: Cluster, **env: str) -> Iterator[OperatorProcess]:
    install(cluster)
    kubeconfig = service_account_kubeconfig(
        cluster, cluster.state_dir / f"operator-{os.getpid()}.kubeconfig"
    )
    op = OperatorProcess(cluster, kubeconfig, env=dict(env))
    op.start()
    try:
        yield op
    finally:
        op.stop()


# ---------------------------------------------------------------------------------------------
# Audit log: which requests did a user send?

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def audit_events(
    cluster: Cluster, *, user: str = OPERATOR_USER, since: float = 0.0
) -> list[dict[str, Any]]:
    """Audit events (ResponseComplete) of `user` received after `since` (epoch seconds)."""
    events = []
    for path in sorted(cluster.audit_log.parent.glob("audit*.log")):
        with open(path, errors="replace") as fh:
            for line in fh:
                if user not in line:
                    continue
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete":
                    continue
                if event.get("user", {}).get("username") != user:
                    continue
                if _epoch(event["requestReceivedTimestamp"]) < since:
                    continue
                events.append(event)
    return events


def writes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("verb") in WRITE_VERBS]


def describe(event: dict[str, Any]) -> str:
    ref = event.get("objectRef", {})
    return (
        f"{event.get('verb')} {ref.get('resource')}/{ref.get('subresource', '')} "
        f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    )


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def wait_audit_flush() -> None:
    """The audit backend batches for up to 1 s (--audit-log-batch-max-wait)."""
    time.sleep(2.0)
