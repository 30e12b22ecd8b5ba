"""Helpers shared by the handlers: the TracingConfig index and posting Events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from xray_operator.reconcile.tracingconfig import Event

Obj = dict[str, Any]


def plain(value: Any) -> Any:
    """kopf hands out read-only views; the reconcile layer wants plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def index_from(kwargs: dict[str, Any]) -> kopf.Index[Any, Any]:
    """The TracingConfig index kopf passes by the name of its handler (`tracingconfigs`)."""
    index: kopf.Index[Any, Any] = kwargs["tracingconfigs"]
    return index


def configs_from(index: kopf.Index[Any, Any]) -> list[Obj]:
    return [obj for key in index for obj in index[key]]


def find_config(index: kopf.Index[Any, Any], namespace: str, name: str) -> Obj | None:
    for obj in index.get((namespace, name), []):
        return dict(obj)
    return None


def post(body: Obj, events: list[Event]) -> None:
    for event in events:
        kopf.event(
            cast(kopf.Body, body),
            type=event.type,
            reason=event.reason,
            message=event.message[:1000],
        )
