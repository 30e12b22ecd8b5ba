"""IAM preflight against a real moto server (boto3 over HTTP on loopback).

Each test builds the AWS side a user would have (roles, policies, instances with instance
profiles), hands the checker Node objects whose providerIDs point at those instances, and
asserts what the user would read in status.iam, the condition and the Events. No cluster
needed: these run before the control plane is up.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from xray_dev.moto import (
    ADMIN_POLICY_ARN,
    OIDC_ISSUER,
    XRAY_DAEMON_POLICY_ARN,
    MotoServer,
    create_managed_policy,
    create_role,
    irsa_trust,
    launch_instance,
    node,
    policy,
    register_oidc_provider,
)
from xray_operator.policy import XRAY_ACTIONS, IamReport
from xray_operator.policy.report import checker_policy
from xray_operator.reconcile.iam import check_identities

pytestmark = pytest.mark.integration

REGION = "us-east-1"
TEL = "xray:PutTelemetryRecords"
SA = ("observability", "traces-daemon")


@pytest.fixture
def iam(aws: MotoServer) -> Any:
    return boto3.client("iam", region_name=REGION)


@pytest.fixture
def ec2(aws: MotoServer) -> Any:
    return boto3.client("ec2", region_name=REGION)


def node_role_check(nodes: list[dict[str, Any]], **kwargs: Any) -> IamReport:
    return check_identities(
        region=kwargs.pop("region", REGION),
        irsa_role_arn=None,
        identity_mode="auto",
        service_account=SA,
        nodes=nodes,
        **kwargs,
    )


def one_node_with(iam: Any, ec2: Any, role: str, **role_kwargs: Any) -> IamReport:
    create_role(iam, role, **role_kwargs)
    instance = launch_instance(ec2, iam, role)
    return node_role_check([node("node-a", instance)])


def only(report: IamReport) -> dict[str, Any]:
    status = report.to_status()
    assert len(status["identities"]) == 1, status
    identity: dict[str, Any] = status["identities"][0]
    return identity


def test_role_with_the_five_actions_is_allowed(iam: Any, ec2: Any) -> None:
    report = one_node_with(iam, ec2, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    status = report.to_status()
    assert status["allowed"] == "True"
    assert status["checkedAt"].endswith("Z")
    assert only(report) == {
        "kind": "nodeRole",
        "roleArn": "arn:aws:iam::123456789012:role/k8s-nodes",
        "nodes": ["node-a"],
        "allowed": "True",
        "missingActions": [],
        "overPrivileged": False,
        "message": only(report)["message"],
    }
    condition = report.condition()
    assert (condition["type"], condition["status"]) == ("IAMPermissionsVerified", "True")
    assert [e.type for e in report.events()] == ["Normal"]


def test_role_missing_put_telemetry_records(iam: Any, ec2: Any) -> None:
    four = [a for a in XRAY_ACTIONS if a != TEL]
    report = one_node_with(
        iam,
        ec2,
        "k8s-nodes",
        inline={"xray": policy({"Effect": "Allow", "Action": four, "Resource": "*"})},
    )
    identity = only(report)
    assert identity["allowed"] == "False"
    assert identity["missingActions"] == [TEL]
    condition = report.condition()
    assert condition["status"] == "False"
    assert condition["reason"] == "MissingPermissions"
    [event] = report.events()
    assert event.type == "Warning"
    assert TEL in event.message
    assert "attach AWSXRayDaemonWriteAccess to role k8s-nodes" in event.message


def test_explicit_deny_on_xray_wins_over_managed_allow(iam: Any, ec2: Any) -> None:
    deny = policy({"Sid": "NoTracing", "Effect": "Deny", "Action": "xray:*", "Resource": "*"})
    report = one_node_with(
        iam, ec2, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN], inline={"guardrail": deny}
    )
    identity = only(report)
    assert identity["allowed"] == "False"
    assert identity["missingActions"] == list(XRAY_ACTIONS)
    assert "guardrail" in identity["message"]
    assert report.condition()["reason"] == "ExplicitDeny"
    assert "remove or narrow the Deny" in report.events()[0].message


def test_allow_via_not_action(iam: Any, ec2: Any) -> None:
    broad = policy({"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"})
    report = one_node_with(iam, ec2, "power-nodes", inline={"power": broad})
    identity = only(report)
    assert identity["allowed"] == "True"
    assert identity["overPrivileged"] is False  # NotAction is broad, but not `*` on `*`


def test_xray_allowed_only_in_another_region(iam: Any, ec2: Any) -> None:
    eu_only = policy(
        {
            "Effect": "Allow",
            "Action": "xray:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
        }
    )
    create_role(iam, "eu-nodes", inline={"eu": eu_only})
    instance = launch_instance(ec2, iam, "eu-nodes")
    here = node_role_check([node("node-a", instance)])
    assert only(here)["allowed"] == "False"
    assert only(here)["missingActions"] == list(XRAY_ACTIONS)
    assert "us-east-1" in only(here)["message"]
    # The same role checked for a TracingConfig that sends to eu-west-1 is fine.
    there = node_role_check([node("node-a", instance)], region="eu-west-1")
    assert only(there)["allowed"] == "True"


def test_unknown_condition_key_is_unknown_not_allowed(iam: Any, ec2: Any) -> None:
    vpc_only = policy(
        {
            "Effect": "Allow",
            "Action": "xray:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0123"}},
        }
    )
    report = one_node_with(iam, ec2, "vpce-nodes", inline={"vpce": vpc_only})
    identity = only(report)
    assert identity["allowed"] == "Unknown"
    assert identity["missingActions"] == []
    assert "aws:SourceVpce" in identity["message"]
    assert report.condition()["reason"] == "Unverifiable"
    assert not report.has_checker_error


@pytest.mark.parametrize("how", ["managed", "inline"])
def test_star_on_star_is_allowed_and_over_privileged(iam: Any, ec2: Any, how: str) -> None:
    if how == "managed":
        report = one_node_with(iam, ec2, "admin-nodes", managed=[ADMIN_POLICY_ARN])
        culprit = "AdministratorAccess"
    else:
        star = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
        report = one_node_with(iam, ec2, "admin-nodes", inline={"make-it-work": star})
        culprit = "make-it-work"
    identity = only(report)
    assert identity["allowed"] == "True"
    assert identity["overPrivileged"] is True
    assert report.allowed == "True"
    over = [e for e in report.events() if e.reason == "IAMOverPrivileged"]
    assert len(over) == 1
    assert culprit in over[0].message
    assert "AWSXRayDaemonWriteAccess" in over[0].message


@pytest.mark.parametrize("how", ["inline", "customer-managed"])
def test_inline_and_managed_policies_count_the_same(iam: Any, ec2: Any, how: str) -> None:
    document = policy({"Effect": "Allow", "Action": "xray:Put*", "Resource": "*"})
    if how == "inline":
        kwargs: dict[str, Any] = {"inline": {"put-only": document}}
    else:
        kwargs = {"managed": [create_managed_policy(iam, "put-only", document)]}
    identity = only(one_node_with(iam, ec2, "put-nodes", **kwargs))
    assert identity["allowed"] == "False"
    assert identity["missingActions"] == [
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ]


def test_inline_and_managed_policies_add_up(iam: Any, ec2: Any) -> None:
    puts = create_managed_policy(
        iam, "xray-put", policy({"Effect": "Allow", "Action": "xray:Put*", "Resource": "*"})
    )
    gets = policy({"Effect": "Allow", "Action": "xray:GetSampling*", "Resource": "*"})
    identity = only(one_node_with(iam, ec2, "split-nodes", managed=[puts], inline={"gets": gets}))
    assert identity["allowed"] == "True"


def test_nodes_with_different_roles_are_reported_per_role(iam: Any, ec2: Any) -> None:
    create_role(iam, "general-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    create_role(iam, "gpu-nodes")
    general = [
        launch_instance(ec2, iam, "general-nodes", zone=z) for z in ("us-east-1a", "us-east-1b")
    ]
    gpu = launch_instance(ec2, iam, "gpu-nodes", zone="us-east-1c")
    nodes = [
        node("general-1", general[0], "us-east-1a"),
        node("general-2", general[1], "us-east-1b"),
        node("gpu-1", gpu, "us-east-1c"),
    ]
    report = node_role_check(nodes)
    by_role = {i["roleArn"].rsplit("/", 1)[-1]: i for i in report.to_status()["identities"]}
    assert set(by_role) == {"general-nodes", "gpu-nodes"}
    assert by_role["general-nodes"]["nodes"] == ["general-1", "general-2"]
    assert by_role["general-nodes"]["allowed"] == "True"
    assert by_role["gpu-nodes"]["nodes"] == ["gpu-1"]
    assert by_role["gpu-nodes"]["missingActions"] == list(XRAY_ACTIONS)
    assert report.allowed == "False"
    [warning] = [e for e in report.events() if e.type == "Warning"]
    assert "gpu-nodes" in warning.message and "gpu-1" in warning.message


def irsa_check(role_arn: str | None, mode: str = "auto") -> IamReport:
    return check_identities(
        region=REGION,
        irsa_role_arn=role_arn,
        identity_mode=mode,
        service_account=SA,
        nodes=[node("node-a", "i-0123456789abcdef0")],  # ignored with IRSA
    )


def test_irsa_role_admitting_the_service_account(iam: Any) -> None:
    register_oidc_provider(iam)
    arn = create_role(iam, "xray-irsa", trust=irsa_trust(*SA), managed=[XRAY_DAEMON_POLICY_ARN])
    report = irsa_check(arn)
    identity = only(report)
    assert (identity["kind"], identity["allowed"], identity["nodes"]) == ("irsa", "True", [])


def test_irsa_trust_policy_not_admitting_the_service_account(iam: Any) -> None:
    register_oidc_provider(iam)
    other_sa = irsa_trust("observability", "some-other-sa")
    arn = create_role(iam, "xray-irsa", trust=other_sa, managed=[XRAY_DAEMON_POLICY_ARN])
    report = irsa_check(arn)
    identity = only(report)
    assert identity["allowed"] == "False"
    assert identity["missingActions"] == []  # the permissions are fine, the trust is not
    assert "system:serviceaccount:observability:traces-daemon" in identity["message"]
    assert report.condition()["reason"] == "TrustPolicyMismatch"
    assert "sts:AssumeRoleWithWebIdentity" in report.events()[0].message


def test_irsa_trust_names_an_unregistered_oidc_provider(iam: Any) -> None:
    arn = create_role(iam, "xray-irsa", trust=irsa_trust(*SA), managed=[XRAY_DAEMON_POLICY_ARN])
    identity = only(irsa_check(arn))
    assert identity["allowed"] == "False"
    assert OIDC_ISSUER in identity["message"]


def test_irsa_role_that_does_not_exist(aws: MotoServer) -> None:
    identity = only(irsa_check("arn:aws:iam::123456789012:role/typo"))
    assert identity["allowed"] == "False"
    assert "does not exist" in identity["message"]


def test_irsa_mode_without_role_arn(aws: MotoServer) -> None:
    report = irsa_check(None, mode="irsa")
    assert report.allowed == "False"
    assert report.condition()["reason"] == "IrsaRoleMissing"


def test_node_without_ec2_provider_id_is_not_checkable_not_failing(iam: Any, ec2: Any) -> None:
    create_role(iam, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    instance = launch_instance(ec2, iam, "k8s-nodes")
    kind_node = node("kind-worker", None)
    kind_node["spec"]["providerID"] = "kind://docker/kind/kind-worker"
    report = node_role_check([node("node-a", instance), kind_node, node("bare", None)])
    assert report.allowed == "True"
    assert report.unchecked_nodes == ("bare", "kind-worker")
    assert [i["nodes"] for i in report.to_status()["identities"]] == [["node-a"]]
    assert "kind-worker" in report.condition()["message"]
    # Only uncheckable nodes: nothing to say yes or no about.
    alone = node_role_check([kind_node])
    assert alone.allowed == "Unknown"
    assert alone.condition()["reason"] == "NoCheckableIdentity"
    assert alone.to_status()["identities"] == []


def test_instance_without_instance_profile(iam: Any, ec2: Any) -> None:
    instance = launch_instance(ec2, iam, None)
    identity = only(node_role_check([node("node-a", instance)]))
    assert identity["allowed"] == "False"
    assert instance in identity["message"]


def test_instance_unknown_to_ec2_is_unknown(aws: MotoServer) -> None:
    identity = only(node_role_check([node("node-a", "i-0123456789abcdef0")]))
    assert identity["allowed"] == "Unknown"
    assert "not found" in identity["message"]


def checker_user(iam: Any, deny: str) -> boto3.Session:
    """An IAM user that may read everything except `deny`; a session with its keys."""
    iam.create_user(UserName="operator")
    iam.put_user_policy(
        UserName="operator",
        PolicyName="checker",
        PolicyDocument=json.dumps(
            policy(
                {"Effect": "Allow", "Action": ["iam:*", "ec2:*"], "Resource": "*"},
                {"Effect": "Deny", "Action": deny, "Resource": "*"},
            )
        ),
    )
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    return boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )


def test_checker_denied_get_role_policy_is_a_checker_error(
    aws: MotoServer, iam: Any, ec2: Any
) -> None:
    create_role(
        iam,
        "k8s-nodes",
        inline={"xray": policy({"Effect": "Allow", "Action": "xray:*", "Resource": "*"})},
    )
    instance = launch_instance(ec2, iam, "k8s-nodes")
    session = checker_user(iam, "iam:GetRolePolicy")
    with aws.enforce_iam():
        report = node_role_check([node("node-a", instance)], session=session)
    identity = only(report)
    assert identity["allowed"] == "Unknown"
    assert identity["missingActions"] == []  # never "missing permissions"
    assert "iam:GetRolePolicy" in identity["message"]
    assert report.has_checker_error
    condition = report.condition()
    assert (condition["status"], condition["reason"]) == ("Unknown", "CheckerError")
    [event] = report.events()
    assert event.reason == "IAMCheckFailed"
    assert "grant the operator's role iam:GetRolePolicy" in event.message


def test_checker_denied_describe_instances_is_a_checker_error(
    aws: MotoServer, iam: Any, ec2: Any
) -> None:
    create_role(iam, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    instance = launch_instance(ec2, iam, "k8s-nodes")
    session = checker_user(iam, "ec2:DescribeInstances")
    with aws.enforce_iam():
        report = node_role_check([node("node-a", instance)], session=session)
    identity = only(report)
    assert (identity["allowed"], identity["missingActions"]) == ("Unknown", [])
    assert "ec2:DescribeInstances" in identity["message"]
    assert report.condition()["reason"] == "CheckerError"


def test_no_credentials_is_a_checker_error(
    aws: MotoServer, iam: Any, ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_role(iam, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    instance = launch_instance(ec2, iam, "k8s-nodes")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    report = node_role_check([node("node-a", instance)], session=boto3.Session())
    identity = only(report)
    assert identity["allowed"] == "Unknown"
    assert "no AWS credentials" in identity["message"]
    assert report.has_checker_error


def test_permissions_boundary_caps_an_admin_role(iam: Any, ec2: Any) -> None:
    s3_only = create_managed_policy(
        iam, "s3-only", policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    )
    report = one_node_with(iam, ec2, "bounded", managed=[ADMIN_POLICY_ARN], boundary=s3_only)
    identity = only(report)
    assert identity["allowed"] == "False"
    assert identity["missingActions"] == list(XRAY_ACTIONS)
    assert identity["overPrivileged"] is True  # the attached policy is still `*` on `*`


def test_documented_checker_policy_is_enough(aws: MotoServer, iam: Any, ec2: Any) -> None:
    # The operator's own role gets exactly checker_policy(); with moto enforcing IAM the whole
    # check (node roles, inline and managed policies, IRSA with its OIDC provider) must run
    # without a single checker error.
    create_role(
        iam,
        "k8s-nodes",
        managed=[XRAY_DAEMON_POLICY_ARN],
        inline={"extra": policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})},
    )
    instance = launch_instance(ec2, iam, "k8s-nodes")
    register_oidc_provider(iam)
    irsa = create_role(iam, "xray-irsa", trust=irsa_trust(*SA), managed=[XRAY_DAEMON_POLICY_ARN])
    iam.create_user(UserName="operator")
    iam.put_user_policy(
        UserName="operator", PolicyName="check", PolicyDocument=json.dumps(checker_policy())
    )
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )
    with aws.enforce_iam():
        nodes_report = node_role_check([node("node-a", instance)], session=session)
        irsa_report = check_identities(
            region=REGION,
            irsa_role_arn=irsa,
            identity_mode="auto",
            service_account=SA,
            nodes=[],
            session=session,
        )
    assert nodes_report.allowed == "True", nodes_report.condition()
    assert irsa_report.allowed == "True", irsa_report.condition()


def daemon_role_setup(
    iam: Any, ec2: Any, *, node_may_assume: bool, trust_node: bool
) -> tuple[str, str, IamReport]:
    """Nodes whose role only reaches the daemon's -r role, which holds the X-Ray policy."""
    node_role = "arn:aws:iam::123456789012:role/k8s-nodes"
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": node_role if trust_node else "arn:aws:iam::123456789012:role/ci"},
            "Action": "sts:AssumeRole",
        }
    )
    daemon_role = create_role(iam, "xray-writer", trust=trust, managed=[XRAY_DAEMON_POLICY_ARN])
    inline = {}
    if node_may_assume:
        inline["assume-xray"] = policy(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": daemon_role}
        )
    create_role(iam, "k8s-nodes", inline=inline)
    instance = launch_instance(ec2, iam, "k8s-nodes")
    report = node_role_check([node("node-a", instance)], daemon_role_arn=daemon_role)
    return node_role, daemon_role, report


