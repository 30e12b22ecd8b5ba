"""Process-wide state of a running operator: one API client and one lock per TracingConfig.

The lock serialises everything that writes a TracingConfig's children or status, so two
watch events for the same config never interleave their read-compare-write steps.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from xray_operator.reconcile.kube import Kube

_locks: dict[tuple[str, str], asyncio.Lock] = {}


@lru_cache(maxsize=1)
def kube() -> Kube:
    return Kube.from_environment()


def lock_for(namespace: str, name: str) -> asyncio.Lock:
    return _locks.setdefault((namespace, name), asyncio.Lock())
