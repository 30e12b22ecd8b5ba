"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (3 fake EKS-shaped nodes whose pods become Running).

    python -m xray_dev.cluster up      # start, or reuse a healthy running cluster
    python -m xray_dev.cluster down    # stop exactly the processes `up` started, remove state
    python -m xray_dev.cluster status

State lives in .cache/cluster/ (certificates, kubeconfigs, etcd data, logs/, state.json with the
PIDs and ports). The binaries come from .cache/bin/ (`make k8s-bins`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xray_dev import pki

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = ROOT / ".cache" / "bin"
# XRAY_DEV_CLUSTER_DIR lets several clusters run side by side (each on its own free ports).
STATE_DIR = Path(os.environ.get("XRAY_DEV_CLUSTER_DIR", str(ROOT / ".cache" / "cluster")))
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
NODE_COUNT = 3
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
INSTANCE_IDS = ("i-0123456789abcdef0", "i-0123456789abcdef1", "i-0123456789abcdef2")

# Metadata-level audit of every request, so tests and benchmarks can count exactly which
# requests a given user (the operator's ServiceAccount) sent.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """Handle on a running local cluster."""

    state_dir: Path
    server: str
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "logs" / "audit.log"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN_DIR / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def api_client(self) -> Any:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        return client.ApiClient(configuration)

    def to_state(self) -> dict[str, Any]:
        return {"server": self.server, "ports": self.ports, "pids": self.pids}

    @classmethod
    def load(cls, state_dir: Path = STATE_DIR) -> Cluster | None:
        path = state_dir / "state.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(state_dir, data["server"], data.get("ports", {}), data.get("pids", {}))

    def save(self) -> None:
        (self.state_dir / "state.json").write_text(json.dumps(self.to_state(), indent=2))


# ---------------------------------------------------------------------------------------------
# Health


def _ssl_context(cluster: Cluster) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
    pki_dir = cluster.state_dir / "pki"
    ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    return ctx


def _get(cluster: Cluster, path: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            cluster.server + path, context=_ssl_context(cluster), timeout=timeout
        ) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except (OSError, ssl.SSLError):
        return 0, b""


def _alive(pid: int, name: str) -> bool:
    # A process still in exec() of a binary that is not in the page cache yet reads an empty
    # cmdline for a moment: wait for it rather than call a starting etcd dead (and orphan it).
    deadline = time.monotonic() + 5
    while True:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            # A zombie (stopped, not yet reaped by its parent) has an empty cmdline too.
            zombie = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, IndexError):
            return False
        if cmdline or zombie or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return os.path.basename(cmdline.decode(errors="replace")) == name


def ready_nodes(cluster: Cluster) -> int:
    status, body = _get(cluster, "/api/v1/nodes")
    if status != 200:
        return 0
    count = 0
    for node in json.loads(body).get("items", []):
        for cond in node.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                count += 1
    return count


def healthy(cluster: Cluster | None) -> bool:
    if cluster is None:
        return False
    if not all(_alive(cluster.pids.get(n, -1), n) for n in COMPONENTS):
        return False
    status, _ = _get(cluster, "/readyz")
    return status == 200 and ready_nodes(cluster) >= NODE_COUNT


# ---------------------------------------------------------------------------------------------
# Set-up


def _kubeconfig(server: str, ca: bytes, pair: pki.KeyPair, user: str) -> dict[str, Any]:
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pair.cert_pem),
                    "client-key-data": b64(pair.key_pem),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }


def _write_pki(state_dir: Path, server: str) -> None:
    pki_dir = state_dir / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca()
    pki.write(ca, pki_dir / "ca.crt", pki_dir / "ca.key")
    serving = pki.issue(
        ca,
        "kube-apiserver",
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", SERVICE_IP),
        server=True,
    )
    pki.write(serving, pki_dir / "apiserver.crt", pki_dir / "apiserver.key")
    pki.write(pki.service_account_keys(), pki_dir / "sa.pub", pki_dir / "sa.key")
    users = {
        "admin": ("kubernetes-admin", "system:masters"),
        "controller-manager": ("system:kube-controller-manager", None),
        "scheduler": ("system:kube-scheduler", None),
    }
    for short, (cn, org) in users.items():
        pair = pki.issue(ca, cn, organization=org, client=True)
        pki.write(pair, pki_dir / f"{short}.crt", pki_dir / f"{short}.key")
        name = "kubeconfig" if short == "admin" else f"{short}.kubeconfig"
        path = state_dir / name
        path.write_text(yaml.safe_dump(_kubeconfig(server, ca.cert_pem, pair, cn)))
        path.chmod(0o600)


def _commands(cluster: Cluster) -> dict[str, list[str]]:
    d, p = cluster.state_dir, cluster.ports
    pki_dir = d / "pki"
    etcd_url = f"http://127.0.0.1:{p['etcd']}"
    return {
        "etcd": [
            "--name=local",
            f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-cluster=local=http://127.0.0.1:{p['etcd-peer']}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['kube-apiserver']}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={pki_dir / 'ca.crt'}",
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
            "DefaultTolerationSeconds,DefaultStorageClass,PodSecurity,Priority,"
            "MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,"
            "ResourceQuota,NodeRestriction",
            "--allow-privileged=true",
            # The `kubernetes` Service would point at 127.0.0.1, which EndpointSlices refuse.
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={d / 'audit-policy.yaml'}",
            f"--audit-log-path={cluster.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
            "--profiling=false",
        ],
        "kube-controller-manager": [
            f"--kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['kube-controller-manager']}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki_dir / 'sa.key'}",
            f"--root-ca-file={pki_dir / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki_dir / 'ca.crt'}",
            f"--cluster-signing-key-file={pki_dir / 'ca.key'}",
            "--controllers=*,-node-ipam-controller,-cloud-node-lifecycle-controller",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ],
        "kube-scheduler": [
            f"--kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['kube-scheduler']}",
            "--leader-elect=false",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ],
        "kwok": [
            f"--kubeconfig={d / 'kubeconfig'}",
            f"--config={BIN_DIR / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            f"--server-address=127.0.0.1:{p['kwok']}",
            "--node-lease-duration-seconds=40",
        ],
    }


def _start(cluster: Cluster, name: str, args: list[str]) -> None:
    logs = cluster.state_dir / "logs"
    with open(logs / f"{name}.log", "ab") as out:
        # A new session: the processes outlive `make cluster-up` and are stopped by PID.
        proc = subprocess.Popen(
            [str(BIN_DIR / name), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cluster.state_dir,
        )
    cluster.pids[name] = proc.pid
    cluster.save()


def _wait(what: str, check: Any, timeout: float, cluster: Cluster, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if name and not _alive(cluster.pids[name], name):
            tail = (cluster.state_dir / "logs" / f"{name}.log").read_text(errors="replace")
            raise RuntimeError(f"{name} exited while waiting for {what}:\n{tail[-3000:]}")
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def node_objects(instance_ids: tuple[str, ...] = INSTANCE_IDS) -> list[dict[str, Any]]:
    nodes = []
    for i in range(NODE_COUNT):
        name = f"kwok-node-{i}"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/region": "us-east-1",
                        "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                        "node.kubernetes.io/instance-type": "m5.large",
                        "eks.amazonaws.com/nodegroup": "workers",
                        "type": "kwok",
                    },
                },
                "spec": {"providerID": f"aws:///{ZONES[i % len(ZONES)]}/{instance_ids[i]}"},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                    "nodeInfo": {
                        "architecture": "amd64",
                        "operatingSystem": "linux",
                        "kubeletVersion": "fake",
                        "kubeProxyVersion": "fake",
                    },
                },
            }
        )
    return nodes


