"""The OpenAPI 3.0 document of the command API, served at ``/api/v1/openapi.json``.

Built from the same command table the validator uses (``spec.SPECS``) and from the live settings
(``max_wait``), so the document cannot promise what the server refuses. A schemathesis run in the
tests holds the server to it.
"""

from __future__ import annotations

from typing import Any, Final

from exporter import __version__
from exporter.commands.record import Outcome, Status
from exporter.commands.settings import CommandSettings
from exporter.commands.spec import SPECS, CommandSpec, Param
from exporter.providers.base import COMMANDS

MAX_LIMIT: Final = 100
_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _param_schema(p: Param) -> dict[str, Any]:
    s: dict[str, Any]
    if p.kind == "choice":
        s = {"type": "string", "enum": list(p.choices)}
    else:
        s = {"type": p.kind}
        if p.minimum is not None:
            s["minimum"] = p.minimum
        if p.maximum is not None:
            s["maximum"] = p.maximum
    s["description"] = p.help + (f" ({p.unit})" if p.unit else "")
    if p.default is not None:
        s["default"] = p.default
    return s


def _command_schema(spec: CommandSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "description": spec.summary,
        "required": ["command", *(p.name for p in spec.params if p.required)],
        "properties": {
            "command": {"type": "string", "enum": [spec.name]},
            **{p.name: _param_schema(p) for p in spec.params},
        },
        "additionalProperties": False,
    }


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        out["headers"] = headers
    return out


_RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Seconds until a command will be accepted again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_AUTH_ERRORS: Final = {
    "401": _error(
        "Missing or unknown bearer token.",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "404": _error("Unknown vehicle or command, or the API is disabled (no token configured)."),
}


def _schemas() -> dict[str, Any]:
    nullable_num = {"type": "number", "nullable": True}
    return {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "Machine-readable error code."},
                "message": {"type": "string", "description": "What is wrong, for humans."},
                "retry_after": {"type": "integer", "minimum": 1},
                "parameter": {"type": "string"},
                "supported": {"type": "array", "items": {"type": "string"}},
                "commands": {"type": "array", "items": {"type": "string"}},
                "command_id": {"type": "string"},
            },
        },
        "CommandRequest": {
            "description": "A command and its parameters. Unknown parameters are refused.",
            "oneOf": [_ref(f"Command_{name}") for name in COMMANDS],
        },
        **{f"Command_{name}": _command_schema(SPECS[name]) for name in COMMANDS},
        "CommandRecord": {
            "type": "object",
            "required": [
                "id",
                "vin",
                "command",
                "parameters",
                "status",
                "outcome",
                "detail",
                "requested_at",
                "cloud",
            ],
            "properties": {
                "id": {"type": "string"},
                "vin": {"type": "string"},
                "provider": {"type": "string"},
                "command": {"type": "string", "enum": list(COMMANDS)},
                "parameters": {"type": "object"},
                "caller": {"type": "string", "description": "Name of the token that sent it."},
                "status": {"type": "string", "enum": [str(s) for s in Status]},
                "outcome": {
                    "type": "string",
                    "nullable": True,
                    "enum": [*(str(o) for o in Outcome), None],
                    "description": "Final outcome; null while pending or sent. verified: a car "
                    "report after the command shows the expected state; accepted: the cloud took "
                    "it and no report can show the effect; not_verified: the state was not seen in "
                    "time; rejected: refused by the cloud or car; failed: could not be sent; "
                    "timeout: no answer while sending.",
                },
                "detail": {"type": "string"},
                "expected": {"type": "string"},
                "requested_at": {"type": "number", "description": "Unix seconds."},
                "sent_at": nullable_num,
                "finished_at": nullable_num,
                "cloud": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "boolean", "nullable": True},
                        "reply": {"type": "string"},
                        "id": {"type": "string"},
                    },
                },
                "links": {"type": "object"},
            },
        },
        "CommandList": {
            "type": "object",
            "required": ["commands"],
            "properties": {"commands": {"type": "array", "items": _ref("CommandRecord")}},
        },
        "Vehicle": {
            "type": "object",
            "required": ["vin", "provider", "supported_commands"],
            "properties": {
                "vin": {"type": "string"},
                "provider": {"type": "string"},
                "account": {"type": "string"},
                "make": {"type": "string"},
                "model": {"type": "string"},
                "year": {"type": "string"},
                "supported_commands": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(COMMANDS)},
                },
                "last_report": {
                    "type": "number",
                    "nullable": True,
                    "description": "Unix time of the car's latest report.",
                },
            },
        },
        "VehicleList": {
            "type": "object",
            "required": ["vehicles"],
            "properties": {"vehicles": {"type": "array", "items": _ref("Vehicle")}},
        },
    }


