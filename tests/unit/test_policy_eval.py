"""The local IAM evaluator: one row per policy shape people actually attach to node roles."""

from __future__ import annotations

from typing import Any

import pytest

from xray_operator.policy import (
    Decision,
    NamedPolicy,
    evaluate,
    evaluate_actions,
    make_context,
    over_privileged,
    parse_document,
)
from xray_operator.policy.evaluate import combine_boundary

PUT = "xray:PutTraceSegments"
TEL = "xray:PutTelemetryRecords"
RULES = "xray:GetSamplingRules"

A = Decision.ALLOWED
X = Decision.EXPLICIT_DENY
I = Decision.IMPLICIT_DENY  # noqa: E741 - reads like the table legend
U = Decision.UNKNOWN


def stmt(effect: str = "Allow", **fields: Any) -> dict[str, Any]:
    return {"Effect": effect, **fields}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


DAEMON_WRITE = doc(
    stmt(
        Action=[PUT, TEL, RULES, "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"],
        Resource="*",
    )
)
REGION_ONLY = {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}

# (id, policy documents, action, region, expected)
CASES: list[tuple[str, list[dict[str, Any]], str, str, Decision]] = [
    ("managed daemon policy", [DAEMON_WRITE], PUT, "us-east-1", A),
    ("daemon policy, sampling action", [DAEMON_WRITE], RULES, "eu-west-1", A),
    ("empty policy list", [], PUT, "us-east-1", I),
    (
        "statement as a single object",
        [{"Statement": stmt(Action=PUT, Resource="*")}],
        PUT,
        "us-east-1",
        A,
    ),
    ("missing telemetry", [doc(stmt(Action=[PUT], Resource="*"))], TEL, "us-east-1", I),
    ("xray:* wildcard", [doc(stmt(Action="xray:*", Resource="*"))], TEL, "us-east-1", A),
    ("xray:Put* prefix", [doc(stmt(Action="xray:Put*", Resource="*"))], TEL, "us-east-1", A),
    (
        "xray:Put* does not cover Get",
        [doc(stmt(Action="xray:Put*", Resource="*"))],
        RULES,
        "us-east-1",
        I,
    ),
    ("? wildcard", [doc(stmt(Action="xray:PutTraceSegment?", Resource="*"))], PUT, "us-east-1", A),
    (
        "action case-insensitive",
        [doc(stmt(Action="XRay:puttracesegments", Resource="*"))],
        PUT,
        "us-east-1",
        A,
    ),
    ("other service only", [doc(stmt(Action="s3:*", Resource="*"))], PUT, "us-east-1", I),
    ("* on *", [doc(stmt(Action="*", Resource="*"))], PUT, "us-east-1", A),
    (
        "explicit deny xray:* beats allow",
        [DAEMON_WRITE, doc(stmt("Deny", Action="xray:*", Resource="*"))],
        PUT,
        "us-east-1",
        X,
    ),
    (
        "deny in same document",
        [doc(stmt(Action="*", Resource="*"), stmt("Deny", Action=TEL, Resource="*"))],
        TEL,
        "us-east-1",
        X,
    ),
    (
        "deny of another action does not matter",
        [doc(stmt(Action="*", Resource="*"), stmt("Deny", Action=TEL, Resource="*"))],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "allow via NotAction",
        [doc(stmt(NotAction=["iam:*", "s3:*"], Resource="*"))],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "NotAction excluding xray",
        [doc(stmt(NotAction="xray:*", Resource="*"))],
        PUT,
        "us-east-1",
        I,
    ),
    (
        "deny via NotAction spares xray",
        [doc(stmt(Action="*", Resource="*"), stmt("Deny", NotAction="xray:*", Resource="*"))],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "resource-scoped ARN does not grant a *-only action",
        [doc(stmt(Action="xray:*", Resource="arn:aws:xray:us-east-1:123456789012:group/*"))],
        PUT,
        "us-east-1",
        I,
    ),
    (
        "NotResource on some ARN",
        [doc(stmt(Action="xray:*", NotResource="arn:aws:s3:::secret"))],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "region condition matches",
        [doc(stmt(Action="xray:*", Resource="*", Condition=REGION_ONLY))],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "allowed only in another region",
        [doc(stmt(Action="xray:*", Resource="*", Condition=REGION_ONLY))],
        PUT,
        "eu-west-1",
        I,
    ),
    (
        "StringLike region wildcard",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"StringLike": {"aws:RequestedRegion": "eu-*"}},
                )
            )
        ],
        PUT,
        "eu-central-1",
        A,
    ),
    (
        "condition key is case-insensitive",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"StringEquals": {"AWS:requestedregion": ["us-east-1", "us-west-2"]}},
                )
            )
        ],
        PUT,
        "us-west-2",
        A,
    ),
    (
        "deny outside allowed regions (StringNotEquals)",
        [
            DAEMON_WRITE,
            doc(
                stmt(
                    "Deny",
                    Action="*",
                    Resource="*",
                    Condition={"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}},
                )
            ),
        ],
        PUT,
        "us-east-1",
        X,
    ),
    (
        "region guard deny does not hit allowed region",
        [
            DAEMON_WRITE,
            doc(
                stmt(
                    "Deny",
                    Action="*",
                    Resource="*",
                    Condition={"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}},
                )
            ),
        ],
        PUT,
        "eu-west-1",
        A,
    ),
    (
        "IfExists on a known key",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"StringEqualsIfExists": {"aws:RequestedRegion": "us-east-1"}},
                )
            )
        ],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "unknown condition key on allow",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                )
            )
        ],
        PUT,
        "us-east-1",
        U,
    ),
    (
        "unknown key with IfExists is still unknown",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}},
                )
            )
        ],
        PUT,
        "us-east-1",
        U,
    ),
    (
        "unknown key on deny, with a plain allow",
        [
            DAEMON_WRITE,
            doc(
                stmt(
                    "Deny",
                    Action="*",
                    Resource="*",
                    Condition={"Bool": {"aws:SecureTransport": False}},
                )
            ),
        ],
        PUT,
        "us-east-1",
        U,
    ),
    (
        "unknown key on deny, no allow at all",
        [
            doc(
                stmt(
                    "Deny",
                    Action="*",
                    Resource="*",
                    Condition={"Bool": {"aws:SecureTransport": False}},
                )
            )
        ],
        PUT,
        "us-east-1",
        I,
    ),
    (
        "known false condition beats unknown one",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={
                        "StringEquals": {"aws:RequestedRegion": "eu-west-1"},
                        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                    },
                )
            )
        ],
        PUT,
        "us-east-1",
        I,
    ),
    (
        "plain allow next to an unknown allow",
        [
            DAEMON_WRITE,
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                )
            ),
        ],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "policy variable in condition",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={
                        "StringEquals": {"aws:RequestedRegion": "${aws:PrincipalTag/region}"}
                    },
                )
            )
        ],
        PUT,
        "us-east-1",
        U,
    ),
    (
        "Null condition: region present",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"Null": {"aws:RequestedRegion": "false"}},
                )
            )
        ],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "ForAnyValue on region",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={
                        "ForAnyValue:StringEquals": {
                            "aws:RequestedRegion": ["ap-south-1", "us-east-1"]
                        }
                    },
                )
            )
        ],
        PUT,
        "us-east-1",
        A,
    ),
    (
        "numeric operator on known key",
        [
            doc(
                stmt(
                    Action="xray:*",
                    Resource="*",
                    Condition={"NumericLessThan": {"aws:RequestedRegion": "3"}},
                )
            )
        ],
        PUT,
        "us-east-1",
        U,
    ),
    (
        "URL-encoded JSON text",
        [
            "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22xray%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"
        ],
        PUT,
        "us-east-1",
        A,
    ),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("documents", "action", "region", "expected"),
    [pytest.param(d, a, r, e, id=name) for name, d, a, r, e in CASES],
)
def test_local_evaluator(
    documents: list[dict[str, Any]], action: str, region: str, expected: Decision
) -> None:
    policies = [NamedPolicy(f"p{i}", parse_document(d)) for i, d in enumerate(documents)]
    result = evaluate(policies, action, make_context({"aws:RequestedRegion": region}))
    assert result.decision is expected, result.why


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 25


