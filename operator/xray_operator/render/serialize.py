"""YAML/JSON text of rendered objects, for `xray-operator render` and the golden files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so cfg.yaml reads as a file in the ConfigMap."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    """A multi-document stream in the order given; keys keep the builders' order."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def to_json(objects: Sequence[dict[str, Any]]) -> str:
    """A v1 List, which `kubectl apply -f` accepts like a multi-document YAML file."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}, indent=2) + "\n"