def test_daemon_role_arn_shifts_the_check_to_the_assumed_role(iam: Any, ec2: Any) -> None:
    _, daemon_role, report = daemon_role_setup(iam, ec2, node_may_assume=True, trust_node=True)
    identities = report.to_status()["identities"]
    assert [(i["kind"], i["allowed"]) for i in identities] == [
        ("nodeRole", "True"),  # no X-Ray permissions on the node role, and that is fine
        ("daemonRole", "True"),
    ]
    assert identities[1]["roleArn"] == daemon_role
    assert report.allowed == "True"


def test_node_role_that_cannot_assume_the_daemon_role(iam: Any, ec2: Any) -> None:
    _, daemon_role, report = daemon_role_setup(iam, ec2, node_may_assume=False, trust_node=True)
    node_identity = report.to_status()["identities"][0]
    assert node_identity["allowed"] == "False"
    assert node_identity["missingActions"] == ["sts:AssumeRole"]
    assert f"allow sts:AssumeRole on {daemon_role} in a policy of role k8s-nodes" in (
        report.events()[0].message
    )


def test_daemon_role_whose_trust_policy_ignores_the_node_role(iam: Any, ec2: Any) -> None:
    node_role, _, report = daemon_role_setup(iam, ec2, node_may_assume=True, trust_node=False)
    by_kind = {i["kind"]: i for i in report.to_status()["identities"]}
    assert by_kind["nodeRole"]["allowed"] == "True"
    assert by_kind["daemonRole"]["allowed"] == "False"
    assert by_kind["daemonRole"]["missingActions"] == []
    assert "k8s-nodes" in by_kind["daemonRole"]["message"]
    assert report.condition()["reason"] == "TrustPolicyMismatch"
    assert node_role in report.events()[0].message


def test_large_node_group_is_one_identity(iam: Any, ec2: Any) -> None:
    # More instances than one DescribeInstances filter takes: looked up in batches.
    create_role(iam, "k8s-nodes", managed=[XRAY_DAEMON_POLICY_ARN])
    iam.create_instance_profile(InstanceProfileName="k8s-nodes-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="k8s-nodes-profile", RoleName="k8s-nodes")
    reservation = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=160,
        MaxCount=160,
        Placement={"AvailabilityZone": "us-east-1b"},
    )
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    nodes = [node(f"node-{n:03d}", i, "us-east-1b") for n, i in enumerate(ids)]
    # A node group launched without a profile: one finding for all of its nodes.
    bare = only(node_role_check(nodes))
    assert (bare["allowed"], len(bare["nodes"])) == ("False", 160)
    assert "no instance profile" in bare["message"]
    # moto's run_instances attaches a profile to the first instance only; attach the rest.
    for instance_id in ids:
        ec2.associate_iam_instance_profile(
            IamInstanceProfile={"Name": "k8s-nodes-profile"}, InstanceId=instance_id
        )
    identity = only(node_role_check(nodes))
    assert identity["allowed"] == "True"
    assert len(identity["nodes"]) == 160