def test_explicit_deny_names_the_policy_that_denies() -> None:
    policies = [
        NamedPolicy("XRayWrite", parse_document(DAEMON_WRITE)),
        NamedPolicy(
            "no-xray",
            parse_document(doc(stmt("Deny", Sid="NoXRay", Action="xray:*", Resource="*"))),
        ),
    ]
    result = evaluate(policies, PUT, make_context({"aws:RequestedRegion": "us-east-1"}))
    assert result.why == "explicitly denied by no-xray (NoXRay)"


def test_unknown_names_the_key_it_cannot_evaluate() -> None:
    policies = [
        NamedPolicy(
            "vpc-only",
            parse_document(
                doc(
                    stmt(
                        Action="xray:*",
                        Resource="*",
                        Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}},
                    )
                )
            ),
        )
    ]
    result = evaluate(policies, PUT, make_context({"aws:RequestedRegion": "us-east-1"}))
    assert "aws:SourceVpc" in result.why


def test_permissions_boundary_caps_identity_policy() -> None:
    ctx = make_context({"aws:RequestedRegion": "us-east-1"})
    admin = [NamedPolicy("admin", parse_document(doc(stmt(Action="*", Resource="*"))))]
    boundary = NamedPolicy("boundary", parse_document(doc(stmt(Action="s3:*", Resource="*"))))
    results = evaluate_actions(admin, [PUT, "s3:GetObject"], ctx, boundary=boundary)
    assert [r.decision for r in results] == [I, A]