def up(state_dir: Path = STATE_DIR, *,
       instance_ids: tuple[str, ...] = INSTANCE_IDS) -> tuple[Cluster, bool]:
    """Start the cluster or reuse a healthy one. Returns (cluster, started_here).

    `instance_ids` become the nodes' EC2 providerIDs (one per node, zones a, b, c)."""
    existing = Cluster.load(state_dir)
    if healthy(existing):
        assert existing is not None
        log(f"reusing the healthy cluster at {existing.server}")
        return existing, False
    if existing is not None:
        log("found a stale or unhealthy cluster; stopping it first")
        down(state_dir)
    missing = [
        n for n in (*COMPONENTS, "kubectl", "kwok-stages.yaml") if not (BIN_DIR / n).exists()
    ]
    if missing:
        raise RuntimeError(
            f"missing binaries in {BIN_DIR}: {', '.join(missing)}; run make k8s-bins"
        )

    started = time.monotonic()
    for sub in ("logs", "etcd"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    ports = {n: free_port() for n in (*COMPONENTS, "etcd-peer")}
    cluster = Cluster(state_dir, f"https://127.0.0.1:{ports['kube-apiserver']}", ports)
    cluster.save()
    log("generating certificates and kubeconfigs")
    _write_pki(state_dir, cluster.server)
    (state_dir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
    commands = _commands(cluster)

    try:
        log(f"starting etcd on 127.0.0.1:{ports['etcd']}")
        _start(cluster, "etcd", commands["etcd"])
        _wait("etcd", lambda: _port_open(ports["etcd"]), 30, cluster, "etcd")
        log(f"starting kube-apiserver on {cluster.server}")
        _start(cluster, "kube-apiserver", commands["kube-apiserver"])
        _wait(
            "kube-apiserver /readyz",
            lambda: _get(cluster, "/readyz")[0] == 200,
            90,
            cluster,
            "kube-apiserver",
        )
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            log(f"starting {name}")
            _start(cluster, name, commands[name])
        log(f"creating {NODE_COUNT} kwok nodes")
        manifest = "\n---\n".join(yaml.safe_dump(n) for n in node_objects(instance_ids))
        cluster.kubectl(
            "apply", "--server-side", "--field-manager=local-cluster", "-f", "-", input=manifest
        )
        # Distinct node IPs (kwok would give every node --node-ip), so status.hostIP differs
        # per node as on EKS. These addresses are labels only; nothing connects to them.
        for i in range(NODE_COUNT):
            patch = {
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": f"10.0.1.{10 + i}"},
                        {"type": "Hostname", "address": f"kwok-node-{i}"},
                    ]
                }
            }
            cluster.kubectl(
                "patch",
                "node",
                f"kwok-node-{i}",
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(patch),
            )
        _wait(
            f"{NODE_COUNT} Ready nodes",
            lambda: ready_nodes(cluster) >= NODE_COUNT,
            90,
            cluster,
            "kwok",
        )
        _wait(
            "the default ServiceAccount",
            lambda: _get(cluster, "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            60,
            cluster,
            "kube-controller-manager",
        )
    except BaseException:
        log(f"start-up failed; logs are in {state_dir / 'logs'}")
        down(state_dir)
        raise
    log(f"cluster ready in {time.monotonic() - started:.1f} s; kubeconfig: {cluster.kubeconfig}")
    return cluster, True


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _gone(pid: int) -> bool:
    """Exited and reaped, or a zombie (its resources are released; init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def _stop(name: str, pid: int, grace: float) -> None:
    log(f"stopping {name} (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(pid):
        log(f"{name} did not stop in {grace:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def down(state_dir: Path = STATE_DIR) -> None:
    cluster = Cluster.load(state_dir)
    if cluster is not None:
        # Reverse start order, one at a time (the API server shuts down cleanly only while
        # etcd still answers); only PIDs we recorded, and only if they still run our binary.
        for name in reversed(COMPONENTS):
            pid = cluster.pids.get(name)
            if pid and _alive(pid, name):
                _stop(name, pid, grace=10)
    if state_dir.exists():
        shutil.rmtree(state_dir)
        log(f"removed {state_dir}")


@contextlib.contextmanager
def running(state_dir: Path = STATE_DIR) -> Iterator[Cluster]:
    """Context manager: the cluster for the duration; stopped only if started here."""
    cluster, started = up(state_dir)
    try:
        yield cluster
    finally:
        if started:
            down(state_dir)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    if command == "up":
        up()
        return 0
    if command == "down":
        down()
        return 0
    if command == "status":
        cluster = Cluster.load()
        ok = healthy(cluster)
        print("healthy" if ok else "not running")
        return 0 if ok else 1
    print(f"usage: python -m xray_dev.cluster up|down|status (got {command!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
