"""A small, dict-based Kubernetes client on top of the official `kubernetes` package.

The generated typed API is slow to (de)serialize and awkward for server-side apply, so this
module talks to the API paths directly and returns plain dicts. Every call is blocking: callers
in async code run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from xray_operator.constants import API_VERSION, KIND, PLURAL

Obj = dict[str, Any]

# (apiVersion, kind) -> (plural, namespaced). Only the kinds this operator touches.
RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Service"): ("services", True),
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): (
        "mutatingwebhookconfigurations",
        False,
    ),
    (API_VERSION, KIND): (PLURAL, True),
}


class KubeError(Exception):
    """An API error with the server's status code and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def load_api_client() -> client.ApiClient:
    """In-cluster configuration when running in a pod, else KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def collection_path(api_version: str, kind: str, namespace: str | None = None) -> str:
    plural, namespaced = RESOURCES[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced and namespace:
        return f"{prefix}/namespaces/{quote(namespace)}/{plural}"
    return f"{prefix}/{plural}"


def object_path(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    return f"{collection_path(api_version, kind, namespace)}/{quote(name)}"


@dataclass
class Kube:
    api: client.ApiClient

    @classmethod
    def from_environment(cls) -> Kube:
        return cls(load_api_client())

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if query:
            path = f"{path}?{urlencode(query)}"
        _, url, headers, _, _ = self.api.param_serialize(
            method=method, resource_path=path, header_params=headers, auth_settings=["BearerToken"]
        )
        # The REST layer serializes dict bodies itself (JSON, and JSON-as-YAML for apply);
        # a pre-serialized string would be encoded twice for application/json.
        try:
            response = self.api.call_api(method, url, header_params=headers, body=body)
            raw = response.read()  # type: ignore[no-untyped-call]
            # call_api returns error responses instead of raising them.
            if response.status >= 400:
                raise ApiException(
                    status=response.status, reason=response.reason, http_resp=response
                )
        except ApiException as err:
            message, reason = str(err.body or err.reason), str(err.reason)
            try:
                status = json.loads(err.body or "")
                message, reason = status.get("message", message), status.get("reason", reason)
            except (TypeError, ValueError):
                pass
            raise KubeError(int(err.status or 0), reason, message) from None
        return json.loads(raw) if raw else {}

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.request("GET", object_path(api_version, kind, namespace, name))
        except KubeError as err:
            if err.not_found:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[Obj]:
        query = {"labelSelector": label_selector} if label_selector else None
        result = self.request("GET", collection_path(api_version, kind, namespace), query=query)
        items: list[Obj] = result.get("items", [])
        for item in items:  # list items carry neither apiVersion nor kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(
        self,
        obj: Obj,
        *,
        field_manager: str,
        force: bool = True,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Server-side apply `obj` (a full or partial object with apiVersion, kind, name)."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        if subresource:
            path = f"{path}/{subresource}"
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request(
            "PATCH", path, body=obj, query=query, content_type="application/apply-patch+yaml"
        )

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Obj,
        *,
        subresource: str | None = None,
    ) -> Obj:
        path = object_path(api_version, kind, namespace, name)
        if subresource:
            path = f"{path}/{subresource}"
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
    ) -> bool:
        """Delete; with `uid`, only that incarnation of the object. False if already gone."""
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", object_path(api_version, kind, namespace, name), body=body)
        except KubeError as err:
            if err.not_found or err.conflict:
                return False
            raise
        return True
