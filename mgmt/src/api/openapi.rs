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
    let bad_query = err("a query parameter is invalid; the field names it");
    let unavailable = err("this box has no event log, debug conditions or capture");
    let condition = json!({
        "type": "object", "required": ["peer"], "additionalProperties": false,
        "properties": {
            "peer": {"type": "string", "description": "the peer's NBMA or overlay address"},
            "what": {"type": "array", "items": {"type": "string", "enum": ["nhrp", "ike", "esp"]},
                     "description": "what to trace of the peer (all three when left out)"}
        }
    });
    let conditions = json!({"description": "the conditions in force", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"conditions": {"type": "array", "items": condition}}}}}});
    let event = json!({
        "type": "object", "required": ["seq", "time", "t_ms", "kind", "event"],
        "properties": {
            "seq": {"type": "integer"}, "time": {"type": "string", "description": "UTC, RFC 3339, milliseconds"},
            "t_ms": {"type": "integer"}, "kind": {"type": "string", "enum": ["event", "debug"]},
            "event": {"type": "string"}, "facility": {"type": "string", "enum": ["nhrp", "ike", "esp"]},
            "peer": {"type": "string"}, "nbma": {"type": "string"}, "tunnel": {"type": "string"},
            "reason": {"type": "string"}
        },
        "additionalProperties": true
    });
    let capture_spec = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "peer": {"type": "string", "description": "the peer's NBMA address"},
            "port": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}], "description": "interface name or port id"},
            "tunnel": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}], "description": "tunnel name or id"},
            "points": {"type": "array", "items": {"type": "string", "enum": ["rx", "decrypted", "pre-encrypt", "tx"]}},
            "packets": {"type": "integer", "minimum": 1, "maximum": crate::capture::MAX_PACKETS},
            "bytes": {"type": "integer", "minimum": 1, "maximum": crate::capture::MAX_BYTES},
            "seconds": {"type": "integer", "minimum": 1, "maximum": crate::capture::MAX_SECONDS}
        }
    });
    let capture_status = json!({"description": "the capture's state", "content": {"application/json": {"schema": {
    "type": "object", "properties": {
        "state": {"type": "string", "enum": ["idle", "running", "done"]}, "id": {"type": "integer"},
        "spec": {"type": "object", "nullable": true}, "started": {"type": "string", "nullable": true},
        "elapsed_ms": {"type": "integer"}, "packets": {"type": "integer"}, "bytes": {"type": "integer"},
        "lost": {"type": "integer"}, "stopped_by": {"type": "string", "nullable": true},
        "pcap_bytes": {"type": "integer"}
    }}}}});
    let views = ["dmvpn", "nhrp", "nhrp-nhs", "ikev2-sa", "ipsec-sa", "interfaces", "routes", "counters"];
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "DMVPN hub appliance",
            "version": "1",
            "description": "Configuration, operational views, actions, metrics, events, per-peer debug and packet capture of a DMVPN hub or spoke."
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
            "/api/v1/events": {"get": {
                "summary": "Recent events (peer, NHS, IKE SA up and down) or conditional debug lines, oldest first (read-only)",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "only entries with a greater seq"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000}, "description": "at most this many (the newest)"},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["event", "debug"]}}
                ],
                "responses": with(json!({
                    "200": {"description": "the entries", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {
                            "events": {"type": "array", "items": event}, "last_seq": {"type": "integer"},
                            "dropped": {"type": "integer", "description": "entries pushed out of the ring"}}}}}},
                    "422": bad_query.clone(),
                    "503": unavailable.clone()
                }))
            }},
            "/api/v1/events/stream": {"get": {
                "summary": "Server-Sent Events: every event and conditional debug line as it happens (read-only)",
                "description": "Each message has `id:` (the seq), `event:` (`event`, `debug`, or `lost` with how many a slow client missed) and `data:` (the entry's JSON). `since` or `Last-Event-ID` first replays the rings' newer entries.",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}
                ],
                "responses": with(json!({
                    "200": {"description": "the stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "422": bad_query,
                    "503": unavailable.clone()
                }))
            }},
            "/api/v1/debug/conditions": {
                "get": {
                    "summary": "The per-peer debug conditions (operator)",
                    "responses": with(json!({"200": conditions.clone(), "503": unavailable.clone()}))
                },
                "put": {
                    "summary": "Trace one peer's NHRP, IKE or ESP events (debug ... condition peer; operator)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": condition}}},
                    "responses": with(json!({
                        "200": conditions.clone(),
                        "400": err("the body does not parse"),
                        "409": err("too many conditions"),
                        "422": err("the condition is invalid; each problem names its field"),
                        "503": unavailable.clone()
                    }))
                },
                "delete": {
                    "summary": "Remove every debug condition (undebug all; operator)",
                    "responses": with(json!({
                        "200": {"description": "removed", "content": {"application/json": {"schema": {
                            "type": "object", "properties": {"removed": {"type": "integer"}}}}}},
                        "503": unavailable.clone()
                    }))
                }
            },
            "/api/v1/debug/conditions/{peer}": {"delete": {
                "summary": "Remove the debug condition on one peer (operator)",
                "parameters": [{"name": "peer", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": with(json!({
                    "200": conditions,
                    "404": err("no condition on that peer"),
                    "422": err("not an address"),
                    "503": unavailable.clone()
                }))
            }},
            "/api/v1/capture": {
                "get": {
                    "summary": "The packet capture's state (operator)",
                    "responses": with(json!({"200": capture_status.clone(), "503": unavailable.clone()}))
                },
                "post": {
                    "summary": "Start a packet capture of a port, a tunnel or a peer, bounded by packets, bytes or seconds (operator)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": capture_spec}}},
                    "responses": with(json!({
                        "201": capture_status.clone(),
                        "400": err("the body does not parse"),
                        "409": err("a capture is running"),
                        "422": err("the capture is invalid; each problem names its field"),
                        "503": unavailable.clone()
                    }))
                }
            },
            "/api/v1/capture/stop": {"post": {
                "summary": "Stop the running capture (its pcap stays; operator)",
                "responses": with(json!({
                    "200": capture_status,
                    "409": err("no capture is running"),
                    "503": unavailable.clone()
                }))
            }},
            "/api/v1/capture/pcap": {"get": {
                "summary": "The last capture's packets as a pcap file (nanosecond timestamps, Ethernet; operator)",
                "responses": with(json!({
                    "200": {"description": "the pcap", "content": {"application/vnd.tcpdump.pcap": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": err("no capture has run"),
                    "503": unavailable
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
