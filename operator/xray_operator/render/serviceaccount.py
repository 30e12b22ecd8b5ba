"""The daemon's ServiceAccount; with serviceAccount.roleArn it carries the IRSA annotation."""

from __future__ import annotations

from typing import Any

from xray_operator.model import TracingConfig
from xray_operator.render.common import IRSA_ANNOTATION, metadata


def build_serviceaccount(config: TracingConfig) -> dict[str, Any]:
    role_arn = config.spec.service_account.role_arn
    extra = {"annotations": {IRSA_ANNOTATION: role_arn}} if role_arn else {}
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(config, **extra),
        # The daemon never calls the Kubernetes API; IRSA uses its own projected token.
        "automountServiceAccountToken": False,
    }