def document(settings: CommandSettings) -> dict[str, Any]:
    vin = {
        "name": "vin",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    examples = {
        name: {"value": {"command": name, **{p.name: p.default for p in spec.params if p.default}}}
        for name, spec in SPECS.items()
    }
    examples["charge_limit"] = {"value": {"command": "charge_limit", "percent": 80}}
    examples["seat_heating"] = {
        "value": {"command": "seat_heating", "seat": "front_left", "level": 2}
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "carmetrics command API",
            "version": __version__,
            "description": "Send commands to connected cars and learn whether the car did it. A "
            "command is accepted with 202 and a command id; the exporter then re-reads the "
            "vehicle and records whether the expected state was reached.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/api/v1/vehicles": {
                "get": {
                    "operationId": "listVehicles",
                    "summary": "Vehicles and the commands each supports (read access).",
                    "responses": {
                        "200": {
                            "description": "The vehicles.",
                            "content": {"application/json": {"schema": _ref("VehicleList")}},
                        },
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/v1/vehicles/{vin}/commands": {
                "parameters": [vin],
                "post": {
                    "operationId": "sendCommand",
                    "summary": "Send a command (command access). Returns at once with its id.",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "A retried request with the same key (and body) gets "
                            "the first request's command back and sends nothing.",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 255,
                                "pattern": "^[ -~]+$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": _ref("CommandRequest"),
                                "examples": examples,
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted; poll the Location for the outcome.",
                            "headers": {
                                "Location": {"schema": {"type": "string"}},
                                "Idempotent-Replayed": {
                                    "description": "true when this answers a repeated key.",
                                    "schema": {"type": "string", "enum": ["true", "false"]},
                                },
                            },
                            "content": {"application/json": {"schema": _ref("CommandRecord")}},
                            "links": {
                                "GetCommand": {
                                    "operationId": "getCommand",
                                    "parameters": {"id": "$response.body#/id"},
                                    "description": "The command's outcome.",
                                }
                            },
                        },
                        "400": _error("The body is not a JSON object, or a bad header."),
                        **_AUTH_ERRORS,
                        "403": _error("The token may read but not command."),
                        "422": _error(
                            "Unknown command, bad or unknown parameter, command not supported by "
                            "this vehicle (the error lists the supported ones), or an "
                            "Idempotency-Key reused for a different request. Nothing was sent."
                        ),
                        "429": _error(
                            "Per-vehicle cooldown or the global rate limit. Nothing was sent.",
                            _RETRY_AFTER,
                        ),
                    },
                },
                "get": {
                    "operationId": "listCommands",
                    "summary": "Recent commands of a vehicle, newest first (read access).",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_LIMIT,
                                "default": 20,
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The commands.",
                            "content": {"application/json": {"schema": _ref("CommandList")}},
                        },
                        "400": _error("Bad limit."),
                        **_AUTH_ERRORS,
                    },
                },
            },
            "/api/v1/commands/{id}": {
                "get": {
                    "operationId": "getCommand",
                    "summary": "A command and its outcome (read access).",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1},
                        },
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "description": "Block up to this many seconds until the outcome is "
                            "known.",
                            "schema": {
                                "type": "number",
                                "minimum": 0,
                                "maximum": settings.max_wait,
                                "default": 0,
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The command as it stands.",
                            "content": {"application/json": {"schema": _ref("CommandRecord")}},
                        },
                        "400": _error("Bad wait."),
                        **_AUTH_ERRORS,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }
