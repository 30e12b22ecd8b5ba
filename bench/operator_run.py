"""The operator under test: `xray-operator run` as its own ServiceAccount (manifests/install.yaml
RBAC), clusterwide, with the admission webhook served on loopback where the local API server
reaches it. Like devtools' operator_proc, plus the webhook settings and handler check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.common import log
from xray_dev.cluster import Cluster, free_port
from xray_dev.operator_proc import install, service_account_kubeconfig

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
OPERATOR_NAMESPACE = "xray-system"

_CHECK = ("import sys, xray_operator.handlers as h; "
          "print(','.join(m for m in ('injection', 'webhook') "
          "if 'xray_operator.handlers.' + m not in sys.modules))")
# Used only when `xray-operator run` does not register the injection and webhook handlers yet.
_WRAPPER = ("import sys, xray_operator.handlers.injection, xray_operator.handlers.webhook; "
            "from xray_operator.cli import main; sys.exit(main(['run']))")


def missing_handlers() -> list[str]:
    """Handler modules `xray-operator run` does not load (it imports xray_operator.handlers)."""
    out = subprocess.run([str(VENV_BIN / "python"), "-c", _CHECK], capture_output=True,
                         text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


class Operator:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None
        self.webhook_port = free_port()
        self.liveness_port = free_port()
        self.log_path = cluster.state_dir / "logs" / f"bench-operator-{os.getpid()}.log"
        self.cert_dir = cluster.state_dir / "bench-webhook-certs"
        self.command: list[str] = []
        self.note = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90) -> None:
        install(self.cluster)
        kubeconfig = service_account_kubeconfig(
            self.cluster, self.cluster.state_dir / f"bench-operator-{os.getpid()}.kubeconfig")
        missing = missing_handlers()
        if missing:
            self.command = [str(VENV_BIN / "python"), "-c", _WRAPPER]
            self.note = (f"`xray-operator run` did not load handlers.{'/'.join(missing)}; "
                         "the bench imported them before calling the same CLI entry point")
            log(f"  NOTE: {self.note}")
        else:
            self.command = [str(VENV_BIN / "xray-operator"), "run"]
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "XRAY_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "XRAY_OPERATOR_LOG_LEVEL": "INFO",
            "XRAY_OPERATOR_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
            "XRAY_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
            "XRAY_OPERATOR_WEBHOOK_PORT": str(self.webhook_port),
            "XRAY_OPERATOR_WEBHOOK_CERT_DIR": str(self.cert_dir),
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited ({self.proc.returncode}):\n{self.tail()}")
            if self.healthy():
                log(f"  operator running (pid {self.proc.pid}), log {self.log_path}")
                return
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy after {timeout} s:\n{self.tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def webhook_listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.webhook_port)) == 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        if self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        log(f"  operator stopped (exit {self.proc.returncode})")

