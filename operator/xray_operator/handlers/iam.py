"""IAM checks: right after a spec change or operator start, then every iam.recheckInterval,
with backoff after a checker error. One background loop for all configs instead of a kopf
timer per config, because kopf timers put a finalizer on every object."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from xray_operator.handlers.common import configs_from, post
from xray_operator.reconcile import runtime
from xray_operator.reconcile.iam import checker_retry_delay
from xray_operator.reconcile.iam_flow import (
    check_enabled,
    interval_seconds,
    run_iam_check,
    seconds_since_check,
)
from xray_operator.reconcile.tracingconfig import Event

TICK_SECONDS = 10.0
_due: dict[tuple[str, str], float] = {}
_attempts: dict[tuple[str, str], int] = {}
_loop: asyncio.Task[None] | None = None


def _key(tc: dict[str, Any]) -> tuple[str, str]:
    return tc["metadata"]["namespace"], tc["metadata"]["name"]


async def check_now(tc: dict[str, Any]) -> None:
    key = _key(tc)
    async with runtime.lock_for(*key):
        outcome = await asyncio.to_thread(run_iam_check, runtime.kube(), tc)
    post(tc, [Event(t, r, m) for t, r, m in outcome.events])
    if outcome.checker_error:
        _attempts[key] = _attempts.get(key, 0) + 1
        _due[key] = time.monotonic() + checker_retry_delay(_attempts[key] - 1)
    else:
        _attempts.pop(key, None)
        _due[key] = time.monotonic() + interval_seconds(tc)


async def after_reconcile(tc: dict[str, Any], reason: str, index: kopf.Index[Any, Any]) -> None:
    """Called by the TracingConfig handler once the children are applied."""
    _ensure_loop(index)
    if not check_enabled(tc):
        _due.pop(_key(tc), None)  # the reconcile's own status write said CheckDisabled
        return
    status = tc.get("status") or {}
    age = seconds_since_check(tc)
    unchanged = status.get("observedGeneration") == tc["metadata"].get("generation")
    if reason == "resume" and unchanged and age is not None and age < interval_seconds(tc):
        # A restart is not a reason to ask AWS again: pick up the schedule where it was.
        _due[_key(tc)] = time.monotonic() + interval_seconds(tc) - age
        return
    await check_now(tc)


def _ensure_loop(index: kopf.Index[Any, Any]) -> None:
    global _loop
    if _loop is None or _loop.done():
        _loop = asyncio.create_task(_recheck_loop(index), name="iam-recheck")


async def _recheck_loop(index: kopf.Index[Any, Any]) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now = time.monotonic()
        live = {_key(tc): tc for tc in configs_from(index)}
        for key in list(_due):
            if key not in live:
                _due.pop(key, None)
                _attempts.pop(key, None)
        for key, tc in live.items():
            if key in _due and now >= _due[key]:
                try:
                    await check_now(tc)
                except Exception as err:
                    post(tc, [Event("Warning", "IAMCheckFailed", str(err)[:500])])
                    _due[key] = now + checker_retry_delay(_attempts.get(key, 0))


@kopf.on.cleanup()
async def stop_loop(**_: Any) -> None:
    if _loop is not None:
        _loop.cancel()
