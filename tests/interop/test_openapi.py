"""The REST API's checked-in OpenAPI document (mgmt/openapi.json, which a Rust test keeps equal to the one
the daemon serves) is valid OpenAPI 3.0, as an independent validator (openapi-spec-validator) reads it."""

import json
import pathlib

from openapi_spec_validator import validate

DOC = pathlib.Path(__file__).resolve().parents[2] / "mgmt" / "openapi.json"


def test_openapi_document_is_valid():
    doc = json.loads(DOC.read_text())
    validate(doc)
    assert doc["openapi"].startswith("3.0")
    assert {"/api/v1/config", "/api/v1/config/validate", "/api/v1/views/{view}", "/api/v1/actions", "/metrics"} <= set(
        doc["paths"]
    )
