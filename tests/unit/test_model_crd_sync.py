"""The CRD (master copy) and the pydantic model must agree, or `xray-operator render` and the
operator would accept or default things differently from the API server.

Defaults are compared the way the API server applies them (structural defaulting, nested
defaults inside defaulted objects), and every constraint the CRD states on a spec field
(minimum, maximum, enum, pattern, length) must be stated identically by the model.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from xray_operator.constants import GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from xray_operator.model import NAME_MAX_LENGTH, TracingConfigSpec

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "tracingconfig.yaml"
CONSTRAINTS = ("minimum", "maximum", "enum", "pattern", "maxLength", "minLength",
               "maxProperties", "maxItems")


def crd() -> dict[str, Any]:
    return dict(yaml.safe_load(CRD_FILE.read_text()))


def crd_spec_schema() -> dict[str, Any]:
    version = crd()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server does with `default:` in a structural schema."""
    value = copy.deepcopy(value)
    if isinstance(value, dict):
        for key, prop in schema.get("properties", {}).items():
            if key not in value and "default" in prop:
                value[key] = copy.deepcopy(prop["default"])
            if key in value:
                value[key] = apply_defaults(prop, value[key])
    elif isinstance(value, list) and "items" in schema:
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


def model_schema() -> dict[str, Any]:
    return TracingConfigSpec.model_json_schema(by_alias=True)


def resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref; for Optional[X] (anyOf X|null) and str|int unions merge the members."""
    if "$ref" in node:
        return resolve(defs[node["$ref"].split("/")[-1]], defs)
    if "anyOf" in node:
        merged: dict[str, Any] = {}
        for member in node["anyOf"]:
            if member.get("type") != "null":
                merged.update(resolve(member, defs))
        merged.pop("type", None)
        return merged
    return node


def pairs(
    crd_node: dict[str, Any], model_node: dict[str, Any], defs: dict[str, Any], path: str
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every (path, crd schema, model schema) pair, walking both trees together."""
    model_node = resolve(model_node, defs)
    found = [(path, crd_node, model_node)]
    if "properties" in crd_node:
        crd_props = crd_node["properties"]
        model_props = model_node.get("properties", {})
        assert set(crd_props) == set(model_props), f"{path}: fields differ"
        for key in crd_props:
            found += pairs(crd_props[key], model_props[key], defs, f"{path}.{key}")
    if "items" in crd_node:
        found += pairs(crd_node["items"], model_node["items"], defs, f"{path}[]")
    extra = crd_node.get("additionalProperties")
    if isinstance(extra, dict):
        found += pairs(extra, model_node["additionalProperties"], defs, f"{path}.*")
    return found


def all_pairs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    schema = model_schema()
    return pairs(crd_spec_schema(), schema, schema.get("$defs", {}), "spec")


def test_api_server_defaults_equal_model_defaults() -> None:
    # A spec with only the required field, defaulted as the API server would store it,
    # must be exactly what the model makes of the same input.
    minimal = {"region": "us-east-1"}
    from_crd = apply_defaults(crd_spec_schema(), minimal)
    from_model = TracingConfigSpec.model_validate(minimal).model_dump(exclude_none=True)
    assert from_crd == from_model


def test_defaults_inside_a_partly_given_object_agree() -> None:
    partial = {"region": "us-east-1", "daemon": {"udpPort": 3000}, "iam": {"check": False}}
    from_crd = apply_defaults(crd_spec_schema(), partial)
    from_model = TracingConfigSpec.model_validate(partial).model_dump(exclude_none=True)
    assert from_crd == from_model


def test_every_crd_field_exists_in_the_model_and_back() -> None:
    assert len(all_pairs()) > 30  # the walk itself asserts matching field sets


@pytest.mark.parametrize("item", all_pairs(), ids=lambda p: p[0])
def test_constraints_match(item: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    path, crd_node, model_node = item
    for key in CONSTRAINTS:
        assert crd_node.get(key) == model_node.get(key), f"{path}: {key} differs"


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    # Map values (`.*`) are not fields; kubectl explain shows the map's own description.
    missing = [path for path, node, _ in all_pairs()
               if not node.get("description") and not path.endswith(".*")]
    assert missing == []


def test_required_fields_match() -> None:
    assert crd_spec_schema()["required"] == model_schema()["required"] == ["region"]


def test_crd_names_match_the_constants() -> None:
    doc = crd()
    assert doc["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert doc["spec"]["group"] == GROUP
    names = doc["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (KIND, PLURAL, SINGULAR)
    assert names["shortNames"] == [SHORT_NAME]
    assert [v["name"] for v in doc["spec"]["versions"]] == [VERSION]


def test_name_rule_in_crd_matches_model_limit() -> None:
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rule = root["x-kubernetes-validations"][0]["rule"]
    assert f"size(self.metadata.name) <= {NAME_MAX_LENGTH}" in rule


def test_cel_messages_match_the_model() -> None:
    from xray_operator.model import CEL_MESSAGES

    crd_messages = {r["message"].strip() for r in crd_spec_schema()["x-kubernetes-validations"]}
    assert crd_messages == set(CEL_MESSAGES.values())


def test_printer_columns() -> None:
    columns = crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [c["name"] for c in columns if c.get("priority", 0) == 0]
    assert shown == ["Ready", "Address", "Daemons", "Injected", "IAM", "Age"]
