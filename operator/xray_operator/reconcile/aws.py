"""boto3 clients for the IAM checker and the one place AWS errors are classified.

Endpoints, region and credentials come the standard boto3 way (AWS_ENDPOINT_URL,
AWS_REGION/AWS_DEFAULT_REGION, the credential chain incl. IRSA), so tests reach moto the
same way production reaches AWS. The point of classifying errors: a throttled or denied
*checker* must never be reported as a daemon role missing permissions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient

# Standard mode retries throttling and 5xx with exponential backoff and jitter; the
# operator adds its own, slower backoff on top when a whole check fails.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="xray-operator-iam-check",
)

# The policy simulator is only a better way to get an answer we can also compute locally, so
# one attempt is enough: on any failure the checker falls back to reading the policies.
PROBE_CONFIG = CLIENT_CONFIG.merge(Config(retries={"mode": "standard", "max_attempts": 1}))

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "OptInRequired",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchEntity", "InvalidInstanceID.NotFound", "NotFound"})


class CheckerError(Exception):
    """The checker could not read what it needs; says nothing about the daemon's role."""

    def __init__(self, permission: str, code: str, detail: str) -> None:
        super().__init__(f"{permission}: {code}: {detail}")
        self.permission = permission
        self.code = code
        self.detail = detail

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_CODES

    @property
    def denied(self) -> bool:
        return self.code in DENIED_CODES

    def describe(self) -> str:
        if self.throttled:
            return f"the checker was throttled calling {self.permission} ({self.code}); will retry"
        if self.code == "NoCredentials":
            return "the checker has no AWS credentials"
        if self.denied:
            return f"the checker itself is not allowed to call {self.permission} ({self.code})"
        return f"the checker failed calling {self.permission}: {self.code}: {self.detail}"

    @property
    def fix(self) -> str:
        if self.code == "NoCredentials":
            return (
                "give the operator AWS credentials (IRSA role on its ServiceAccount, or the "
                "standard AWS_* environment variables)"
            )
        if self.denied:
            return f"grant the operator's role {self.permission}"
        return ""


class NotFound(Exception):
    """The thing looked up does not exist: a finding about the cluster, not a checker error."""


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def aws_call(permission: str) -> Iterator[None]:
    """Translate boto errors raised inside the block; `permission` names the IAM action."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in NOT_FOUND_CODES:
            raise NotFound(str(exc)) from exc
        message = str(exc.response.get("Error", {}).get("Message", exc))
        raise CheckerError(permission, code, message) from exc
    except NoCredentialsError as exc:
        raise CheckerError(permission, "NoCredentials", str(exc)) from exc
    except (BotoCoreError, ResponseParserError) as exc:
        # Connection failures, unparseable responses: the checker could not get an answer.
        raise CheckerError(permission, type(exc).__name__, str(exc)) from exc


def iam_client(session: boto3.Session, region: str) -> IAMClient:
    # IAM is global, but the region picks the partition (aws, aws-cn, aws-us-gov).
    return session.client("iam", region_name=region, config=CLIENT_CONFIG)


def iam_probe_client(session: boto3.Session, region: str) -> IAMClient:
    return session.client("iam", region_name=region, config=PROBE_CONFIG)


def ec2_client(session: boto3.Session, region: str) -> EC2Client:
    return session.client("ec2", region_name=region, config=CLIENT_CONFIG)
