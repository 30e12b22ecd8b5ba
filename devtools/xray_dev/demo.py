"""`make demo`: the operator doing its job on a local cluster, step by step.

    python -m xray_dev.demo up     # everything below; leaves cluster, moto and operator running
    python -m xray_dev.demo down   # stops what `up` started

1. a local AWS endpoint (moto) with a node role that has AWSXRayDaemonWriteAccess and three EC2
   instances in it;
2. the local control plane, whose three nodes are those instances (EC2 providerIDs);
3. the operator, installed from manifests/install.yaml and running as its own ServiceAccount;
4. the sample TracingConfig and the two sample apps (annotated, no daemon address in them);
5. what happened: status, daemons, the injected address, the IAM check (`check-iam`);
6. traces: the real X-Ray daemon runs the config the operator rendered, the sample apps run with
   the environment it injected, and their traces are read back from the X-Ray API.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from xray_dev import cluster as local_cluster
from xray_dev import operator_output, tracepath
from xray_dev.moto import MotoServer, seed_node_group
from xray_dev.operator_proc import install, service_account_kubeconfig

ROOT = local_cluster.ROOT
DEMO_DIR = ROOT / ".cache" / "demo"
CLUSTER_DIR = DEMO_DIR / "cluster"
STATE = DEMO_DIR / "state.json"
STEPS = 7
_started = time.monotonic()


def step(number: int, text: str) -> None:
    print(f"\n==> [{number}/{STEPS}] {text}  (+{time.monotonic() - _started:.0f} s)", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


def show(text: str) -> None:
    for line in text.rstrip().splitlines():
        print(f"    | {line}", flush=True)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def down() -> int:
    if STATE.exists():
        state = json.loads(STATE.read_text())
        for name in ("operator", "moto"):
            pid = state.get(name)
            if pid:
                print(f"stopping {name} (pid {pid})", flush=True)
                _kill(int(pid))
        STATE.unlink()
    local_cluster.down(CLUSTER_DIR)
    return 0


def up() -> int:
    down()  # a demo always starts from scratch
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    logs = DEMO_DIR / "logs"
    logs.mkdir(exist_ok=True)
    state: dict[str, Any] = {}

    step(1, "local AWS endpoint (moto) with a node role and three EC2 instances")
    moto = MotoServer.start(detach=True, log_path=logs / "moto.log")
    state["moto"] = moto.process.pid
    STATE.write_text(json.dumps(state))
    os.environ.update(moto.env())
    nodes = seed_node_group("k8s-nodes")
    note(
        f"moto at {moto.endpoint}; role k8s-nodes (AWSXRayDaemonWriteAccess) on "
        + ", ".join(i for i, _ in nodes)
    )

    step(2, "local Kubernetes control plane whose 3 nodes are those instances")
    cluster, _ = local_cluster.up(CLUSTER_DIR, instance_ids=tuple(i for i, _ in nodes))
    show(
        cluster.kubectl(
            "get",
            "nodes",
            "-o",
            "custom-columns=NODE:.metadata.name,"
            "ZONE:.metadata.labels.topology\\.kubernetes\\.io/zone,"
            "PROVIDER-ID:.spec.providerID,"
            'READY:.status.conditions[?(@.type=="Ready")].status',
        ).stdout
    )

    step(3, "the operator: manifests/install.yaml, running as its own ServiceAccount")
    install(cluster)
    kubeconfig = service_account_kubeconfig(cluster, DEMO_DIR / "operator.kubeconfig")
    from xray_dev.operator_proc import OperatorProcess

    operator = OperatorProcess(cluster, kubeconfig, env=moto.env())
    operator.start()
    state["operator"] = operator.proc.pid if operator.proc else None
    STATE.write_text(json.dumps(state))
    note(f"operator pid {state['operator']}, log {operator.log_path}")

    step(4, "apply manifests/samples/tracingconfig.yaml and the two sample apps")
    output = operator_output.from_cluster(cluster, progress=note)
    tc = _wait_ready(cluster)
    show(cluster.kubectl("get", "tc", "-A").stdout)
    show(cluster.kubectl("get", "daemonset,pods", "-n", "xray-system", "-o", "wide").stdout)

    step(5, "what the operator injected into the sample Deployments")
    for service, deployment in output.deployments.items():
        env = tracepath.container_env(deployment)
        record = deployment["metadata"]["annotations"].get("xray-operator.dev/injected-by")
        note(f"{service}: AWS_XRAY_DAEMON_ADDRESS={env.get('AWS_XRAY_DAEMON_ADDRESS')}")
        note(f"{service}: xray-operator.dev/injected-by={record}")
    note(f"status.injectedWorkloads={tc['status'].get('injectedWorkloads')}")

    step(6, "the IAM check: status.iam and `xray-operator check-iam`")
    _wait_iam(cluster)
    check = subprocess.run(
        [str(ROOT / ".venv/bin/xray-operator"), "check-iam", "--config", "xray-system/xray"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    show(check.stdout + check.stderr)
    note(f"check-iam exit code {check.returncode} (0: every identity may send traces)")

    step(7, "traces through the real X-Ray daemon with the operator's config")
    traces = tracepath.show_traces(
        output, tracepath.XRayEndpoint(moto.endpoint), DEMO_DIR / "tracepath", progress=note
    )
    for root, lines in traces.items():
        note(f"trace {root}:")
        show("\n".join(lines))

    print(
        f"\nDone in {time.monotonic() - _started:.0f} s. The cluster, moto and the operator "
        "are still running:",
        flush=True,
    )
    print(f"  export KUBECONFIG={cluster.kubeconfig}", flush=True)
    print(f"  {ROOT / '.cache/bin/kubectl'} get tc -A", flush=True)
    print(f"  operator log: {operator.log_path}", flush=True)
    print("Stop everything with: make demo-down", flush=True)
    return 0


def _wait_ready(cluster: local_cluster.Cluster, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        tc = json.loads(
            cluster.kubectl("get", "tc", "xray", "-n", "xray-system", "-o", "json").stdout
        )
        status = tc.get("status") or {}
        ready = {c["type"]: c for c in status.get("conditions", [])}.get("Ready", {})
        ds = status.get("daemonSet") or {}
        if (
            ready.get("status") == "True"
            and ds.get("ready") == ds.get("desired")
            and ds.get("desired")
        ):
            note(f"TracingConfig xray-system/xray Ready: {ready.get('message')}")
            return dict(tc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"TracingConfig not Ready: {json.dumps(status, indent=1)}")
        time.sleep(1)


def _wait_iam(cluster: local_cluster.Cluster, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        tc = json.loads(
            cluster.kubectl("get", "tc", "xray", "-n", "xray-system", "-o", "json").stdout
        )
        iam = (tc.get("status") or {}).get("iam")
        if iam:
            cond = {c["type"]: c for c in tc["status"]["conditions"]}["IAMPermissionsVerified"]
            note(f"IAMPermissionsVerified={cond['status']} ({cond['reason']}): {cond['message']}")
            return
        if time.monotonic() > deadline:
            raise TimeoutError("no status.iam")
        time.sleep(1)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "up"
    if command == "up":
        return up()
    if command == "down":
        return down()
    print("usage: python -m xray_dev.demo up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
