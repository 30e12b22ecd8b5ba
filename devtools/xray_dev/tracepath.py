"""The local trace path as real processes: the X-Ray daemon and the sample apps, uploading to
moto's X-Ray API (xray_dev.moto).

Used by the end-to-end trace test and by `make demo`. Everything listens on 127.0.0.1 on free
ports; nothing here reaches past loopback. Each process gets a minimal environment of its own
(not the caller's), so a developer's AWS_* or AWS_XRAY_* variables cannot leak into the path and
make it pass or fail for the wrong reason.

The daemon runs the cfg.yaml the operator rendered with exactly three substitutions, listed in
LOCAL_SUBSTITUTIONS and applied by localize_daemon_config(): the X-Ray endpoint (moto), local
mode (no EC2 instance metadata here) and loopback binds on a free port. It is started as its
pod starts it (container_args()), with only the -c path and the binds made local
(localize_daemon_args()).
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = ROOT / ".cache" / "bin"
DAEMON_SCRIPT = ROOT / "scripts" / "xray-daemon.sh"
SAMPLE_APPS = ROOT / "sample-apps"
LOOPBACK = "127.0.0.1"

DAEMON_ADDRESS_ENV = "AWS_XRAY_DAEMON_ADDRESS"
SAMPLE_SERVICES = ("service-a", "service-b")

# The only keys of the rendered cfg.yaml the local run changes (dotted paths).
LOCAL_SUBSTITUTIONS = frozenset({"Endpoint", "LocalMode", "Socket.UDPAddress", "Socket.TCPAddress"})

# moto accepts any static key pair. Giving the daemon one also keeps the AWS SDK from walking
# its credential chain to the EC2 metadata address, which is not on loopback.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

Progress = Callable[[str], None]


def no_progress(_line: str) -> None:
    return None


# --- processes ---------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process whose stdout and stderr go to one log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)


def start_process(name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        # A session of its own: a Ctrl-C in the terminal reaches pytest, which stops these
        # through stop(), instead of killing them halfway through a request.
        popen = subprocess.Popen(
            argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=str(log_dir), start_new_session=True,
        )
    return Proc(name=name, popen=popen, log_path=log_path)


def base_env(home: Path) -> dict[str, str]:
    """What every local process starts from: a PATH and a HOME of its own, nothing else."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


def free_port() -> int:
    """A port free for both TCP and UDP on loopback (the daemon uses the same number for both)."""
    for _ in range(50):
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def wait_for_tcp(proc: Proc, port: int, timeout: float = 30.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port; fail early and with
    the process's own output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before listening on "
                f"{LOOPBACK}:{port}:\n{proc.output()}"
            )
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{proc.name} not listening on {LOOPBACK}:{port} after {timeout:.0f} s:\n"
                       f"{proc.output()}")


# --- the daemon binary -------------------------------------------------------------------


