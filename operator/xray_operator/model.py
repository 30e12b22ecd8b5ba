"""Pydantic models of the TracingConfig custom resource (spec and status).

The CRD in crds/tracingconfig.yaml is the master copy of the API; these models mirror its
defaults, ranges, enums and patterns so that `xray-operator render` refuses what the API server
would refuse, with the same field paths. tests/unit/test_model_crd_sync.py keeps the two in step.

Python attribute names are snake_case; the wire format is camelCase (aliases). Both spellings
are accepted on input, and model_dump() writes camelCase.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from xray_operator.constants import API_VERSION, KIND

# Pinned rather than `latest`: a new daemon release must be a deliberate change, and the tag
# is part of the pod template (changing it rolls every daemon).
DEFAULT_IMAGE = "public.ecr.aws/xray/aws-xray-daemon:3.3.15"

# Patterns are written in the common subset of Python `re` and Go RE2 (what the API server
# uses for OpenAPI `pattern`), so the model and the CRD can carry the same strings.
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"
ROLE_ARN_PATTERN = r"^(arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512})?$"
URL_PATTERN = r"^(https?://[^\s/]+(/[^\s]*)?)?$"
IMAGE_PATTERN = r"^[^\s]+$"
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
# Children are named `<name>-daemon`; a Service name must be a DNS-1035 label (<= 63 chars).
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 63 - len("-daemon")

# Kubernetes resource.Quantity, as in the upstream OpenAPI schema.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

MIN_RECHECK_SECONDS = 60

LogLevel = Literal["dev", "debug", "info", "warn", "error", "prod"]
InjectionMode = Literal["deployment", "webhook"]
AddressMode = Literal["service", "hostIP"]
Identity = Literal["auto", "nodeRole", "irsa"]
TriState = Literal["True", "False", "Unknown"]

Port = Annotated[int, Field(ge=1, le=65535)]

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """Seconds in a Go-style duration such as `1h30m` (the subset the CRD pattern admits)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 30m, 1h or 1h30m")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


class _Spec(BaseModel):
    """Spec models: unknown fields are errors, as they are for the API server (strict)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        # The API server refuses `udpPort: "2000"`; so does the model (no lax coercion).
        strict=True,
    )


class _Status(BaseModel):
    """Status models: tolerant of fields they do not know (kopf and future versions add some)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
    )


# Bounded like every string and map in the CRD, so one object cannot be made arbitrarily large.
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)] | int


class Resources(_Spec):
    """The subset of a container's ResourceRequirements the daemon needs."""

    limits: dict[str, Quantity] | None = Field(
        default=None, max_length=16, description="Resource limits."
    )
    requests: dict[str, Quantity] | None = Field(
        default=None, max_length=16, description="Resource requests."
    )


class Toleration(_Spec):
    """A core/v1 Toleration; unset fields are left out of the rendered pod."""

    key: str | None = Field(default=None, max_length=317, description="Taint key.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Match.")
    value: str | None = Field(default=None, max_length=63, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] | None = Field(
        default=None, description="Taint effect; empty matches every effect."
    )
    toleration_seconds: int | None = Field(default=None, description="NoExecute grace.")


