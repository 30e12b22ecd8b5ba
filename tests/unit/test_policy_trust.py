"""IRSA trust policies: does the role admit the daemon's ServiceAccount token?"""

from __future__ import annotations

from typing import Any

import pytest

from xray_operator.policy import parse_document, trust_admits, trust_admits_role

ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC123"
PROVIDER = f"arn:aws:iam::111122223333:oidc-provider/{ISSUER}"
SUB = "system:serviceaccount:observability:xray-daemon"


def trust(
    condition: dict[str, Any] | None, effect: str = "Allow", principal: Any = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": effect,
        "Principal": principal if principal is not None else {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if condition is not None:
        statement["Condition"] = condition
    return {"Statement": [statement]}


@pytest.mark.parametrize(
    ("document", "admits"),
    [
        pytest.param(
            trust({"StringEquals": {f"{ISSUER}:sub": SUB, f"{ISSUER}:aud": "sts.amazonaws.com"}}),
            True,
            id="exact sub and aud",
        ),
        pytest.param(
            trust({"StringLike": {f"{ISSUER}:sub": "system:serviceaccount:observability:*"}}),
            True,
            id="namespace wildcard",
        ),
        pytest.param(trust(None), True, id="no condition admits every ServiceAccount"),
        pytest.param(
            trust({"StringEquals": {f"{ISSUER}:sub": "system:serviceaccount:default:other"}}),
            False,
            id="other ServiceAccount",
        ),
        pytest.param(
            trust({"StringEquals": {f"{ISSUER}:aud": "something-else"}}), False, id="wrong audience"
        ),
        pytest.param(
            trust({"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/OTHER:sub": SUB}}),
            None,
            id="condition on another issuer",
        ),
        pytest.param(
            trust(
                {
                    "StringEquals": {f"{ISSUER}:sub": SUB},
                    "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                }
            ),
            None,
            id="extra unknown condition",
        ),
        pytest.param(
            trust(None, principal={"Service": "ec2.amazonaws.com"}), False, id="EC2 trust only"
        ),
        pytest.param(
            {
                "Statement": [
                    trust(None)["Statement"][0],
                    trust({"StringEquals": {f"{ISSUER}:sub": SUB}}, effect="Deny")["Statement"][0],
                ]
            },
            False,
            id="explicit deny for the subject",
        ),
        pytest.param(
            trust(
                {"StringEquals": {f"{ISSUER}:sub": SUB}},
                principal={"Federated": [PROVIDER, "cognito-identity.amazonaws.com"]},
            ),
            True,
            id="provider in a list",
        ),
    ],
)
def test_trust_admits(document: dict[str, Any], admits: bool | None) -> None:
    result = trust_admits(parse_document(document), "observability", "xray-daemon")
    assert result.admits is admits, result.why
    assert result.subject == SUB
    if admits:
        assert result.provider == PROVIDER
    else:
        assert SUB in result.why


NODE_ROLE = "arn:aws:iam::111122223333:role/eks/k8s-nodes"


def assume_trust(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return {"Statement": [statement]}


@pytest.mark.parametrize(
    ("document", "admits"),
    [
        pytest.param(assume_trust({"AWS": NODE_ROLE}), True, id="the role itself"),
        pytest.param(
            assume_trust({"AWS": ["arn:aws:iam::111122223333:root"]}), True, id="its account root"
        ),
        pytest.param(assume_trust({"AWS": "111122223333"}), True, id="bare account id"),
        pytest.param(
            assume_trust({"AWS": "arn:aws:iam::111122223333:role/other"}), False, id="another role"
        ),
        pytest.param(
            assume_trust({"AWS": "arn:aws:iam::999999999999:root"}), False, id="another account"
        ),
        pytest.param(
            assume_trust({"Service": "ec2.amazonaws.com"}), False, id="service principal only"
        ),
        pytest.param(
            assume_trust("*", {"StringEquals": {"aws:PrincipalArn": NODE_ROLE}}),
            True,
            id="any principal, condition on PrincipalArn",
        ),
        pytest.param(
            assume_trust({"AWS": NODE_ROLE}, {"StringEquals": {"sts:ExternalId": "x"}}),
            None,
            id="external id condition",
        ),
    ],
)
def test_trust_admits_role(document: dict[str, Any], admits: bool | None) -> None:
    assert trust_admits_role(parse_document(document), NODE_ROLE).admits is admits
