"""`xray-operator check-iam [--config NS/NAME] [--output table|json]`.

Runs the same IAM preflight the operator runs, from a shell, against the current kubeconfig
(KUBECONFIG, ~/.kube/config or in-cluster) and AWS credentials (the standard boto3 chain,
AWS_ENDPOINT_URL included).

Exit codes, so scripts and CI can gate on it:
  0  every identity the daemon runs as may call the five X-Ray actions
  1  at least one identity may not (missing permissions, explicit Deny, trust policy, ...)
  2  usage error, cluster unreachable, or no such TracingConfig
  3  nothing denied, but something could not be verified: a condition the checker cannot
     evaluate, a checker error (throttling, the checker denied its own reads, no
     credentials), or no node with an EC2 providerID. "Unknown" is not "allowed", so it is
     not 0, and not "denied" either, so it is not 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from kubernetes import client, config

from xray_operator.constants import API_VERSION, KIND
from xray_operator.policy import XRAY_ACTIONS, IamReport
from xray_operator.policy.report import role_name
from xray_operator.reconcile.iam import (
    check_identities,
    inputs_from_tracingconfig,
    nodes_for_daemon,
)
from xray_operator.reconcile.kube import Kube, KubeError

EXIT_ALLOWED = 0
EXIT_DENIED = 1
EXIT_ERROR = 2
EXIT_UNKNOWN = 3


class UsageError(Exception):
    pass


def kube_from_environment() -> Kube:
    # KUBECONFIG is read at call time (the kubernetes package reads it once, at import).
    configuration = client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG")
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=kubeconfig or None, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return Kube(client.ApiClient(configuration))


def find_config(kube: Kube, ref: str | None) -> dict[str, Any]:
    if ref:
        namespace, sep, name = ref.partition("/")
        if not sep or not namespace or not name:
            raise UsageError(f"--config must be NAMESPACE/NAME, not {ref!r}")
        found = kube.get(API_VERSION, KIND, namespace, name)
        if found is None:
            raise UsageError(f"TracingConfig {ref} not found")
        return found
    configs = kube.list(API_VERSION, KIND)
    defaults = [c for c in configs if (c.get("spec") or {}).get("default")]
    if len(defaults) == 1:
        return defaults[0]
    if not defaults and len(configs) == 1:
        return configs[0]
    names = ", ".join(_ref(c) for c in (defaults or configs)) or "none"
    raise UsageError(
        f"cannot pick a TracingConfig ({len(defaults)} with spec.default true; found: {names}); "
        "pass --config NAMESPACE/NAME"
    )


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def exit_code(report: IamReport) -> int:
    return {"True": EXIT_ALLOWED, "False": EXIT_DENIED}.get(report.allowed, EXIT_UNKNOWN)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _missing(actions: tuple[str, ...]) -> str:
    if len(actions) == len(XRAY_ACTIONS):
        return "all 5"
    return ", ".join(a.removeprefix("xray:") for a in actions) or "-"


def render_table(ref: str, report: IamReport, notes: list[str]) -> str:
    lines = [
        f"TracingConfig {ref}   region {report.region}   checked {report.to_status()['checkedAt']}"
    ]
    lines += notes
    lines.append("")
    rows = [["KIND", "ROLE", "NODES", "ALLOWED", "MISSING", "OVER-PRIVILEGED"]]
    for i in report.identities:
        nodes = (
            ", ".join(i.nodes)
            if len(i.nodes) <= 3
            else f"{', '.join(i.nodes[:3])} +{len(i.nodes) - 3}"
        )
        rows.append(
            [
                i.kind,
                role_name(i.role_arn) or "-",
                nodes or "-",
                i.allowed,
                _missing(i.missing_actions),
                "yes" if i.over_privileged else "no",
            ]
        )
    if report.identities:
        lines += _table(rows)
    else:
        lines.append("(no identity to check)")
    if report.unchecked_nodes:
        lines.append(f"not checkable (no EC2 providerID): {', '.join(report.unchecked_nodes)}")
    lines.append("")
    for i in report.identities:
        lines.append(f"{i.subject}: {i.message}")
        if i.fix and (i.allowed != "True" or i.over_privileged):
            lines.append(f"  fix: {i.fix}")
    cond = report.condition()
    lines.append("")
    lines.append(f"{cond['type']}={cond['status']} ({cond['reason']})")
    return "\n".join(lines)


def render_json(ref: str, report: IamReport, notes: list[str]) -> str:
    document = {
        "tracingConfig": ref,
        "region": report.region,
        "iam": report.to_status(),
        "uncheckedNodes": list(report.unchecked_nodes),
        "condition": report.condition(),
        "events": [
            {"type": e.type, "reason": e.reason, "message": e.message} for e in report.events()
        ],
        "notes": notes,
    }
    return json.dumps(document, indent=2)


def check_iam(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        kube = kube_from_environment()
        config = find_config(kube, getattr(args, "config", None))
        inputs = inputs_from_tracingconfig(config)
        nodes = nodes_for_daemon(kube.list("v1", "Node"), inputs.node_selector)
    except UsageError as exc:
        err.write(f"check-iam: {exc}\n")
        return EXIT_ERROR
    except KubeError as exc:
        err.write(f"check-iam: Kubernetes API error: {exc}\n")
        return EXIT_ERROR
    except Exception as exc:  # kubeconfig missing or unreadable, API server unreachable
        err.write(f"check-iam: cannot reach the cluster: {exc}\n")
        return EXIT_ERROR
    if not inputs.region:
        err.write(f"check-iam: TracingConfig {_ref(config)} has no spec.region\n")
        return EXIT_ERROR
    notes = []
    if not inputs.check:
        notes.append("note: spec.iam.check is false, so the operator itself skips this check")
    report = check_identities(
        region=inputs.region,
        irsa_role_arn=inputs.irsa_role_arn,
        identity_mode=inputs.identity_mode,
        service_account=inputs.service_account,
        nodes=nodes,
        daemon_role_arn=inputs.daemon_role_arn,
    )
    render = render_json if getattr(args, "output", "table") == "json" else render_table
    out.write(render(_ref(config), report, notes) + "\n")
    return exit_code(report)