class DaemonSpec(_Spec):
    image: str = Field(
        default=DEFAULT_IMAGE, min_length=1, max_length=512, pattern=IMAGE_PATTERN,
        description="X-Ray daemon image; its entrypoint must be the daemon binary.",
    )
    buffer_size_mb: int = Field(
        default=24, ge=3, le=4096, alias="bufferSizeMB",
        description="Memory for segment buffers in MB (daemon -m; minimum 3).",
    )
    concurrency: int = Field(
        default=8, ge=1, le=256, description="Concurrent uploads to X-Ray."
    )
    log_level: LogLevel = Field(default="prod", description="Daemon log level.")
    udp_port: Port = Field(default=2000, description="UDP port for segments.")
    tcp_port: Port = Field(default=2000, description="TCP port for the sampling proxy.")
    host_port: bool = Field(
        default=False, description="Also expose both ports on the node's IP (hostPort)."
    )
    role_arn: str = Field(
        default="", max_length=2048, pattern=ROLE_ARN_PATTERN,
        description="Role the daemon assumes to upload (daemon -r); empty: none.",
    )
    local_mode: bool = Field(default=False, description="Skip the EC2 metadata check.")
    endpoint: str = Field(
        default="", max_length=2048, pattern=URL_PATTERN,
        description="Custom X-Ray endpoint URL; empty: the region's endpoint.",
    )
    proxy_address: str = Field(
        default="", max_length=2048, pattern=URL_PATTERN,
        description="HTTP(S) proxy for uploads; empty: none.",
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(),
        description="Container resources; empty: derived from bufferSizeMB.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Extra node selector for the daemon pods."
    )
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(operator="Exists")],
        description="Tolerations of the daemon pods; default tolerates every taint.",
    )
    priority_class_name: str = Field(
        default="", max_length=253, description="PriorityClass of the daemon pods."
    )


class ServiceAccountSpec(_Spec):
    role_arn: str = Field(
        default="", max_length=2048, pattern=ROLE_ARN_PATTERN,
        description="IRSA role (eks.amazonaws.com/role-arn on the daemon's ServiceAccount).",
    )


class InjectionSpec(_Spec):
    mode: InjectionMode = Field(default="deployment", description="How workloads get the address.")
    address_mode: AddressMode = Field(default="service", description="Which address they get.")


class IamSpec(_Spec):
    check: bool = Field(default=True, description="Check the daemon identity's permissions.")
    identity: Identity = Field(default="auto", description="Which identity to check.")
    recheck_interval: str = Field(
        default="1h", max_length=32, pattern=DURATION_PATTERN,
        description="How often to re-run the check (at least 1m).",
    )

    @field_validator("recheck_interval")
    @classmethod
    def _recheck_not_too_often(cls, value: str) -> str:
        # Each check calls IAM/EC2; more often than a minute only buys throttling.
        if duration_seconds(value) < MIN_RECHECK_SECONDS:
            raise ValueError(f"{value!r} is too short: use 1m or more")
        return value

    @property
    def recheck_seconds(self) -> float:
        return duration_seconds(self.recheck_interval)


class TracingConfigSpec(_Spec):
    default: bool = Field(
        default=False, description="The config used by workloads annotated inject=true."
    )
    region: str = Field(
        max_length=32, pattern=REGION_PATTERN, description="AWS region traces are sent to."
    )
    daemon: DaemonSpec = Field(default_factory=DaemonSpec)
    service_account: ServiceAccountSpec = Field(default_factory=ServiceAccountSpec)
    injection: InjectionSpec = Field(default_factory=InjectionSpec)
    iam: IamSpec = Field(default_factory=IamSpec)

    # Cross-field rules; the CRD has the same ones as CEL (x-kubernetes-validations on spec),
    # with the same messages so the CLI and the API server tell a person the same thing.
    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        for message in cross_field_errors(self):
            raise ValueError(message)
        return self


# Rules the API server cannot check (a CEL quantity comparison on an int-or-string field is
# over the CRD's cost budget): `render` refuses them and the operator reports InvalidSpec.
MODEL_ONLY_MESSAGES = {
    "memory": "daemon.resources.limits.memory must be more than bufferSizeMB: the daemon "
    "allocates its buffers at start-up and would be OOM-killed; raise the limit or lower "
    "bufferSizeMB",
}

CEL_MESSAGES = {
    "hostIP": "injection.addressMode hostIP requires daemon.hostPort: true "
    "(or use addressMode service)",
    "irsa": "iam.identity irsa requires serviceAccount.roleArn (the IRSA role to check)",
    "nodeRole": "iam.identity nodeRole checks the node role, but with serviceAccount.roleArn "
    "set the daemon runs as that IRSA role: use identity irsa or auto",
}


_BINARY_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
                   "": Decimal(1), "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
                   "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18")}


