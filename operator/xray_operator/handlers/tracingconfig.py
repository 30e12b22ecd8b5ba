"""TracingConfig handlers: reconcile on create, update and operator start.

Drift on the children is caught by watching them (handlers/children.py), not by a timer: kopf
puts a finalizer on every object that has a timer, and a finalizer would keep a TracingConfig
(and its namespace) from being deleted while the operator is down."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from xray_operator.constants import GROUP, PLURAL, VERSION
from xray_operator.handlers import iam
from xray_operator.handlers.common import configs_from, index_from, plain, post
from xray_operator.reconcile import runtime
from xray_operator.reconcile.kube import KubeError
from xray_operator.reconcile.tracingconfig import reconcile, refresh_default_conflict


@kopf.index(GROUP, VERSION, PLURAL)
def tracingconfigs(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {
        (body["metadata"]["namespace"], body["metadata"]["name"]): plain(
            {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "metadata": body["metadata"],
                "spec": body["spec"],
            }
        )
    }


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile_config(body: kopf.Body, reason: str, **kwargs: Any) -> None:
    tc = plain(body)
    old = plain(kwargs.get("old") or {})
    was_default = bool((old.get("spec") or {}).get("default"))
    # Children only stop being desired when the operator itself changes, i.e. at a restart
    # (resume): pruning (a LIST per child kind) is needed then, not on every edit.
    await _reconcile(tc, index_from(kwargs), prune=str(reason) == "resume", was_default=was_default)
    await iam.after_reconcile(tc, str(reason), index_from(kwargs))


async def _reconcile(
    body: dict[str, Any], index: kopf.Index[Any, Any], *, prune: bool, was_default: bool
) -> None:
    meta = body["metadata"]
    async with runtime.lock_for(meta["namespace"], meta["name"]):
        try:
            outcome = await asyncio.to_thread(
                reconcile, runtime.kube(), body, configs=configs_from(index), prune=prune
            )
        except KubeError as err:
            # API hiccups and races (409, 5xx, throttling) are retried; kopf logs each attempt.
            raise kopf.TemporaryError(f"reconcile failed: {err}", delay=5) from err
    post(body, outcome.events)
    if was_default or (body.get("spec") or {}).get("default"):
        await _refresh_other_defaults(body, index)
    if outcome.invalid:
        raise kopf.PermanentError(outcome.invalid)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def config_deleted(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    # on.event, not on.delete: a delete handler would need a finalizer on every config.
    if event.get("type") == "DELETED":
        await _refresh_other_defaults(plain(body), index_from(kwargs), deleted=True)


async def _refresh_other_defaults(
    changed: dict[str, Any], index: kopf.Index[Any, Any], *, deleted: bool = False
) -> None:
    """One config's `default` changing (or the config going away) can settle or start a clash
    for the others."""
    me = (changed["metadata"]["namespace"], changed["metadata"]["name"])
    configs = configs_from(index)
    if deleted:
        configs = [c for c in configs if (c["metadata"]["namespace"], c["metadata"]["name"]) != me]
    for other in configs:
        key = (other["metadata"]["namespace"], other["metadata"]["name"])
        if key == me or not (other.get("spec") or {}).get("default"):
            continue
        async with runtime.lock_for(*key):
            outcome = await asyncio.to_thread(
                refresh_default_conflict, runtime.kube(), other, configs
            )
        post(other, outcome.events)
