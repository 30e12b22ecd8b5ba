"""Node -> EC2 instance -> instance profile -> role.

EKS (and the AWS cloud provider) set Node `spec.providerID` to `aws:///<az>/<instance-id>`;
anything else (kind, kwok defaults, Fargate) has no instance role to check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xray_operator.reconcile.aws import NotFound, aws_call

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient

_PROVIDER_ID = re.compile(r"^aws:///(?P<az>[a-z0-9-]*)/(?P<instance>i-[0-9a-f]+)$")
FILTER_BATCH = 150
_REGION_OF_AZ = re.compile(r"^(?P<region>[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+)")


@dataclass(frozen=True)
class NodeTarget:
    node: str
    instance_id: str
    region: str


def parse_provider_id(provider_id: str, default_region: str) -> tuple[str, str] | None:
    """(instance id, region) for an EC2 providerID, else None."""
    match = _PROVIDER_ID.match(provider_id.strip())
    if match is None:
        return None
    region = _REGION_OF_AZ.match(match["az"])
    return match["instance"], region["region"] if region else default_region


def split_nodes(
    nodes: Iterable[Mapping[str, Any]], default_region: str
) -> tuple[list[NodeTarget], list[str]]:
    targets: list[NodeTarget] = []
    unchecked: list[str] = []
    for node in nodes:
        name = str(node.get("metadata", {}).get("name", ""))
        parsed = parse_provider_id(
            str(node.get("spec", {}).get("providerID") or ""), default_region
        )
        if parsed is None:
            unchecked.append(name)
        else:
            targets.append(NodeTarget(name, *parsed))
    return targets, sorted(unchecked)


def instance_profiles(ec2: EC2Client, instance_ids: Sequence[str]) -> dict[str, str | None]:
    """instance id -> instance profile ARN (None: no profile). Ids EC2 does not know are absent.

    The instance-id filter (rather than InstanceIds=) lets one unknown id not fail the
    whole lookup.
    """
    found: dict[str, str | None] = {}
    ids = list(dict.fromkeys(instance_ids))
    # EC2 caps the values of one filter (200), so big clusters are looked up in batches.
    for start in range(0, len(ids), FILTER_BATCH):
        with aws_call("ec2:DescribeInstances"):
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "instance-id", "Values": ids[start : start + FILTER_BATCH]}]
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        profile = instance.get("IamInstanceProfile", {}).get("Arn")
                        found[instance["InstanceId"]] = profile or None
    return found


def profile_role(iam: IAMClient, profile_arn: str) -> str | None:
    """Role ARN of an instance profile (None: the profile holds no role)."""
    name = profile_arn.rsplit("/", 1)[-1]
    with aws_call("iam:GetInstanceProfile"):
        roles = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
    return roles[0]["Arn"] if roles else None


def resolve_roles(
    targets: Sequence[NodeTarget],
    ec2_for: Callable[[str], EC2Client],
    iam: IAMClient,
) -> dict[str, tuple[str, str]]:
    """node name -> ("role", role ARN) | ("noProfile", instance) | ("notFound", instance)
    | ("profileWithoutRole", profile ARN). Raises CheckerError when EC2/IAM reads fail."""
    by_region: dict[str, list[str]] = {}
    for t in targets:
        by_region.setdefault(t.region, []).append(t.instance_id)
    profiles: dict[str, str | None] = {}
    for region, ids in sorted(by_region.items()):
        profiles.update(instance_profiles(ec2_for(region), ids))
    roles: dict[str, str | None] = {}
    out: dict[str, tuple[str, str]] = {}
    for t in targets:
        if t.instance_id not in profiles:
            out[t.node] = ("notFound", t.instance_id)
            continue
        profile = profiles[t.instance_id]
        if profile is None:
            out[t.node] = ("noProfile", t.instance_id)
            continue
        if profile not in roles:
            try:
                roles[profile] = profile_role(iam, profile)
            except NotFound:
                roles[profile] = None
        role = roles[profile]
        out[t.node] = ("role", role) if role else ("profileWithoutRole", profile)
    return out
