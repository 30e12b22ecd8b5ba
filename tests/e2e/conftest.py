"""Fixtures of the end-to-end trace path: the daemon binary, a moto X-Ray endpoint, and what
the operator produced (the SEAM below)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xray_dev import operator_output as produced
from xray_dev import tracepath
from xray_dev.moto import MotoServer
from xray_dev.tracepath import OperatorOutput


@pytest.fixture(scope="session")
def xray_endpoint(moto_server: MotoServer) -> tracepath.XRayEndpoint:
    """moto's X-Ray API on loopback (a real moto_server process, shared with the IAM tests:
    the traces of a test are read back within the same test, so its resets do no harm)."""
    return tracepath.XRayEndpoint(moto_server.endpoint)


@pytest.fixture(scope="module")
def operator_output(request: pytest.FixtureRequest) -> Iterator[OperatorOutput]:
    """(Per module, so the sample `default: true` config is gone before other tests run.)

    What the operator produced, read from the real API server: the operator (running as its
    own ServiceAccount, AWS pointed at moto) renders the sample TracingConfig
    manifests/samples/tracingconfig.yaml and injects the sample apps; this reads back the
    ConfigMap and DaemonSet `<tc-name>-daemon` and the injected Deployments."""
    cluster = request.getfixturevalue("cluster")
    request.getfixturevalue("operator")
    yield produced.from_cluster(cluster)
    produced.remove_samples(cluster)
