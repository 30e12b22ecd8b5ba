"""Watch the children (by the managed-by label) so drift is put right within seconds, and so
the status follows the DaemonSet as daemons come and go."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from xray_operator.constants import KIND, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from xray_operator.handlers.common import configs_from, find_config, index_from, plain, post
from xray_operator.reconcile import runtime
from xray_operator.reconcile.tracingconfig import reconcile_child

MANAGED = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def _owner_name(body: kopf.Body) -> str | None:
    for owner in body.get("metadata", {}).get("ownerReferences", []):
        if owner.get("kind") == KIND and owner.get("controller"):
            return str(owner["name"])
    return None


async def _on_child(
    api_version: str, kind: str, event: kopf.RawEvent, body: kopf.Body, index: kopf.Index[Any, Any]
) -> None:
    owner = _owner_name(body)
    namespace = body.get("metadata", {}).get("namespace")
    if owner is None or namespace is None:
        return
    tc = find_config(index, namespace, owner)
    if tc is None:
        return
    child = plain(body)
    child.setdefault("apiVersion", api_version)
    child.setdefault("kind", kind)
    deleted = event.get("type") == "DELETED"
    async with runtime.lock_for(namespace, owner):
        outcome = await asyncio.to_thread(
            reconcile_child, runtime.kube(), tc, child, deleted=deleted, configs=configs_from(index)
        )
    post(tc, outcome.events)


@kopf.on.event("apps", "v1", "daemonsets", labels=MANAGED)
async def daemonset_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    await _on_child("apps/v1", "DaemonSet", event, body, index_from(kwargs))


@kopf.on.event("v1", "configmaps", labels=MANAGED)
async def configmap_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    await _on_child("v1", "ConfigMap", event, body, index_from(kwargs))


@kopf.on.event("v1", "services", labels=MANAGED)
async def service_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    await _on_child("v1", "Service", event, body, index_from(kwargs))


@kopf.on.event("v1", "serviceaccounts", labels=MANAGED)
async def serviceaccount_event(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    await _on_child("v1", "ServiceAccount", event, body, index_from(kwargs))
