"""Webhook mode: add the env to Pods at admission, so workloads themselves stay untouched.

kopf serves the endpoint (kopf.WebhookServer) with certificates from reconcile/webhook_tls.py;
we register the MutatingWebhookConfiguration ourselves (kopf's managed one cannot express
matchConditions or the namespace exclusions) and only while a TracingConfig uses webhook mode.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import jsonpatch
import kopf

from xray_operator.constants import GROUP, PLURAL, VERSION
from xray_operator.handlers.common import plain
from xray_operator.handlers.injection import namespace_annotations_from, targets_from
from xray_operator.reconcile import runtime
from xray_operator.reconcile.webhook import sync_configuration
from xray_operator.reconcile.webhook_tls import ensure, service_hosts
from xray_operator.render.injection import plan_pod
from xray_operator.render.webhook import (
    WEBHOOK_ID,
    configuration_name,
    mutating_webhook_configuration,
)
from xray_operator.settings import Settings

# Where the serving certificate lives; an emptyDir in the operator's pod (the root filesystem
# is read-only there).
CERT_DIR_ENV = "XRAY_OPERATOR_WEBHOOK_CERT_DIR"

_state: dict[str, Any] = {"ca": None, "wanted": None}


def cert_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "xray-operator-webhook"
    return Path(Settings().webhook_cert_dir or default)


@kopf.on.startup()
def configure_admission(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    ours = Settings()
    if not ours.webhook_port:
        return
    hosts = service_hosts(ours.webhook_service, ours.operator_namespace)
    if ours.webhook_host and ours.webhook_host not in hosts:
        hosts.append(ours.webhook_host)
    try:
        certs = ensure(cert_dir(), hosts)
    except OSError as err:
        # Deployment mode does not need the webhook: run without it rather than not at all.
        logger.error(f"webhook mode unavailable: cannot write certificates to {cert_dir()} "
                     f"({err}); mount a writable volume there or set {CERT_DIR_ENV}")
        return
    settings.admission.server = kopf.WebhookServer(
        addr="0.0.0.0",
        port=ours.webhook_port,
        host=ours.webhook_host or None,
        certfile=str(certs.certfile),
        pkeyfile=str(certs.keyfile),
        cadata=certs.ca_pem,
    )
    settings.admission.managed = None  # ours: see render/webhook.py
    _state["ca"] = certs.ca_pem
    # One access-log line per admitted Pod is I/O on the admission path (budget: 5 ms at p99)
    # that says nothing the API server's own audit log does not.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@kopf.on.mutate("", "v1", "pods", id=WEBHOOK_ID, operations=["CREATE"],
                ignore_failures=True, side_effects=False)
def inject_pod(
    body: kopf.Body, patch: kopf.Patch, warnings: list[str], logger: kopf.Logger, **kwargs: Any
) -> None:
    pod = plain(body)
    namespace = pod["metadata"].get("namespace", "")
    plan = plan_pod(
        pod,
        namespace_annotations_from(kwargs["injection_namespaces"], namespace),
        targets_from(kwargs["injection_targets"]),
    )
    # The Pod has no name yet (generateName), so there is nothing to post an Event on; the
    # person creating it sees admission warnings, and the operator's log has the rest.
    for problem in plan.problems:
        warnings.append(f"xray-operator: {problem}")
        logger.info(problem)
    if plan.patch:
        ops = plan.patch
        # kopf turns the changed body into the JSON patch of the admission response.
        patch.fns.append(lambda raw: jsonpatch.apply_patch(raw, ops, in_place=True))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def sync_webhook_configuration(**kwargs: Any) -> None:
    """Register the webhook while some TracingConfig asks for webhook mode, remove it after."""
    ca = _state["ca"]
    if ca is None:
        return
    wanted = any(t.mode == "webhook" for t in targets_from(kwargs["injection_targets"]))
    if wanted == _state["wanted"]:
        return
    ours = Settings()
    name = configuration_name(ours.operator_namespace)
    desired = None
    if wanted:
        if ours.webhook_host:
            url = f"https://{ours.webhook_host}:{ours.webhook_port}"
            desired = mutating_webhook_configuration(
                ca, operator_namespace=ours.operator_namespace, url=url, name=name,
                namespaces=ours.namespaces)
        else:
            desired = mutating_webhook_configuration(
                ca, operator_namespace=ours.operator_namespace, service=ours.webhook_service,
                name=name, namespaces=ours.namespaces)
    await asyncio.to_thread(sync_configuration, runtime.kube(), desired, name)
    _state["wanted"] = wanted
