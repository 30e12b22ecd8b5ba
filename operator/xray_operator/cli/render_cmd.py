"""`xray-operator render -f FILE [-o yaml|json]`: print what the operator would apply.

For people who do not run the operator (GitOps): the output goes straight to
`kubectl apply -f -`. Needs no cluster and no AWS credentials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from xray_operator.constants import API_VERSION, KIND
from xray_operator.model import (
    DURATION_PATTERN,
    IMAGE_PATTERN,
    NAME_PATTERN,
    QUANTITY_PATTERN,
    REGION_PATTERN,
    ROLE_ARN_PATTERN,
    URL_PATTERN,
    TracingConfig,
)
from xray_operator.render import desired
from xray_operator.render.serialize import to_json, to_yaml

# What each pattern means, in the words a person would use to fix the value.
_PATTERN_HINTS = {
    REGION_PATTERN: "an AWS region such as us-east-1",
    ROLE_ARN_PATTERN: "an IAM role ARN such as arn:aws:iam::123456789012:role/xray-daemon, "
    "or empty",
    URL_PATTERN: "an http(s) URL such as https://xray.us-east-1.amazonaws.com, or empty",
    IMAGE_PATTERN: "an image reference without spaces",
    DURATION_PATTERN: "a duration such as 30m, 1h or 1h30m",
    NAME_PATTERN: "lower-case letters, digits and '-', starting with a letter",
    QUANTITY_PATTERN: "a quantity such as 128Mi, 1Gi, 100m or 2",
}


class InputError(Exception):
    """Input a person must fix; the message says where and how."""


def render(args: argparse.Namespace) -> int:
    try:
        configs = [_parse(doc, index) for index, doc in enumerate(_documents(args.file))]
        if not configs:
            raise InputError(f"{_source(args.file)}: no {KIND} found")
    except InputError as err:
        print(f"xray-operator render: {err}", file=sys.stderr)
        return 1
    for config in configs:
        if "namespace" not in config.metadata.model_fields_set:
            # The Service address contains the namespace, so it cannot be left to kubectl -n.
            print(f"xray-operator render: note: {KIND} {config.name} has no metadata.namespace;"
                  f" rendering into namespace {config.namespace}", file=sys.stderr)
    objects = [obj for config in configs for obj in desired(config)]
    sys.stdout.write(to_json(objects) if args.output == "json" else to_yaml(objects))
    return 0


def _source(path: str) -> str:
    return "stdin" if path == "-" else path


def _documents(path: str) -> list[Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from err
    try:
        # JSON is YAML, so one loader serves both.
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as err:
        raise InputError(f"{_source(path)} is not valid YAML/JSON: {err}") from err


def _parse(doc: Any, index: int) -> TracingConfig:
    where = f"document {index + 1}"
    if not isinstance(doc, dict):
        raise InputError(f"{where}: expected a {KIND} object, got {type(doc).__name__}")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise InputError(
            f"{where}: expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"apiVersion {doc.get('apiVersion')!r} and kind {doc.get('kind')!r}"
        )
    try:
        return TracingConfig.from_object(doc)
    except ValidationError as err:
        name = (doc.get("metadata") or {}).get("name", "?")
        lines = [f"{where} ({KIND} {name}) is invalid:"]
        seen: set[str] = set()
        for error in err.errors():
            path = _path(error["loc"])
            # A union (quantity: string or integer) reports one error per member; the
            # first one (the string form) is the one that helps.
            if path not in seen:
                seen.add(path)
                lines.append(f"  {path}: {_explain(error)}")
        raise InputError("\n".join(lines)) from err


def _path(loc: tuple[int | str, ...]) -> str:
    """pydantic locations use the input's (camelCase) keys; render them as spec.daemon.udpPort.

    Union and function validators add their own steps (`str`, `function-after[...]`); they
    name no field, so they are dropped.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "constrained-str", "constrained-int") or "[" in part:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _explain(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f" (got {error['input']!r})" if kind not in ("missing", "extra_forbidden") else ""
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{got}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"must be {_PATTERN_HINTS.get(pattern, 'text matching ' + pattern)}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    msg = str(error["msg"])
    return f"{msg[:1].lower()}{msg[1:]}{got}"
