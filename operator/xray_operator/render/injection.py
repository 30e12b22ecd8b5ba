"""Which workloads get AWS_XRAY_DAEMON_ADDRESS, and the exact change that gives it to them.

Pure: workload/Pod objects come in as plain dicts (what the API server returns), results go
out as dicts. reconcile/injection.py sends them; handlers/webhook.py answers admission with them.

Two ways of injecting share the decisions made here:
- deployment mode: a server-side-apply body for the workload, sent under a field manager of its
  own (constants.INJECTION_FIELD_MANAGER). That manager owns only the injected env entries and
  the `injected-by` annotation, so applying an empty body for it removes exactly those and
  leaves everything a person wrote alone.
- webhook mode: a JSON patch for a Pod at admission; the workload is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from xray_operator.constants import (
    CONTAINERS_ANNOTATION,
    DAEMON_ADDRESS_ENV,
    HOST_IP_ENV,
    INJECT_ANNOTATION,
    INJECTED_BY_ANNOTATION,
    INJECTION_FIELD_MANAGER,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)
from xray_operator.model import TracingConfig

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# Kubelet expands $(VAR) only for variables declared earlier in the same container's env, so
# in hostIP mode HOST_IP always goes before the address that uses it.
HOST_IP_ENTRY: dict[str, Any] = {
    "name": HOST_IP_ENV,
    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}},
}


@dataclass(frozen=True)
class Target:
    """What a TracingConfig asks injection to do, reduced to the fields injection needs."""

    config: str  # "<namespace>/<name>" of the TracingConfig
    default: bool
    mode: Literal["deployment", "webhook"]
    address: str  # the value of AWS_XRAY_DAEMON_ADDRESS, e.g. "$(HOST_IP):2000"
    host_ip: bool  # the address uses $(HOST_IP), which must be declared first
    created: str = ""  # metadata.creationTimestamp (RFC 3339 sorts as text): oldest default wins


def target_for(config: TracingConfig, address: str, created: str = "") -> Target:
    """The caller passes render.address_for(config): one place decides what an address is."""
    return Target(
        config=f"{config.metadata.namespace}/{config.metadata.name}",
        default=config.spec.default,
        mode=config.spec.injection.mode,
        address=address,
        host_ip=config.spec.injection.address_mode == "hostIP",
        created=created,
    )


@dataclass(frozen=True)
class Decision:
    """Which config applies to a workload or Pod, and why (for Events and logs)."""

    target: Target | None
    reason: str  # human-readable: where the opt-in came from, or why there is none
    problem: str | None = None  # set when the opt-in cannot be honoured


def _inject_value(annotations: Mapping[str, str] | None) -> str | None:
    if not annotations:
        return None
    value = annotations.get(INJECT_ANNOTATION)
    if value is None or not value.strip():
        return None
    return value.strip()


def decide(
    annotations: Mapping[str, str] | None,
    namespace_annotations: Mapping[str, str] | None,
    targets: Sequence[Target],
    namespace: str,
) -> Decision:
    """The workload's own annotation wins over its namespace's (so "false" can opt out)."""
    value = _inject_value(annotations)
    where = "workload"
    if value is None:
        value = _inject_value(namespace_annotations)
        where = f"namespace {namespace}"
    if value is None:
        return Decision(None, f"no {INJECT_ANNOTATION} annotation")
    if value.lower() == "false":
        return Decision(None, f"opted out by {INJECT_ANNOTATION}=false on the {where}")
    if value.lower() == "true":
        return _default_target(targets, where)
    if value.count("/") == 1 and all(value.split("/")):
        for target in targets:
            if target.config == value:
                return Decision(target, f"{INJECT_ANNOTATION}={value} on the {where}")
        return Decision(
            None,
            f"{INJECT_ANNOTATION}={value} on the {where}",
            problem=f"TracingConfig {value} (from {INJECT_ANNOTATION} on the {where}) "
            "does not exist",
        )
    return Decision(
        None,
        f"{INJECT_ANNOTATION}={value} on the {where}",
        problem=f"{INJECT_ANNOTATION}={value!r} on the {where} is not valid: use "
        '"true", "false" or "<namespace>/<tracingconfig name>"',
    )


def _default_target(targets: Sequence[Target], where: str) -> Decision:
    defaults = [t for t in targets if t.default]
    reason = f"{INJECT_ANNOTATION}=true on the {where}"
    if not defaults:
        return Decision(
            None, reason, problem="no TracingConfig has spec.default: true; set it on one, "
            f'or annotate with {INJECT_ANNOTATION}="<namespace>/<name>"',
        )
    # Several defaults (e.g. during a migration): the oldest wins, the same rule the
    # TracingConfig status states (reconcile/tracingconfig.default_conflict), so what a person
    # reads there is what happens here.
    oldest = min(defaults, key=lambda t: (t.created, *t.config.split("/", 1)))
    return Decision(oldest, reason)


def valid_address(address: str) -> bool:
    """`host:port`, or `tcp:host:port udp:host:port` when the ports differ: the two forms every
    X-Ray SDK parses. A value without a port crashes Node and Python apps at start-up."""
    parts = address.split(" ")
    if len(parts) == 1:
        return _host_port(parts[0])
    schemes = []
    for part in parts:
        scheme, _, rest = part.partition(":")
        if scheme not in ("tcp", "udp") or not _host_port(rest):
            return False
        schemes.append(scheme)
    return sorted(schemes) == ["tcp", "udp"]


def _host_port(text: str) -> bool:
    # No SDK parses IPv6 literals, so a host may not contain ':'.
    host, sep, port = text.rpartition(":")
    return bool(sep and host and ":" not in host and port.isdigit() and 0 < int(port) < 65536)


@dataclass(frozen=True)
class Selection:
    containers: tuple[str, ...]
    problems: tuple[str, ...] = ()


def select_containers(
    pod_spec: Mapping[str, Any], annotations: Mapping[str, str] | None
) -> Selection:
    """App containers named by the containers annotation (default all); never init containers."""
    names = [c.get("name", "") for c in pod_spec.get("containers") or []]
    wanted_text = (annotations or {}).get(CONTAINERS_ANNOTATION, "").strip()
    if not wanted_text:
        return Selection(tuple(names))
    wanted = [w.strip() for w in wanted_text.split(",") if w.strip()]
    init_names = {c.get("name", "") for c in pod_spec.get("initContainers") or []}
    problems = []
    for name in wanted:
        if name in init_names:
            problems.append(f"{CONTAINERS_ANNOTATION} names init container {name!r}; "
                            "init containers are never injected")
        elif name not in names:
            problems.append(f"{CONTAINERS_ANNOTATION} names container {name!r}, "
                            "which the pod template does not have")
    return Selection(tuple(n for n in names if n in wanted), tuple(problems))


@dataclass(frozen=True)
class ContainerPlan:
    """The env entries injection should own in one container, or why it leaves it alone."""

    container: str
    entries: tuple[dict[str, Any], ...] = ()
    skipped: str | None = None  # why nothing is injected here (hand-set address, ...)
    hand_set: bool = False


def plan_container(
    container: Mapping[str, Any], target: Target, owned: frozenset[str]
) -> ContainerPlan:
    """`owned` are the env names injection already owns here: those are ours to change."""
    name = container.get("name", "")
    env = {e.get("name"): e for e in container.get("env") or []}
    if DAEMON_ADDRESS_ENV in env and DAEMON_ADDRESS_ENV not in owned:
        value = env[DAEMON_ADDRESS_ENV].get("value", "(from valueFrom)")
        return ContainerPlan(
            name, skipped=f"container {name!r} sets {DAEMON_ADDRESS_ENV}={value} itself; "
            "left as it is", hand_set=True,
        )
    address_entry = {"name": DAEMON_ADDRESS_ENV, "value": target.address}
    if not target.host_ip:
        return ContainerPlan(name, (address_entry,))
    host_ip = env.get(HOST_IP_ENV)
    if host_ip is None or HOST_IP_ENV in owned:
        return ContainerPlan(name, (HOST_IP_ENTRY, address_entry))
    # A HOST_IP of the container's own that already means the node's IP is reused, not taken over.
    if _is_host_ip_ref(host_ip) and _declared_before(container, HOST_IP_ENV, DAEMON_ADDRESS_ENV):
        return ContainerPlan(name, (address_entry,))
    return ContainerPlan(
        name, skipped=f"container {name!r} declares its own {HOST_IP_ENV} that is not the "
        f"node's IP (status.hostIP); {DAEMON_ADDRESS_ENV}=$({HOST_IP_ENV}):... would be wrong",
    )


def _is_host_ip_ref(entry: Mapping[str, Any]) -> bool:
    ref = (entry.get("valueFrom") or {}).get("fieldRef") or {}
    return bool(ref.get("fieldPath") == "status.hostIP" and "value" not in entry)


def _declared_before(container: Mapping[str, Any], first: str, then: str) -> bool:
    names = [e.get("name") for e in container.get("env") or []]
    return then not in names or names.index(first) < names.index(then)


# --- ownership --------------------------------------------------------------------------------

def owned_env(workload: Mapping[str, Any]) -> dict[str, frozenset[str]] | None:
    """Env names per container that the injection field manager owns, from managedFields.

    managedFields is the API server's own record of who set what, so it stays right even when
    someone edits the `injected-by` annotation. None when the object carries no managedFields
    (some clients strip them); callers then fall back to the annotation.
    """
    entries = (workload.get("metadata") or {}).get("managedFields")
    if entries is None:
        return None
    owned: dict[str, set[str]] = {}
    for entry in entries:
        if entry.get("manager") != INJECTION_FIELD_MANAGER or entry.get("operation") != "Apply":
            continue
        fields = entry.get("fieldsV1") or {}
        containers = _dig(fields, "f:spec", "f:template", "f:spec", "f:containers")
        for key, sub in containers.items():
            container = _key_name(key)
            if container is None:
                continue
            for env_key in (sub.get("f:env") or {}):
                env_name = _key_name(env_key)
                if env_name is not None:
                    owned.setdefault(container, set()).add(env_name)
    return {c: frozenset(names) for c, names in owned.items()}


def manager_present(workload: Mapping[str, Any]) -> bool:
    fields = (workload.get("metadata") or {}).get("managedFields") or []
    return any(e.get("manager") == INJECTION_FIELD_MANAGER for e in fields)


def _dig(fields: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    for step in path:
        fields = fields.get(step) or {}
    return fields


def _key_name(key: str) -> str | None:
    # Associative-list keys look like k:{"name":"app"}.
    if not key.startswith("k:"):
        return None
    try:
        value = json.loads(key[2:])
    except ValueError:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


# --- the record annotation --------------------------------------------------------------------

def record_text(target: Target, plans: Iterable[ContainerPlan]) -> str:
    """The `injected-by` value: which config, which address, which env names in which container,
    and which containers were left alone because they set the address themselves.

    Compact JSON with sorted keys, so the same injection always gives the same text and an
    unchanged workload compares equal (no write). Recording the hand-set containers makes
    "found a hand-set address" a change of state, seen (and reported) once, not every pass.
    """
    plans = list(plans)
    record: dict[str, Any] = {
        "config": target.config,
        "address": target.address,
        "env": {p.container: [e["name"] for e in p.entries] for p in plans if p.entries},
    }
    hand_set = sorted(p.container for p in plans if p.hand_set)
    if hand_set:
        record["handSet"] = hand_set
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def parse_record(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _owned_from_record(workload: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    record = parse_record(annotations.get(INJECTED_BY_ANNOTATION)) or {}
    address = record.get("address")
    env = record.get("env") if isinstance(record.get("env"), dict) else {}
    containers = {
        c.get("name"): c for c in _pod_spec(workload).get("containers") or []
    }
    owned: dict[str, frozenset[str]] = {}
    for name, names in (env or {}).items():
        current = {e.get("name"): e for e in (containers.get(name) or {}).get("env") or []}
        # Without managedFields, an address that no longer matches what was recorded was
        # changed by someone else: treat it as theirs.
        kept = {n for n in names if n != DAEMON_ADDRESS_ENV
                or (current.get(n) or {}).get("value") == address}
        owned[name] = frozenset(kept)
    return owned


# --- deployment mode --------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkloadPlan:
    """What injection wants for one workload and whether that needs a write."""

    decision: Decision
    body: dict[str, Any]  # the server-side-apply body for INJECTION_FIELD_MANAGER
    needs_write: bool
    containers: tuple[ContainerPlan, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def injected(self) -> tuple[str, ...]:
        return tuple(p.container for p in self.containers if p.entries)

    @property
    def hand_set(self) -> tuple[str, ...]:
        return tuple(p.container for p in self.containers if p.hand_set)


def _pod_spec(workload: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}


def plan_workload(
    workload: Mapping[str, Any],
    namespace_annotations: Mapping[str, str] | None,
    targets: Sequence[Target],
) -> WorkloadPlan:
    """Decide and build the apply body for a Deployment, StatefulSet or DaemonSet."""
    metadata = workload.get("metadata") or {}
    namespace = metadata.get("namespace", "")
    annotations = metadata.get("annotations") or {}
    if (metadata.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
        # The daemon (and the operator) must not be pointed at themselves, even in a namespace
        # that opted in as a whole; anything injected earlier is still released.
        decision = Decision(None, "managed by xray-operator itself")
    else:
        decision = decide(annotations, namespace_annotations, targets, namespace)
    problems = [decision.problem] if decision.problem else []
    pod_spec = _pod_spec(workload)
    owned = owned_env(workload)
    if owned is None:
        owned = _owned_from_record(workload)

    plans: list[ContainerPlan] = []
    target = decision.target
    # Webhook-mode configs inject at Pod admission: the workload itself must carry nothing.
    if target is not None and target.mode == "deployment":
        if not valid_address(target.address):
            problems.append(f"TracingConfig {target.config} gives the address "
                            f"{target.address!r}, which has no valid port; nothing injected")
        else:
            selection = select_containers(pod_spec, annotations)
            problems.extend(selection.problems)
            by_name = {c.get("name"): c for c in pod_spec.get("containers") or []}
            for name in selection.containers:
                plan = plan_container(by_name[name], target, owned.get(name, frozenset()))
                plans.append(plan)
                if plan.skipped:
                    problems.append(plan.skipped)

    injecting = [p for p in plans if p.entries]
    record: str | None = None
    if target is not None and (injecting or any(p.hand_set for p in plans)):
        record = record_text(target, plans)
    body = apply_body(workload, injecting, record)
    return WorkloadPlan(
        decision=decision,
        body=body,
        needs_write=_needs_write(workload, injecting, record, owned),
        containers=tuple(plans),
        problems=tuple(problems),
    )


def apply_body(
    workload: Mapping[str, Any], plans: Sequence[ContainerPlan], record: str | None
) -> dict[str, Any]:
    """The partial object injection applies; fields it omits are released (and removed if
    nobody else owns them). The API server merges it into the live object, so identity plus
    the owned fields is enough: no selector, no image."""
    metadata = workload.get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": workload.get("apiVersion", "apps/v1"),
        "kind": workload.get("kind", "Deployment"),
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
    }
    if record is None:
        return body
    body["metadata"]["annotations"] = {INJECTED_BY_ANNOTATION: record}
    if not plans:
        return body
    body["spec"] = {"template": {"spec": {"containers": [
        {"name": p.container, "env": [dict(e) for e in p.entries]} for p in plans
    ]}}}
    return body


def _needs_write(
    workload: Mapping[str, Any],
    injecting: Sequence[ContainerPlan],
    record: str | None,
    owned: Mapping[str, frozenset[str]],
) -> bool:
    annotations = (workload.get("metadata") or {}).get("annotations") or {}
    if annotations.get(INJECTED_BY_ANNOTATION) != record:
        # Without a record and without our manager there is nothing to take away.
        return record is not None or manager_present(workload)
    containers = {c.get("name"): c for c in _pod_spec(workload).get("containers") or []}
    wanted = {p.container: {e["name"] for e in p.entries} for p in injecting}
    for plan in injecting:
        live = {e.get("name"): e for e in containers.get(plan.container, {}).get("env") or []}
        if any(live.get(e["name"]) != e for e in plan.entries):
            return True
    # Entries still owned that are no longer wanted must be released.
    return any(names - wanted.get(c, set()) for c, names in owned.items())


# --- webhook mode -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PodPlan:
    decision: Decision
    patch: list[dict[str, Any]]  # RFC 6902 operations; empty: admit unchanged
    containers: tuple[ContainerPlan, ...] = ()
    problems: tuple[str, ...] = ()


def plan_pod(
    pod: Mapping[str, Any],
    namespace_annotations: Mapping[str, str] | None,
    targets: Sequence[Target],
) -> PodPlan:
    """JSON patch adding the env at admission. Pods inherit their template's annotations, so
    the workload-level opt-in and opt-out work here too."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    decision = decide(annotations, namespace_annotations, targets, metadata.get("namespace", ""))
    problems = [decision.problem] if decision.problem else []
    target = decision.target
    # Deployment-mode configs already put the env in the template; a reinvoked webhook finds
    # its own annotation: both must leave the Pod as it is.
    if target is None or target.mode != "webhook" or INJECTED_BY_ANNOTATION in annotations:
        return PodPlan(decision, [], problems=tuple(problems))
    if not valid_address(target.address):
        problems.append(f"TracingConfig {target.config} gives the address "
                        f"{target.address!r}, which has no valid port; nothing injected")
        return PodPlan(decision, [], problems=tuple(problems))

    spec = pod.get("spec") or {}
    selection = select_containers(spec, annotations)
    problems.extend(selection.problems)
    ops: list[dict[str, Any]] = []
    plans: list[ContainerPlan] = []
    for index, container in enumerate(spec.get("containers") or []):
        if container.get("name") not in selection.containers:
            continue
        plan = plan_container(container, target, frozenset())
        plans.append(plan)
        if plan.skipped:
            problems.append(plan.skipped)
            continue
        path = f"/spec/containers/{index}/env"
        if "env" not in container:
            ops.append({"op": "add", "path": path, "value": [dict(e) for e in plan.entries]})
        else:
            ops.extend({"op": "add", "path": f"{path}/-", "value": dict(e)} for e in plan.entries)
    injecting = [p for p in plans if p.entries]
    if injecting:
        record = record_text(target, plans)
        if "annotations" not in metadata:
            ops.append({"op": "add", "path": "/metadata/annotations",
                        "value": {INJECTED_BY_ANNOTATION: record}})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations/"
                        + _pointer(INJECTED_BY_ANNOTATION), "value": record})
    return PodPlan(decision, ops, tuple(plans), tuple(problems))


def _pointer(token: str) -> str:
    """RFC 6901 escaping: annotation keys contain '/'."""
    return token.replace("~", "~0").replace("/", "~1")
