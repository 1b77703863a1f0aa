"""Sandbox responses validate against the schemas of Copper's published OpenAPI (partial) spec."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

DOCS = Path(__file__).resolve().parents[2] / "shared" / "copper-api-docs" / "openapi-partial.txt"
SCHEMA_FOR = {
    "people": "Person",
    "companies": "Company",
    "leads": "Lead",
    "opportunities": "Opportunity",
    "tasks": "Task",
    "activities": "Activity",
}


def to_json_schema(node):
    """OpenAPI 3.0 -> JSON Schema: `nullable` becomes a null type, refs point at $defs.

    The spec's CustomFieldValue uses oneOf over number and integer, which overlap (an integer
    is a number), so oneOf would reject every integer; anyOf is what it means.
    """
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "format")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if node.get("nullable"):
        kind = out.get("type")
        if kind is not None:
            out["type"] = [kind, "null"]
        elif "$ref" in out:
            out = {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
    return out


def documented_nulls() -> set[str]:
    """Properties that Copper's own examples in the developer docs show as null.

    The partial OpenAPI spec marks some of them non-nullable (a person's `address`, a task's
    `related_resource`...); real payloads carry null there, so the examples win.
    """
    text = (DOCS.parent / "developer-docs.txt").read_text()
    return set(re.findall(r'"(\w+)": null', text))


@pytest.fixture(scope="module")
def schemas() -> dict:
    text = DOCS.read_text()
    spec = yaml.safe_load(text[text.index("openapi: 3.0.3") :])
    nullable = documented_nulls()
    for schema in spec["components"]["schemas"].values():
        for name, prop in schema.get("properties", {}).items():
            if name in nullable:
                prop["nullable"] = True
    return to_json_schema(spec["components"]["schemas"])


@pytest.mark.parametrize("entity", sorted(SCHEMA_FOR))
def test_search_results_validate(api, schemas, entity):
    client, _ = api
    rows = client.post(f"/{entity}/search", json={"page_size": 200}).json()
    assert rows
    schema = {"$defs": schemas, "type": "array", "items": {"$ref": f"#/$defs/{SCHEMA_FOR[entity]}"}}
    jsonschema.validate(rows, schema)


def test_errors_validate(api, schemas):
    client, _ = api
    r = client.post("/people/search", json={}, headers={"X-PW-AccessToken": "bad"})
    jsonschema.validate(r.json(), {"$defs": schemas, "$ref": "#/$defs/Error"})


def test_records_look_like_the_documented_examples(api):
    client, _ = api
    person = client.post("/people/search", json={"page_size": 1}).json()[0]
    for key in (
        "emails",
        "phone_numbers",
        "socials",
        "websites",
        "address",
        "tags",
        "custom_fields",
        "date_created",
        "date_modified",
        "company_id",
        "contact_type_id",
    ):
        assert key in person
    lead = client.post("/leads/search", json={"page_size": 200}).json()
    assert any(isinstance(r.get("email"), dict) for r in lead) and "emails" not in lead[0]
    activity = client.post("/activities/search", json={"page_size": 200}).json()
    system = [a for a in activity if a["type"]["category"] == "system"]
    assert system and any(a["old_value"] is not None and a["new_value"] is not None for a in system)
    assert {"parent", "type", "user_id", "activity_date", "details"} <= set(activity[0])