def ensure_daemon(progress: Progress = no_progress) -> Path:
    """Build (or find) the pinned daemon with scripts/xray-daemon.sh; return .cache/bin/xray.

    The script prints one line per step; each goes to `progress` as it comes, so a first
    build (a minute or more on a busy machine) does not look like a hang."""
    proc = subprocess.Popen(
        ["bash", str(DAEMON_SCRIPT)], cwd=str(ROOT), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        progress(lines[-1])
    if proc.wait() != 0:
        tail = "\n".join(lines[-40:])
        raise RuntimeError(f"scripts/xray-daemon.sh failed ({proc.returncode}):\n{tail}")
    return BIN_DIR / "xray"


# --- the X-Ray API ---------------------------------------------------------------------------


@dataclass(frozen=True)
class XRayEndpoint:
    """Where the daemon uploads segments and the test reads traces: a moto server on loopback
    (xray_dev.moto.MotoServer, the `moto_server` fixture)."""

    endpoint_url: str
    region: str = "us-east-1"

    def xray(self) -> Any:
        """A boto3 X-Ray client for this endpoint (typed Any: boto3 is a dev dependency)."""
        import boto3

        return boto3.client(
            "xray", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


# --- the daemon's configuration ----------------------------------------------------------


def localize_daemon_config(rendered: Mapping[str, Any], *, endpoint: str, port: int
                           ) -> dict[str, Any]:
    """The rendered cfg.yaml (parsed) with the LOCAL_SUBSTITUTIONS applied, nothing else."""
    cfg = copy.deepcopy(dict(rendered))
    cfg["Endpoint"] = endpoint
    cfg["LocalMode"] = True
    sockets = dict(cfg.get("Socket") or {})
    sockets["UDPAddress"] = f"{LOOPBACK}:{port}"
    sockets["TCPAddress"] = f"{LOOPBACK}:{port}"
    cfg["Socket"] = sockets
    return cfg


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """Dotted paths whose value differs, including keys present on one side only."""
    a, b = _flatten(before), _flatten(after)
    return {k for k in a.keys() | b.keys() if a.get(k, object) != b.get(k, object)}


def daemon_env(home: Path) -> dict[str, str]:
    # No AWS_REGION: the daemon prefers it over the config's Region, and the config is what
    # is under test. AWS_EC2_METADATA_DISABLED is a second guard against the metadata address.
    return {**base_env(home), **FAKE_CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"}


# ENTRYPOINT of public.ecr.aws/xray/aws-xray-daemon and of docker/xray-daemon.Dockerfile: a
# pod runs the binary with these flags first, then the container's args.
IMAGE_ENTRYPOINT_FLAGS = ("-t", "0.0.0.0:2000", "-b", "0.0.0.0:2000")
_CONFIG_FLAGS = frozenset({"-c", "--config"})
_BIND_FLAGS = frozenset({"-b", "--bind", "-t", "--bind-tcp"})


def localize_daemon_args(args: Sequence[str], *, config_path: Path, port: int) -> list[str]:
    """The daemon's command line with the file path and the binds made local, nothing else:
    the value of -c becomes `config_path`, every -b/-t value 127.0.0.1:<port>."""
    out = list(args)
    for i, token in enumerate(out):
        flag, eq, _ = token.partition("=")
        if flag in _CONFIG_FLAGS | _BIND_FLAGS:
            value = str(config_path) if flag in _CONFIG_FLAGS else f"{LOOPBACK}:{port}"
            if eq:
                out[i] = f"{flag}={value}"
            elif i + 1 < len(out):
                out[i + 1] = value
    return out


def container_args(daemonset: Mapping[str, Any]) -> list[str]:
    """What the daemon container's binary receives: the image entrypoint's flags, then the
    rendered args (the DaemonSet sets no `command`, which would drop the entrypoint)."""
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    if container.get("command"):
        return [str(a) for a in container["command"][1:]] + [str(a) for a in
                                                               container.get("args") or []]
    return [*IMAGE_ENTRYPOINT_FLAGS, *(str(a) for a in container.get("args") or [])]


@dataclass
class Daemon:
    proc: Proc
    config_path: Path
    argv: list[str]
    port: int

    @property
    def address(self) -> str:
        """What an SDK gets as AWS_XRAY_DAEMON_ADDRESS (UDP and TCP on the same port)."""
        return f"{LOOPBACK}:{self.port}"


def write_config(config: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def _local_port(config: Mapping[str, Any]) -> int:
    tcp = str((config.get("Socket") or {}).get("TCPAddress", ""))
    host, _, port_text = tcp.rpartition(":")
    if host != LOOPBACK or not port_text.isdigit():
        raise ValueError(f"Socket.TCPAddress must be {LOOPBACK}:<port> here, not {tcp!r}; "
                         "use localize_daemon_config()")
    return int(port_text)


def _daemon_argv(binary: Path, config: Mapping[str, Any], work_dir: Path, name: str,
                 args: Sequence[str] | None) -> tuple[Path, list[str]]:
    path = write_config(config, work_dir / f"{name}-cfg.yaml")
    if args is None:
        args = ["-c", "cfg.yaml"]
    local = localize_daemon_args(args, config_path=path, port=_local_port(config))
    if not any(a.partition("=")[0] in _CONFIG_FLAGS for a in local):
        raise ValueError(f"the daemon's args load no config file: {list(args)}")
    return path, [str(binary), *local]


def start_daemon(binary: Path, config: Mapping[str, Any], work_dir: Path, *,
                 args: Sequence[str] | None = None, name: str = "xray",
                 timeout: float = 30.0) -> Daemon:
    """Run the daemon with `config` as its file and `args` as its command line (as the pod
    would: see container_args(); by default just `-c <file>`), made local by
    localize_daemon_args(). Returns once its TCP listener accepts connections."""
    path, argv = _daemon_argv(binary, config, work_dir, name, args)
    proc = start_process(name, argv, daemon_env(work_dir), work_dir)
    port = _local_port(config)
    try:
        wait_for_tcp(proc, port, timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return Daemon(proc=proc, config_path=path, argv=argv, port=port)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    returncode: int | None
    output: str


def check_config(binary: Path, config: Mapping[str, Any], work_dir: Path, *,
                 args: Sequence[str] | None = None, name: str = "xray-check",
                 timeout: float = 30.0) -> Verdict:
    """Start the daemon with `config` and report whether it refused it (exited) or accepted
    it (its TCP listener came up). The daemon is stopped either way.

    The daemon validates the whole file before it opens any socket, so "listening" means
    the file passed validation."""
    _, argv = _daemon_argv(binary, config, work_dir, name, args)
    proc = start_process(name, argv, daemon_env(work_dir), work_dir)
    try:
        wait_for_tcp(proc, _local_port(config), timeout=timeout)
    except RuntimeError:  # exited before listening
        return Verdict(accepted=False, returncode=proc.popen.returncode, output=proc.output())
    finally:
        proc.stop()
    return Verdict(accepted=True, returncode=None, output=proc.output())


@dataclass(frozen=True)
class OperatorOutput:
    """What the operator produced that the trace path consumes."""

    source: str  # where it came from: "render" (pure functions) or "api-server"
    tracing_config: dict[str, Any]
    daemon_configmap: dict[str, Any]  # the ConfigMap <tc-name>-daemon
    daemonset: dict[str, Any]  # the DaemonSet <tc-name>-daemon (how the daemon is started)
    deployments: dict[str, dict[str, Any]]  # sample service -> its Deployment, injected


# --- the sample apps ---------------------------------------------------------------------


def load_manifests(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def sample_manifest(service: str) -> list[dict[str, Any]]:
    return load_manifests(SAMPLE_APPS / service / "k8s.yaml")


def container_env(workload: Mapping[str, Any], container: str | None = None) -> dict[str, str]:
    """The literal env of a workload's container (the first one unless named), as a process
    in the pod would see it. Entries with valueFrom need a cluster to resolve and are left
    out; the one that matters here, the daemon address, is replaced by the caller anyway."""
    containers = workload["spec"]["template"]["spec"]["containers"]
    chosen = containers[0] if container is None else next(
        c for c in containers if c["name"] == container)
    return {e["name"]: str(e["value"]) for e in chosen.get("env") or [] if "value" in e}


def start_service(service: str, env: Mapping[str, str], port: int, log_dir: Path,
                  timeout: float = 30.0) -> Proc:
    """Run sample-apps/<service>/app.py with this virtualenv's Python, as the image would,
    with `env` (the pod's environment after the caller's local mapping) plus HOST/PORT."""
    full = {**base_env(log_dir), "PYTHONUNBUFFERED": "1", **env,
            "HOST": LOOPBACK, "PORT": str(port)}
    proc = start_process(service, [sys.executable, str(SAMPLE_APPS / service / "app.py")],
                         full, log_dir)
    try:
        wait_for_tcp(proc, port, timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


# --- requests and traces -------------------------------------------------------------------


def get_json(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    """GET a URL; returns status, headers and the decoded JSON body."""
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.loads(response.read().decode())
        return response.status, dict(response.headers.items()), body


def trace_root(header: str) -> str | None:
    """The Root=... trace id from an X-Amzn-Trace-Id header."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root":
            return value
    return None


def fetch_traces(xray: Any, trace_ids: list[str], *, since: float, timeout: float = 30.0,
                 until: Callable[[dict[str, list[dict[str, Any]]]], bool] | None = None,
                 ) -> dict[str, list[dict[str, Any]]]:
    """Poll GetTraceSummaries and BatchGetTraces until every id has its segments (or `until`
    says the segments suffice). Returns trace id -> parsed segment documents."""
    import json

    wanted = set(trace_ids)
    found: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout
    while True:
        summaries = xray.get_trace_summaries(StartTime=since - 60, EndTime=time.time() + 60)
        ids = sorted(wanted & {s["Id"] for s in summaries["TraceSummaries"]})
        if ids:
            # BatchGetTraces takes at most 5 ids per call.
            for i in range(0, len(ids), 5):
                batch = xray.batch_get_traces(TraceIds=ids[i:i + 5])
                for trace in batch["Traces"]:
                    found[trace["Id"]] = [json.loads(s["Document"]) for s in trace["Segments"]]
        done = until(found) if until else wanted <= found.keys()
        if done or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def sleep_into_next_second() -> None:
    """With no sampling rules from the X-Ray API (moto has none), the SDK samples with its
    local default rule: the first request of every second, then 5%. Sending each request
    just after a second starts gets every one traced."""
    time.sleep(1.05 - (time.time() % 1.0))


def subsegments(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every subsegment of a segment document, depth first."""
    for sub in doc.get("subsegments") or []:
        yield sub
        yield from subsegments(sub)


def describe_trace(segments: list[dict[str, Any]]) -> list[str]:
    """A trace as indented lines, parents before children, with durations: what the X-Ray
    console's timeline shows, for printing (make demo)."""
    nodes: dict[str, dict[str, Any]] = {}
    for segment in segments:
        nodes[segment["id"]] = segment
        for sub in subsegments(segment):
            nodes[sub["id"]] = sub
    children: dict[str | None, list[dict[str, Any]]] = {}
    for node in nodes.values():
        parent = node.get("parent_id")
        children.setdefault(parent if parent in nodes else None, []).append(node)
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        took = (node.get("end_time", node["start_time"]) - node["start_time"]) * 1000
        kind = "subsegment" if node.get("type") == "subsegment" else "segment"
        notes = "".join(f" {k}={v}" for k, v in (node.get("annotations") or {}).items())
        request = (node.get("http") or {}).get("request") or {}
        if request.get("url"):
            notes = f" {str(request.get('method', '')).upper()} {request['url']}{notes}"
        lines.append(f"{'  ' * depth}{node['name']} ({kind}, {took:.0f} ms){notes}")
        for child in sorted(children.get(node["id"], []), key=lambda n: n["start_time"]):
            walk(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda n: n["start_time"]):
        walk(root, 0)
    return lines


# --- the whole path ------------------------------------------------------------------------


@dataclass
class LocalTracePath:
    """The daemon and both sample apps running locally, as the operator configured them."""

    rendered_config: dict[str, Any]  # cfg.yaml as the operator rendered it
    config: dict[str, Any]  # ... with LOCAL_SUBSTITUTIONS applied
    pod_args: list[str]  # the daemon container's command line (entrypoint + rendered args)
    injected_env: dict[str, dict[str, str]]  # service -> env of its Deployment
    env: dict[str, dict[str, str]]  # service -> env it runs with here
    daemon: Daemon
    services: dict[str, Proc]
    ports: dict[str, int]

    def url(self, service: str, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.ports[service]}{path}"

    def procs(self) -> list[Proc]:
        return [self.daemon.proc, *self.services.values()]

    def logs(self, chars: int = 4000) -> str:
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.output()[-chars:]}"
                         for p in self.procs())

    def request(self) -> tuple[str, dict[str, Any]]:
        """GET / on service-a (which calls service-b) at the start of a second, so the SDK's
        local sampling traces it; returns the trace id and the answer."""
        sleep_into_next_second()
        status, headers, body = get_json(self.url("service-a"))
        if status != 200:
            raise RuntimeError(f"service-a answered {status}: {body}")
        root = trace_root(headers.get("X-Amzn-Trace-Id", ""))
        if not root:
            raise RuntimeError(f"service-a answered without a trace id: {headers}")
        return root, body


def service_urls(ports: Mapping[str, int]) -> dict[str, str]:
    """In-cluster service URLs the sample apps use, mapped to the local processes."""
    return {"SERVICE_B_URL": f"http://{LOOPBACK}:{ports['service-b']}"}


@contextmanager
def local_trace_path(output: OperatorOutput, binary: Path, endpoint: XRayEndpoint,
                     work_dir: Path, progress: Progress = no_progress
                     ) -> Iterator[LocalTracePath]:
    """Start the daemon (with the operator's cfg.yaml and command line, made local) and both
    sample apps (with the environment the operator injected, the daemon address and service
    URLs made local); stop them all on the way out."""
    rendered = yaml.safe_load(output.daemon_configmap["data"]["cfg.yaml"])
    port = free_port()
    config = localize_daemon_config(rendered, endpoint=endpoint.endpoint_url, port=port)
    args = container_args(output.daemonset)
    procs: list[Proc] = []
    try:
        progress(f"X-Ray daemon on {LOOPBACK}:{port} -> {endpoint.endpoint_url}")
        daemon = start_daemon(binary, config, work_dir, args=args)
        procs.append(daemon.proc)
        ports = {service: free_port() for service in SAMPLE_SERVICES}
        urls = service_urls(ports)
        injected = {s: container_env(output.deployments[s]) for s in SAMPLE_SERVICES}
        env: dict[str, dict[str, str]] = {}
        services: dict[str, Proc] = {}
        for service in reversed(SAMPLE_SERVICES):  # service-b first: service-a calls it
            env[service] = {**injected[service], DAEMON_ADDRESS_ENV: daemon.address}
            env[service].update({k: v for k, v in urls.items() if k in injected[service]})
            progress(f"{service} on {LOOPBACK}:{ports[service]} "
                     f"({DAEMON_ADDRESS_ENV}={daemon.address})")
            services[service] = start_service(service, env[service], ports[service], work_dir)
            procs.append(services[service])
        yield LocalTracePath(rendered, config, args, injected, env, daemon, services, ports)
    finally:
        for proc in reversed(procs):
            proc.stop()


def show_traces(output: OperatorOutput, endpoint: XRayEndpoint, work_dir: Path, *,
                requests: int = 3, progress: Progress = no_progress) -> dict[str, list[str]]:
    """The whole local trace path in one call, for `make demo`: build or find the daemon, run
    it and both sample apps as the operator configured them, send `requests` requests to
    service-a, and return each trace as read back from the X-Ray API (describe_trace lines).
    Raises if a trace does not arrive with segments of both services."""
    binary = ensure_daemon(progress)
    with local_trace_path(output, binary, endpoint, work_dir, progress) as path:
        since = time.time()
        roots = []
        for i in range(requests):
            root, body = path.request()
            roots.append(root)
            progress(f"request {i + 1}/{requests}: trace {root}, service-b slept "
                     f"{body['downstream']['delay_ms']} ms")
        progress("reading the traces back through GetTraceSummaries and BatchGetTraces")
        traces = fetch_traces(endpoint.xray(), roots, since=since, timeout=60,
                              until=lambda found: all(len(found.get(r, [])) >= 2 for r in roots))
        missing = [r for r in roots if len(traces.get(r, [])) < 2]
        if missing:
            raise RuntimeError(f"traces without both segments: {missing}\n{path.logs()}")
        return {root: describe_trace(traces[root]) for root in roots}
