"""The MutatingWebhookConfiguration that sends Pod creations to the operator (webhook mode).

Pure: the caller passes the CA bundle and where the webhook is served.

What the API server can and cannot filter for us:
- Annotations cannot be selected (selectors see labels only), and opt-in is an annotation on
  the Pod's template or on its Namespace. The namespace annotation is not visible to
  matchConditions either (they see the object and the request, not the namespace). So the
  webhook is called for Pods in every namespace but the excluded ones, and the handler makes
  the final decision with render.injection.plan_pod, which also knows the namespace.
- What matchConditions (CEL on the Pod itself) can rule out is ruled out before any call:
  Pods that opted out with inject=false, and Pods that already carry injected-by.
- kube-system and the operator's own namespace are never sent (namespaceSelector), nor are
  pods the operator manages itself (daemon pods, by label), so an operator outage cannot get
  in the way of the control plane or of the operator's own restart.
- failurePolicy Ignore with a short timeout: if the operator is down, Pods are created
  without the variable instead of not at all.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from xray_operator.constants import (
    INJECT_ANNOTATION,
    INJECTED_BY_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)

CONFIGURATION_NAME = "xray-operator-injection"


def configuration_name(operator_namespace: str) -> str:
    """Cluster-scoped, so named after the operator's namespace: two installs do not collide."""
    return f"{CONFIGURATION_NAME}-{operator_namespace}"

WEBHOOK_NAME = "pods.inject.xray-operator.dev"
# kopf serves each handler under /<handler id>; handlers/webhook.py registers this id.
WEBHOOK_ID = "inject-pods"
DEFAULT_TIMEOUT_SECONDS = 3
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server

_ANNOTATIONS = "object.metadata.annotations"
MATCH_CONDITIONS: list[dict[str, str]] = [
    {
        "name": "not-opted-out",
        "expression": f"!has({_ANNOTATIONS}) || !('{INJECT_ANNOTATION}' in {_ANNOTATIONS})"
        f" || {_ANNOTATIONS}['{INJECT_ANNOTATION}'] != 'false'",
    },
    {
        "name": "not-yet-injected",
        "expression": f"!has({_ANNOTATIONS}) || !('{INJECTED_BY_ANNOTATION}' in {_ANNOTATIONS})",
    },
]


def client_config(
    ca_bundle: bytes,
    *,
    service: str | None = None,
    namespace: str | None = None,
    port: int = 443,
    url: str | None = None,
) -> dict[str, Any]:
    """Either a Service in the cluster, or a URL (the local control plane reaches 127.0.0.1)."""
    config: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle).decode("ascii")}
    if url is not None:
        config["url"] = url.rstrip("/") + "/" + WEBHOOK_ID
    elif service is not None and namespace is not None:
        config["service"] = {
            "name": service, "namespace": namespace, "port": port, "path": "/" + WEBHOOK_ID,
        }
    else:
        raise ValueError("the webhook needs a url, or a service and its namespace")
    return config


def mutating_webhook_configuration(
    ca_bundle: bytes,
    *,
    operator_namespace: str,
    service: str | None = None,
    port: int = 443,
    url: str | None = None,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    name: str = CONFIGURATION_NAME,
    namespaces: Sequence[str] = (),
) -> dict[str, Any]:
    """`namespaces`: when the operator watches only some namespaces, only their Pods are sent."""
    if not 1 <= timeout_seconds <= 5:
        # Every Pod creation waits this long when the operator hangs; keep it short.
        raise ValueError(f"timeoutSeconds {timeout_seconds} is out of 1..5")
    excluded = sorted({"kube-system", operator_namespace})
    selector = [{"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": excluded}]
    if namespaces:
        selector.append({"key": NAMESPACE_NAME_LABEL, "operator": "In",
                         "values": sorted(set(namespaces))})
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "admissionReviewVersions": ["v1"],
            "clientConfig": client_config(
                ca_bundle, service=service, namespace=operator_namespace, port=port, url=url,
            ),
            "rules": [{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }],
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": timeout_seconds,
            # A second call would find injected-by and change nothing, so it is not asked for.
            "reinvocationPolicy": "Never",
            "namespaceSelector": {"matchExpressions": selector},
            "objectSelector": {"matchExpressions": [
                {"key": MANAGED_BY_LABEL, "operator": "NotIn", "values": [MANAGED_BY_VALUE]},
            ]},
            "matchConditions": [dict(c) for c in MATCH_CONDITIONS],
        }],
    }
