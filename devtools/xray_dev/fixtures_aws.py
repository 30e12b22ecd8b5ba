"""AWS fixtures: a real moto server on loopback reached through boto3.

- `moto_server` (session): starts `moto_server` once, points boto3 at it through the standard
  AWS_* environment variables for the whole session, stops it at the end.
- `aws` (function): the same server with all state reset before the test and IAM
  enforcement switched off again after it. Use this one in tests.

Neither needs the Kubernetes cluster, so AWS-only tests run before it is up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xray_dev.moto import MotoServer

# Variables that could send boto3 elsewhere (a developer's profile, real credentials).
_SCRUB = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer.start()
    patch = pytest.MonkeyPatch()
    for name in _SCRUB:
        patch.delenv(name, raising=False)
    for name, value in server.env().items():
        patch.setenv(name, value)
    try:
        yield server
    finally:
        patch.undo()
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> Iterator[MotoServer]:
    moto_server.reset()
    try:
        yield moto_server
    finally:
        moto_server.set_auth_free_requests(float("inf"))
