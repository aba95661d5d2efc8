//! The OpenAPI 3.0 document of the REST API. The schemas of the configuration and of the actions are
//! generated from the same types the API parses with (`schemars` follows their serde attributes), so the
//! document cannot drift from the code; `mgmt/openapi.json` is the checked-in copy, compared with this in
//! a test.

use schemars::gen::SchemaSettings;
use serde_json::{json, Value};

use super::Action;
use crate::config::Config;

/// The document.
pub fn document() -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let config = gen.subschema_for::<Config>();
    let action = gen.subschema_for::<Action>();
    let mut schemas = serde_json::to_value(gen.definitions()).unwrap_or_default();
    if let Value::Object(map) = &mut schemas {
        map.insert(
            "Error".into(),
            json!({
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "fields": {"type": "array", "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}}
                    }}
                }
            }),
        );
    }
    let err = |what: &str| json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let auth = json!({
        "401": err("missing or unknown bearer token"),
        "403": err("the token's role may not do this"),
    });
    let with = |extra: Value| {
        let mut r = auth.clone();
        if let (Value::Object(r), Value::Object(extra)) = (&mut r, extra) {
            r.extend(extra);
        }
        r
    };
    let views = ["dmvpn", "nhrp", "nhrp-nhs", "ikev2-sa", "ipsec-sa", "interfaces", "routes", "counters"];
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "DMVPN hub appliance",
            "version": "1",
            "description": "Configuration, operational views, actions and metrics of a DMVPN hub or spoke."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "the document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }},
            "/api/v1/config": {
                "get": {
                    "summary": "The configuration in force (read-only)",
                    "responses": with(json!({"200": {
                        "description": "the configuration; ETag is its revision",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": config}}
                    }}))
                },
                "put": {
                    "summary": "Replace the configuration (admin)",
                    "parameters": [{"name": "If-Match", "in": "header", "required": true, "schema": {"type": "string"},
                                    "description": "the ETag of the configuration the change was made against"}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": config}}},
                    "responses": with(json!({
                        "200": {"description": "applied and persisted", "content": {"application/json": {"schema": {
                            "type": "object", "properties": {"revision": {"type": "string"}}}}}},
                        "400": err("the body does not parse; the field's path says where"),
                        "409": err("the change needs a restart of dmvpnd (the message names the first field); nothing changed"),
                        "412": err("the configuration changed since the If-Match revision"),
                        "422": err("the configuration is invalid; every problem with its field's path"),
                        "428": err("If-Match is missing")
                    }))
                }
            },
            "/api/v1/config/validate": {"post": {
                "summary": "Validate a configuration without applying it (operator)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": config}}},
                "responses": with(json!({
                    "200": {"description": "valid", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"valid": {"type": "boolean"}}}}}},
                    "400": err("the body does not parse"),
                    "422": err("the configuration is invalid")
                }))
            }},
            "/api/v1/views/{view}": {"get": {
                "summary": "An operational view, as the IOS show command of the same name (read-only)",
                "description": "dmvpn: show dmvpn (peer NBMA, tunnel address, state, up/down time, attributes); nhrp: show ip nhrp (created, expires, flags, NAT); nhrp-nhs: show ip nhrp nhs detail (requests, replies, failures, state); ikev2-sa: show crypto ikev2 sa (algorithms, lifetime left, CHILD SAs); ipsec-sa: show crypto ipsec sa (SPIs, lifetime left, ESP totals, replay drops); interfaces: addresses, state and port counters; routes: connected, static and NHRP routes per VRF; counters: per layer (nbma, ipsec, gre, overlay, system) with drops by reason.",
                "parameters": [{"name": "view", "in": "path", "required": true, "schema": {"type": "string", "enum": views}}],
                "responses": with(json!({
                    "200": {"description": "the view", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "404": err("no such view"),
                    "500": err("the box's control loop did not answer")
                }))
            }},
            "/api/v1/actions": {"post": {
                "summary": "Clear NHRP entries, a peer or an IKE SA; drain the hub (operator)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": action}}},
                "responses": with(json!({
                    "200": {"description": "done", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"done": {"type": "string"}}}}}},
                    "400": err("not an action"),
                    "404": err("the action names something that does not exist (the message names the field)"),
                    "409": err("the action cannot be done now"),
                    "500": err("the box's control loop did not answer")
                }))
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (read-only)",
                "responses": with(json!({"200": {"description": "text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}))
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        }
    })
}
