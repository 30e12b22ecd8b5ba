"""TracingConfig handlers: reconcile on create, update and operator start; a slow safety timer."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from xray_operator.constants import GROUP, PLURAL, VERSION
from xray_operator.handlers.common import configs_from, index_from, plain, post
from xray_operator.reconcile import runtime
from xray_operator.reconcile.tracingconfig import reconcile
from xray_operator.settings import Settings

SETTINGS = Settings()


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
async def reconcile_config(body: kopf.Body, **kwargs: Any) -> None:
    await _reconcile(plain(body), index_from(kwargs))


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=SETTINGS.drift_check_seconds,
    initial_delay=SETTINGS.drift_check_seconds,
)
async def drift_safety_net(body: kopf.Body, **kwargs: Any) -> None:
    await _reconcile(plain(body), index_from(kwargs))


async def _reconcile(body: dict[str, Any], index: kopf.Index[Any, Any]) -> None:
    meta = body["metadata"]
    async with runtime.lock_for(meta["namespace"], meta["name"]):
        outcome = await asyncio.to_thread(
            reconcile, runtime.kube(), body, configs=configs_from(index)
        )
    post(body, outcome.events)
    if outcome.invalid:
        raise kopf.PermanentError(outcome.invalid)
