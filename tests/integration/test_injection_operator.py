"""The injection handlers run by kopf, as the operator runs them, against the real API server.

Webhook mode: the API server calls the operator's webhook over TLS (our own CA), Pods get the
address at admission, their Deployment stays untouched, and with the operator stopped Pods are
still created (failurePolicy Ignore). Deployment mode: the operator injects annotated workloads
with one write each and follows opt-in changes and TracingConfig deletion.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xray_dev.audit import Audit
from xray_dev.cluster import Cluster
from xray_dev.fixtures_cluster import wait_for
from xray_operator.constants import API_VERSION, INJECT_ANNOTATION, INJECTED_BY_ANNOTATION, KIND
from xray_operator.reconcile.kube import Kube
from xray_operator.render.webhook import WEBHOOK_ID, configuration_name

pytestmark = pytest.mark.integration

PAUSE = "registry.k8s.io/pause:3.10"
ADDR = "AWS_XRAY_DAEMON_ADDRESS"
Obj = dict[str, Any]
KOPF = Path(sys.executable).parent / "kopf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    """The injection and webhook handlers run by kopf in a process of their own, watching one
    namespace, serving the webhook on loopback where the local API server can reach it."""

    def __init__(self, cluster: Cluster, namespace: str, operator_ns: str, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "operator.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "XRAY_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
            "XRAY_OPERATOR_WEBHOOK_PORT": str(self.port),
            "XRAY_OPERATOR_OPERATOR_NAMESPACE": operator_ns,
            "XRAY_OPERATOR_NAMESPACES": json.dumps([namespace]),
            "XRAY_OPERATOR_WEBHOOK_CERT_DIR": str(workdir / "certs"),
            "PYTHONUNBUFFERED": "1",  # the log shows each admission call as it happens
        }
        self.args = [str(KOPF), "run", "--standalone", "--namespace", namespace,
                     "-m", "xray_operator.handlers.injection",
                     "-m", "xray_operator.handlers.webhook"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def admission_calls(self) -> int:
        return self.log.read_text().count(f"Webhook '{WEBHOOK_ID}'")

    def listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster.api_client())


@pytest.fixture
def operator_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"xray-op-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found",
                    check=False)


@pytest.fixture
def operator(cluster: Cluster, namespace: str, operator_namespace: str, kube: Kube,
             tmp_path: Path) -> Iterator[Operator]:
    handle = Operator(cluster, namespace, operator_namespace, tmp_path)
    yield handle
    handle.stop()
    # The operator removes it only when no TracingConfig wants it; a killed one cannot.
    kube.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
                configuration_name(operator_namespace))
    print(handle.log.read_text()[-3000:])


def deployment(namespace: str, name: str, replicas: int = 1) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "app", "image": PAUSE, "env": [{"name": "PORT", "value": "8080"}]}]}},
        },
    }


def pods(kube: Kube, namespace: str, app: str) -> list[Obj]:
    return kube.list("v1", "Pod", namespace, label_selector=f"app={app}")


def env(pod: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", [])}


def test_pods_get_the_address_at_admission_and_creation_survives_an_outage(
    kube: Kube, cluster: Cluster, namespace: str, operator_namespace: str, operator: Operator,
    crd: Any,
) -> None:
    kube.request("POST", f"/apis/{API_VERSION}/namespaces/{namespace}/tracingconfigs", body={
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "hooked", "namespace": namespace},
        "spec": {"region": "us-east-1", "injection": {"mode": "webhook"}},
    })
    kube.merge_patch("v1", "Namespace", None, namespace, {"metadata": {"annotations": {
        INJECT_ANNOTATION: f"{namespace}/hooked"}}})
    operator.start()
    name = configuration_name(operator_namespace)
    config = wait_for(lambda: kube.get("admissionregistration.k8s.io/v1",
                                       "MutatingWebhookConfiguration", None, name),
                      timeout=60, what="the MutatingWebhookConfiguration")
    hook = config["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] <= 5
    assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
    wait_for(operator.listening, timeout=30, what="the webhook server")

    created = kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments",
                           body=deployment(namespace, "web"))
    expected = f"hooked-daemon.{namespace}.svc.cluster.local:2000"
    pod = wait_for(lambda: [p for p in pods(kube, namespace, "web")], timeout=60,
                   what="a pod of web")[0]
    assert env(pod) == {"PORT": "8080", ADDR: expected}
    assert json.loads(pod["metadata"]["annotations"][INJECTED_BY_ANNOTATION])["config"] == \
        f"{namespace}/hooked"

    # GitOps-friendly: the Deployment itself is exactly as it was created.
    live = kube.get("apps/v1", "Deployment", namespace, "web")
    assert live is not None
    assert live["metadata"]["generation"] == created["metadata"]["generation"]
    assert live["spec"]["template"] == created["spec"]["template"]

    # A Pod that opted out is admitted unchanged: matchConditions keep the API server from
    # even calling the webhook.
    calls = operator.admission_calls()
    assert calls >= 1
    opted_out = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "opted-out", "annotations": {INJECT_ANNOTATION: "false"}},
        "spec": {"containers": [{"name": "app", "image": PAUSE}]}})
    assert ADDR not in env(opted_out)
    assert operator.admission_calls() == calls

    # Operator down: Pods are still created, just without the variable.
    operator.stop()
    assert not operator.listening()
    during_outage = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "during-outage"},
        "spec": {"containers": [{"name": "app", "image": PAUSE}]}})
    assert during_outage["metadata"]["name"] == "during-outage"
    assert ADDR not in env(during_outage)


def test_operator_injects_annotated_workloads_once_and_follows_opt_in_changes(
    kube: Kube, cluster: Cluster, namespace: str, operator: Operator, crd: Any
) -> None:
    audit = Audit(cluster, kube)
    kube.request("POST", f"/apis/{API_VERSION}/namespaces/{namespace}/tracingconfigs", body={
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "patching", "namespace": namespace},
        "spec": {"region": "us-east-1", "default": True},
    })
    expected = f"patching-daemon.{namespace}.svc.cluster.local:2000"
    before = kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments",
                          body=annotated(deployment(namespace, "before", replicas=0)))
    plain_one = kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments",
                             body=deployment(namespace, "plain", replicas=0))
    operator.start()

    def address_of(name: str) -> str | None:
        live = kube.get("apps/v1", "Deployment", namespace, name)
        assert live is not None
        return env({"spec": live["spec"]["template"]["spec"]}).get(ADDR)

    wait_for(lambda: address_of("before") == expected, timeout=60,
             what="the operator injecting a Deployment that existed before it started")
    after = kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments",
                         body=annotated(deployment(namespace, "after", replicas=0)))
    wait_for(lambda: address_of("after") == expected, timeout=30,
             what="the operator injecting a new Deployment")

    # One write each, then silence; the unannotated one is never written.
    wait_for(lambda: "Injected" in reasons(kube, namespace, "after"), timeout=10,
             what="the Injected event")
    assert audit.writes(namespace) == Counter({"before": 1, "after": 1})
    for obj in (before, after):
        live = kube.get("apps/v1", "Deployment", namespace, obj["metadata"]["name"])
        assert live is not None
        assert live["metadata"]["generation"] == obj["metadata"]["generation"] + 1
    assert address_of("plain") is None
    assert plain_one["metadata"]["name"] == "plain"

    def injection_status() -> tuple[Any, Any]:
        tc = kube.get(API_VERSION, KIND, namespace, "patching") or {}
        status = tc.get("status") or {}
        healthy = [c for c in status.get("conditions", []) if c["type"] == "InjectionHealthy"]
        return status.get("injectedWorkloads"), healthy[0]["status"] if healthy else None

    wait_for(lambda: injection_status() == (2, "True"), timeout=30,
             what="status.injectedWorkloads 2 and InjectionHealthy True")

    # The whole namespace opts in: the unannotated Deployment follows, without a restart.
    kube.merge_patch("v1", "Namespace", None, namespace, {"metadata": {"annotations": {
        INJECT_ANNOTATION: "true"}}})
    wait_for(lambda: address_of("plain") == expected, timeout=30,
             what="namespace-level opt-in applied")
    wait_for(lambda: injection_status()[0] == 3, timeout=30, what="injectedWorkloads 3")

    # Deleting the TracingConfig takes everything it injected away again.
    kube.delete(API_VERSION, KIND, namespace, "patching")
    wait_for(lambda: all(address_of(n) is None for n in ("before", "after", "plain")),
             timeout=60, what="injection removed after the TracingConfig was deleted")
    restored = kube.get("apps/v1", "Deployment", namespace, "before")
    assert restored is not None
    assert restored["spec"]["template"] == before["spec"]["template"]


def annotated(obj: Obj, value: str = "true") -> Obj:
    obj["metadata"]["annotations"] = {INJECT_ANNOTATION: value}
    return obj


def reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    items = kube.request("GET", f"/api/v1/namespaces/{namespace}/events",
                         query={"fieldSelector": f"involvedObject.name={name}"})["items"]
    return [e["reason"] for e in items]