def test_boundary_unknown_stays_unknown_but_boundary_deny_wins() -> None:
    ctx = make_context({"aws:RequestedRegion": "us-east-1"})
    allowed = evaluate([NamedPolicy("w", parse_document(DAEMON_WRITE))], PUT, ctx)
    maybe = evaluate(
        [
            NamedPolicy(
                "b",
                parse_document(
                    doc(
                        stmt(
                            Action="*",
                            Resource="*",
                            Condition={"IpAddress": {"aws:SourceIp": "1.2.3.4"}},
                        )
                    )
                ),
            )
        ],
        PUT,
        ctx,
    )
    assert combine_boundary(allowed, maybe).decision is U
    denied = evaluate(
        [NamedPolicy("d", parse_document(doc(stmt("Deny", Action="*", Resource="*"))))], PUT, ctx
    )
    assert combine_boundary(maybe, denied).decision is X


@pytest.mark.parametrize(
    ("document", "arn", "flagged"),
    [
        (doc(stmt(Action="*", Resource="*")), "", True),
        (doc(stmt(Action=["xray:*", "*"], Resource=["*"])), "", True),
        (doc(stmt(Action="*:*", Resource="*")), "", True),
        (doc(stmt(Action="xray:*", Resource="*")), "", False),
        (doc(stmt(Action="*", Resource="arn:aws:s3:::bucket/*")), "", False),
        (doc(stmt("Deny", Action="*", Resource="*")), "", False),
        (doc(stmt(NotAction="iam:*", Resource="*")), "", False),
        ({"Statement": []}, "arn:aws:iam::aws:policy/AdministratorAccess", True),
    ],
)
def test_over_privilege_lint(document: dict[str, Any], arn: str, flagged: bool) -> None:
    found = over_privileged([NamedPolicy("pol", parse_document(document), arn=arn)])
    assert (found == ["pol"]) is flagged
