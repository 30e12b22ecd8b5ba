"""A real `moto_server` process on loopback, reached by boto3 over HTTP.

Tests and `make demo` use it as "the AWS endpoint": boto3 finds it through the standard
AWS_ENDPOINT_URL, so the code under test has no test-only plumbing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_binary() -> str:
    # Prefer the one next to the running interpreter (.venv/bin), so the lock's moto is used.
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found; run `make setup`")
    return found


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What boto3 needs to talk to this server and nothing else (no profiles, no IMDS)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    @classmethod
    def start(cls, timeout: float = 60.0, *, detach: bool = False,
              log_path: Path | None = None) -> MotoServer:
        """Start a server; with `detach` it outlives this process (`make demo` leaves it up)."""
        port = _free_port()
        log = log_path or Path(tempfile.mkstemp(prefix="moto-server-", suffix=".log")[1])
        env = dict(os.environ)
        # AWS managed policies (AWSXRayDaemonWriteAccess, AdministratorAccess) exist in IAM.
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [_moto_binary(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=detach,
            )
        server = cls(process, port, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=2):
                    return server
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        server.stop()
        raise RuntimeError(f"moto_server did not answer within {timeout} s")

    def _post(self, path: str, body: bytes = b"") -> None:
        # text/plain: with urllib's default form content type the server would read an empty body.
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def reset(self) -> None:
        """Forget every resource (moto's reset API); the process keeps running."""
        self._post("/moto-api/reset")

    def set_auth_free_requests(self, count: float) -> None:
        """After `count` more requests moto checks signatures and IAM policies of the caller."""
        self._post("/moto-api/reset-auth", str(count).encode())

    @contextlib.contextmanager
    def enforce_iam(self) -> Iterator[None]:
        """Inside the block every request is authorised against moto's IAM, like real AWS."""
        self.set_auth_free_requests(0)
        try:
            yield
        finally:
            self.set_auth_free_requests(float("inf"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


# ---- building AWS state for tests and the demo (plain boto3 calls against the server) ----

XRAY_DAEMON_POLICY_ARN = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
EC2_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
OIDC_ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def policy(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [dict(s) for s in statements]}


def irsa_trust(namespace: str, service_account: str, issuer: str = OIDC_ISSUER) -> dict[str, Any]:
    provider = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{issuer}"
    return policy(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{issuer}:aud": "sts.amazonaws.com",
                }
            },
        }
    )


def register_oidc_provider(iam: Any, issuer: str = OIDC_ISSUER) -> str:
    response = iam.create_open_id_connect_provider(
        Url=f"https://{issuer}", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40]
    )
    return str(response["OpenIDConnectProviderArn"])


def create_role(
    iam: Any,
    name: str,
    *,
    trust: Mapping[str, Any] = EC2_TRUST,
    managed: Sequence[str] = (),
    inline: Mapping[str, Mapping[str, Any]] | None = None,
    boundary: str | None = None,
) -> str:
    """A role with managed policy ARNs attached and inline policies {name: document}."""
    kwargs: dict[str, Any] = {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(trust)}
    if boundary:
        kwargs["PermissionsBoundary"] = boundary
    arn = str(iam.create_role(**kwargs)["Role"]["Arn"])
    for policy_arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    for policy_name, document in (inline or {}).items():
        iam.put_role_policy(
            RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
        )
    return arn


def create_managed_policy(iam: Any, name: str, document: Mapping[str, Any]) -> str:
    response = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))
    return str(response["Policy"]["Arn"])


def launch_instance(ec2: Any, iam: Any, role_name: str | None, zone: str = "us-east-1a") -> str:
    """An EC2 instance whose instance profile holds `role_name` (None: no profile)."""
    kwargs: dict[str, Any] = {
        "ImageId": "ami-12c6146b",
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceType": "t3.medium",
        "Placement": {"AvailabilityZone": zone},
    }
    if role_name:
        profile = f"{role_name}-profile"
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_instance_profile(InstanceProfileName=profile)
            iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role_name)
        kwargs["IamInstanceProfile"] = {"Name": profile}
    instance = ec2.run_instances(**kwargs)["Instances"][0]
    return str(instance["InstanceId"])


def node(name: str, instance_id: str | None, zone: str = "us-east-1a") -> dict[str, Any]:
    """A Node object as the API returns it (only what the IAM check reads, plus a label)."""
    spec = {"providerID": f"aws:///{zone}/{instance_id}"} if instance_id else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": spec,
    }


def seed_node_group(
    role: str = "k8s-nodes",
    zones: Sequence[str] = ("us-east-1a", "us-east-1b", "us-east-1c"),
    *,
    managed: Sequence[str] = (XRAY_DAEMON_POLICY_ARN,),
) -> list[tuple[str, str]]:
    """A node role and one instance per zone; (instance id, zone) pairs for Node providerIDs.

    boto3 must already point at the server (AWS_ENDPOINT_URL etc., see MotoServer.env)."""
    import boto3  # devtools-only import; keeps `import xray_dev.moto` cheap

    iam = boto3.client("iam", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    create_role(iam, role, managed=managed)
    return [(launch_instance(ec2, iam, role, zone), zone) for zone in zones]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m xray_dev.moto [--seed]`: run a moto server in the foreground (for the demo).

    Prints one JSON line: the environment to export and, with --seed, the instances of a node
    group whose role has AWSXRayDaemonWriteAccess (create Nodes with
    providerID aws:///<zone>/<id> for them). Stops on Ctrl-C / SIGTERM."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m xray_dev.moto")
    parser.add_argument("--seed", action="store_true", help="create a node role and 3 instances")
    args = parser.parse_args(argv)
    server = MotoServer.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        os.environ.update(server.env())
        instances = seed_node_group() if args.seed else []
        print(
            json.dumps(
                {
                    "env": server.env(),
                    "instances": [{"id": i, "zone": z} for i, z in instances],
                }
            ),
            flush=True,
        )
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
