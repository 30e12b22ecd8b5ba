"""Fixtures of the end-to-end trace path: the daemon binary, a moto X-Ray endpoint, and what
the operator produced (the SEAM below)."""

from __future__ import annotations

import pytest

from xray_dev import operator_output as produced
from xray_dev import tracepath
from xray_dev.fixtures_trace import xray_binary  # noqa: F401  (until tests/conftest.py loads it)
from xray_dev.moto import MotoServer
from xray_dev.tracepath import OperatorOutput


@pytest.fixture(scope="session")
def xray_endpoint(moto_server: MotoServer) -> tracepath.XRayEndpoint:
    """moto's X-Ray API on loopback (a real moto_server process, shared with the IAM tests:
    the traces of a test are read back within the same test, so its resets do no harm)."""
    return tracepath.XRayEndpoint(moto_server.endpoint)


@pytest.fixture(scope="session")
def operator_output() -> OperatorOutput:
    """SEAM (lead): switch this to the real operator on the real API server.

    Today the objects come from the operator's own pure functions (produced.from_render():
    `render.desired()` and `render.injection.plan_workload()` for the sample TracingConfig
    manifests/samples/tracingconfig.yaml and the sample apps).

    To switch: take `request: pytest.FixtureRequest`, make the fixture a generator and
    replace the body with
        cluster = request.getfixturevalue("cluster")
        request.getfixturevalue("operator")  # running, as its own ServiceAccount
        yield produced.from_cluster(cluster)
        produced.remove_samples(cluster)
    which applies the samples and reads back the ConfigMap and DaemonSet `<tc-name>-daemon`
    and the injected Deployments. Nothing else in tests/e2e needs to change.
    """
    return produced.from_render()
