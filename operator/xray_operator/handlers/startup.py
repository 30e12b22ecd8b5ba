"""Operator-wide kopf settings, from the settings object."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from xray_operator.settings import Settings


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    ours = Settings()
    # Events are API writes: post only warnings and errors from logs; our own transitions are
    # posted explicitly.
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "xray-operator.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="xray-operator.dev"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="xray-operator.dev", key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    # Fewer, shorter retries of failed API calls: an Event for a namespace that is being
    # deleted is refused forever, and each retry is a write request.
    settings.networking.error_backoffs = [1, 2, 5]
    settings.execution.max_workers = 8
    if ours.peering:
        settings.peering.name = ours.peering
        settings.peering.standalone = False
    else:
        settings.peering.standalone = True
