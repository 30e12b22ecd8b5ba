"""`xray-operator run`: kopf with our handlers and settings."""

from __future__ import annotations

import argparse
import logging

import kopf

from xray_operator.settings import Settings


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    namespaces = args.namespace or settings.namespaces
    level = logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), 20)
    log_format = {
        "plain": kopf.LogFormat.PLAIN,
        "full": kopf.LogFormat.FULL,
        "json": kopf.LogFormat.JSON,
    }.get(settings.log_format, kopf.LogFormat.PLAIN)
    kopf.configure(
        debug=level <= logging.DEBUG, verbose=level <= logging.DEBUG, log_format=log_format
    )
    logging.getLogger().setLevel(level)
    import xray_operator.handlers  # noqa: F401  (registers the handlers)

    liveness = (
        f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    )
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces or (),
        standalone=not settings.peering,
        peering_name=settings.peering or None,
        liveness_endpoint=liveness,
    )
    return 0
