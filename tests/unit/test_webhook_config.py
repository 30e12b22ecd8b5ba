"""The MutatingWebhookConfiguration: safe when the operator is down, never on system pods."""

from __future__ import annotations

import base64

import kubernetes_validate
import pytest

from xray_operator.reconcile.webhook import contains
from xray_operator.render.webhook import WEBHOOK_ID, mutating_webhook_configuration

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_service_backed_configuration_is_valid_and_fails_open() -> None:
    config = mutating_webhook_configuration(
        CA, operator_namespace="xray-system", service="xray-operator-webhook")
    kubernetes_validate.validate(config, "1.36.0", strict=True)
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert 2 <= hook["timeoutSeconds"] <= 5
    assert hook["sideEffects"] == "None"
    assert hook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["pods"], "scope": "Namespaced"}]
    assert hook["clientConfig"]["service"] == {
        "name": "xray-operator-webhook", "namespace": "xray-system", "port": 443,
        "path": "/" + WEBHOOK_ID}
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == CA


def test_system_and_operator_namespaces_are_never_sent() -> None:
    config = mutating_webhook_configuration(CA, operator_namespace="tracing", url="https://x")
    (expression,) = config["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert expression == {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                          "values": ["kube-system", "tracing"]}


def test_url_form_for_a_webhook_outside_the_cluster() -> None:
    config = mutating_webhook_configuration(
        CA, operator_namespace="xray-system", url="https://127.0.0.1:9443/")
    kubernetes_validate.validate(config, "1.36.0", strict=True)
    assert config["webhooks"][0]["clientConfig"]["url"] == f"https://127.0.0.1:9443/{WEBHOOK_ID}"


@pytest.mark.parametrize("seconds", [0, 6, 30])
def test_long_timeouts_are_refused(seconds: int) -> None:
    with pytest.raises(ValueError, match="timeoutSeconds"):
        mutating_webhook_configuration(CA, operator_namespace="x", url="https://h",
                                       timeout_seconds=seconds)


def test_an_operator_watching_some_namespaces_only_gets_their_pods() -> None:
    config = mutating_webhook_configuration(CA, operator_namespace="xray-system",
                                            url="https://h", namespaces=["shop", "api"])
    kubernetes_validate.validate(config, "1.36.0", strict=True)
    expressions = config["webhooks"][0]["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "In",
            "values": ["api", "shop"]} in expressions


def test_server_defaults_do_not_count_as_drift_but_a_new_ca_does() -> None:
    desired = mutating_webhook_configuration(CA, operator_namespace="x", url="https://h")
    live = {**desired, "metadata": {**desired["metadata"], "uid": "u", "generation": 1}}
    live["webhooks"] = [{**desired["webhooks"][0], "matchPolicy": "Equivalent",
                         "objectSelector": desired["webhooks"][0]["objectSelector"]}]
    assert contains(live, desired)
    rotated = mutating_webhook_configuration(b"other CA", operator_namespace="x", url="https://h")
    assert not contains(live, rotated)
