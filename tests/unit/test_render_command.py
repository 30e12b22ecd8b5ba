"""`xray-operator render`, run as a person runs it: a process, a file, stdout and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

SAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "tracingconfig.yaml"
# The console script people run (`make setup` installs it next to the interpreter).
SCRIPT = Path(sys.executable).parent / "xray-operator"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "render", *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )


def write(tmp_path: Path, doc: dict[str, Any] | list[dict[str, Any]]) -> str:
    path = tmp_path / "tc.yaml"
    docs = doc if isinstance(doc, list) else [doc]
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def tc(spec: dict[str, Any], name: str = "xray") -> dict[str, Any]:
    return {"apiVersion": "tracing.xray-operator.dev/v1alpha1", "kind": "TracingConfig",
            "metadata": {"name": name, "namespace": "xray-system"}, "spec": spec}


def test_sample_renders_four_objects_as_yaml() -> None:
    result = run("-f", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ServiceAccount", "xray-daemon"), ("ConfigMap", "xray-daemon"),
        ("Service", "xray-daemon"), ("DaemonSet", "xray-daemon")]
    assert result.stderr == ""


def test_json_output_is_a_list_kubectl_accepts() -> None:
    result = run("-f", str(SAMPLE), "--output", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    assert [i["kind"] for i in doc["items"]][-1] == "DaemonSet"


def test_stdin_and_files_give_the_same_output() -> None:
    from_file = run("-f", str(SAMPLE))
    from_stdin = run("-f", "-", stdin=SAMPLE.read_text())
    assert from_stdin.returncode == 0
    assert from_stdin.stdout == from_file.stdout


def test_json_input_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "tc.json"
    path.write_text(json.dumps(tc({"region": "us-west-2"})))
    result = run("-f", str(path))
    assert result.returncode == 0, result.stderr
    assert "Region: us-west-2" in result.stdout


def test_missing_namespace_is_rendered_into_default_with_a_note(tmp_path: Path) -> None:
    doc = tc({"region": "us-east-1"})
    del doc["metadata"]["namespace"]
    result = run("-f", write(tmp_path, doc))
    assert result.returncode == 0, result.stderr
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(result.stdout)} == {"default"}
    assert "no metadata.namespace" in result.stderr


def test_several_configs_in_one_file(tmp_path: Path) -> None:
    result = run("-f", write(tmp_path, [tc({"region": "us-east-1"}, "a"),
                                        tc({"region": "us-east-1"}, "b")]))
    assert result.returncode == 0, result.stderr
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout)}
    assert names == {"a-daemon", "b-daemon"}


@pytest.mark.parametrize(
    ("spec", "field", "advice"),
    [
        ({"region": "us-east-1", "daemon": {"udpPort": 70000}}, "spec.daemon.udpPort",
         "must be at most 65535"),
        ({"region": "us-east-1", "daemon": {"tcpPort": 0}}, "spec.daemon.tcpPort",
         "must be at least 1"),
        ({"region": "useast1"}, "spec.region", "such as us-east-1"),
        ({"region": "us-east-1", "daemon": {"logLevel": "loud"}}, "spec.daemon.logLevel",
         "must be one of"),
        ({"region": "us-east-1", "serviceAccount": {"roleArn": "my-role"}},
         "spec.serviceAccount.roleArn", "arn:aws:iam::123456789012:role/"),
        ({"region": "us-east-1", "daemon": {"bufferSize": 10}}, "spec.daemon.bufferSize",
         "unknown field"),
        ({"region": "us-east-1", "daemon": {"bufferSizeMB": "ten"}}, "spec.daemon.bufferSizeMB",
         "valid integer"),
        ({"region": "us-east-1", "daemon": {"resources": {"limits": {"memory": "1 GB"}}}},
         "spec.daemon.resources.limits.memory", "such as 128Mi"),
        ({"region": "us-east-1", "iam": {"recheckInterval": "10s"}}, "spec.iam.recheckInterval",
         "use 1m or more"),
        ({"daemon": {}}, "spec.region", "required field is missing"),
        ({"region": "us-east-1", "daemon": {"bufferSizeMB": 200,
                                            "resources": {"limits": {"memory": "128Mi"}}}},
         "spec", "raise the limit or lower bufferSizeMB"),
        ({"region": "us-east-1", "injection": {"addressMode": "hostIP"}}, "spec",
         "requires daemon.hostPort: true"),
    ],
)
def test_invalid_input_names_the_field_and_the_fix(
    tmp_path: Path, spec: dict[str, Any], field: str, advice: str
) -> None:
    result = run("-f", write(tmp_path, tc(spec)))
    assert result.returncode != 0
    assert result.stdout == ""  # nothing half-rendered to pipe into kubectl
    line = next(ln for ln in result.stderr.splitlines() if ln.strip().startswith(f"{field}:"))
    assert advice in line


def test_bad_name_is_explained(tmp_path: Path) -> None:
    result = run("-f", write(tmp_path, tc({"region": "us-east-1"}, name="My_Tracing")))
    assert result.returncode != 0
    assert "metadata.name: must be lower-case letters" in result.stderr


def test_one_bad_document_fails_the_whole_file(tmp_path: Path) -> None:
    result = run("-f", write(tmp_path, [tc({"region": "us-east-1"}, "ok"),
                                        tc({"region": "nowhere"}, "bad")]))
    assert result.returncode != 0
    assert result.stdout == ""
    assert "document 2 (TracingConfig bad)" in result.stderr


def test_wrong_kind_is_refused(tmp_path: Path) -> None:
    doc = tc({"region": "us-east-1"})
    doc["kind"] = "Deployment"
    result = run("-f", write(tmp_path, doc))
    assert result.returncode != 0
    assert "kind TracingConfig" in result.stderr and "'Deployment'" in result.stderr


def test_missing_file_and_broken_yaml(tmp_path: Path) -> None:
    missing = run("-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = run("-f", str(broken))
    assert result.returncode != 0 and "not valid YAML" in result.stderr
    empty = run("-f", "-", stdin="")
    assert empty.returncode != 0 and "no TracingConfig" in empty.stderr