def quantity_value(quantity: str | int) -> Decimal:
    """A Kubernetes resource quantity (`128Mi`, `1G`, `500m`, `1e3`) as a number."""
    text = str(quantity)
    if not re.fullmatch(QUANTITY_PATTERN, text):
        raise ValueError(f"{text!r} is not a quantity")
    number = re.match(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", text)
    assert number is not None  # the pattern above guarantees a leading number
    suffix = text[number.end():]
    value = Decimal(number.group(0))
    if suffix in _BINARY_SUFFIX:
        return value * _BINARY_SUFFIX[suffix]
    if suffix in _DECIMAL_SUFFIX:
        return value * _DECIMAL_SUFFIX[suffix]
    return value * Decimal(10) ** int(suffix[1:])  # e/E exponent


def cross_field_errors(spec: TracingConfigSpec) -> list[str]:
    errors = []
    memory = (spec.daemon.resources.limits or {}).get("memory")
    if memory is not None and quantity_value(memory) <= spec.daemon.buffer_size_mb * 2**20:
        errors.append(MODEL_ONLY_MESSAGES["memory"])
    if spec.injection.address_mode == "hostIP" and not spec.daemon.host_port:
        errors.append(CEL_MESSAGES["hostIP"])
    if spec.iam.identity == "irsa" and not spec.service_account.role_arn:
        errors.append(CEL_MESSAGES["irsa"])
    if spec.iam.identity == "nodeRole" and spec.service_account.role_arn:
        errors.append(CEL_MESSAGES["nodeRole"])
    return errors


def _plain(value: Any) -> Any:
    """Plain dicts and lists from any Mapping/Sequence (kopf hands out Body/Spec views), since
    strict validation accepts only real dicts where a model is expected."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


class ObjectMeta(BaseModel):
    """The parts of metadata the operator uses; everything else a real object has is ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              serialize_by_alias=True, extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)
    namespace: str = Field(default="default", min_length=1, max_length=63)
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class DaemonSetStatus(_Status):
    desired: int = 0
    ready: int = 0


class IdentityStatus(_Status):
    kind: Literal["nodeRole", "irsa", "daemonRole"]
    role_arn: str = ""
    nodes: list[str] = Field(default_factory=list)
    allowed: TriState = "Unknown"
    missing_actions: list[str] = Field(default_factory=list)
    over_privileged: bool = False
    message: str = ""


class IamStatus(_Status):
    checked_at: str = ""
    allowed: TriState = "Unknown"
    identities: list[IdentityStatus] = Field(default_factory=list)


class Condition(_Status):
    type: str
    status: TriState
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None


class TracingConfigStatus(_Status):
    observed_generation: int | None = None
    daemon_address: str | None = None
    daemon_set: DaemonSetStatus | None = None
    injected_workloads: int | None = None
    iam: IamStatus | None = None
    conditions: list[Condition] = Field(default_factory=list)


class TracingConfig(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="ignore",
                              frozen=True)

    metadata: ObjectMeta
    spec: TracingConfigSpec
    status: TracingConfigStatus | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> TracingConfig:
        """Parse a whole object as the API server or a YAML file has it (camelCase keys).

        apiVersion/kind are checked so a wrong file fails with a clear message instead of a
        list of missing fields.
        """
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version is not None and api_version != API_VERSION:
            raise ValueError(f"apiVersion is {api_version!r}; expected {API_VERSION!r}")
        if kind is not None and kind != KIND:
            raise ValueError(f"kind is {kind!r}; expected {KIND!r}")
        plain = _plain(obj)
        status = plain.pop("status", None)
        config = cls.model_validate(
            {k: v for k, v in plain.items() if k not in ("apiVersion", "kind")}
        )
        if status is None:
            return config
        # Status is the operator's own output, not user input: a shape this version does
        # not understand (an older or newer operator wrote it) must not make a good spec
        # look invalid, so it reads as "no status yet" instead.
        try:
            parsed = TracingConfigStatus.model_validate(status)
        except ValidationError:
            return config
        return config.model_copy(update={"status": parsed})

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

