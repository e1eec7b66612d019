"""`GET /api/v1/openapi.json`: the gateway's OpenAPI document, as OpenRouter publishes its own.

Litestar generates the routes it serves itself; the chat route (our own ASGI I/O) is described
here by hand, and every error response points at the one error envelope. Built once, on the
first request, from a schema-only Litestar app over the same handlers (never served).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from litestar import Litestar, Response, get
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from gateway.chat.controller import CHAT_PATHS
from gateway.json_encoding import encode

OPENAPI_PATHS = ["/api/v1/openapi.json", "/v1/openapi.json"]
TITLE = "llm-routing-gateway"
VERSION = "1.0.0"
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ERROR_STATUSES = ("400", "401", "402", "403", "404", "408", "413", "429", "502", "503")

_NUMBER_OR_STRING = {"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
_NAMES = {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
_PERCENTILES = {
    "oneOf": [
        _NUMBER_OR_STRING,
        {
            "type": "object",
            "properties": {p: _NUMBER_OR_STRING for p in ("p50", "p75", "p90", "p99")},
        },
    ]
}

SCHEMAS: dict[str, Any] = {
    "ErrorResponse": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "integer", "description": "the HTTP status"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "metadata": {"type": "object", "additionalProperties": True},
                },
            }
        },
    },
    "ProviderPreferences": {
        "type": "object",
        "description": "OpenRouter's provider preferences; null means not set, numbers may be "
        "numeric strings, fields without effect are listed in the routing explanation.",
        "additionalProperties": True,
        "properties": {
            "order": _NAMES,
            "only": _NAMES,
            "ignore": _NAMES,
            "quantizations": _NAMES,
            "allow_fallbacks": {"type": ["boolean", "null"]},
            "require_parameters": {"type": ["boolean", "null"]},
            "zdr": {"type": ["boolean", "null"]},
            "enforce_distillable_text": {"type": ["boolean", "null"]},
            "data_collection": {"enum": ["allow", "deny", None]},
            "sort": {
                "oneOf": [
                    {"enum": ["price", "throughput", "latency", "exacto", None]},
                    {
                        "type": "object",
                        "properties": {
                            "by": {"enum": ["price", "throughput", "latency", "exacto", None]},
                            "partition": {"enum": ["model", "none", None]},
                        },
                    },
                ]
            },
            "max_price": {
                "type": ["object", "null"],
                "properties": {
                    k: _NUMBER_OR_STRING
                    for k in ("prompt", "completion", "request", "image", "audio")
                },
            },
            "preferred_min_throughput": _PERCENTILES,
            "preferred_max_latency": _PERCENTILES,
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["messages"],
        "additionalProperties": True,
        "description": "OpenAI's chat completion request with OpenRouter's routing fields; "
        "fields the gateway doesn't know are passed to the upstream.",
        "properties": {
            "model": {"type": "string", "example": "openai/gpt-oss-20b"},
            "models": {"type": "array", "items": {"type": "string"}},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role"],
                    "properties": {"role": {"type": "string"}},
                    "additionalProperties": True,
                },
            },
            "stream": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "provider": {"$ref": "#/components/schemas/ProviderPreferences"},
            "route": {"enum": ["fallback", "sort", None]},
            "transforms": {"type": "array", "maxItems": 0, "items": {"type": "string"}},
            "reasoning": {
                "type": "object",
                "properties": {
                    "effort": {"type": "string"},
                    "max_tokens": {"type": "integer"},
                    "exclude": {"type": "boolean"},
                    "enabled": {"type": "boolean"},
                },
            },
            "user": {"type": "string", "maxLength": 256},
            "session_id": {"type": "string", "maxLength": 256},
            "debug": {"type": "object", "properties": {"route": {"type": "boolean"}}},
        },
    },
    "ChatCompletion": {
        "type": "object",
        "additionalProperties": True,
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "model": {"type": "string"},
            "provider": {"type": "string"},
            "choices": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": "object", "additionalProperties": True},
        },
    },
}


def _chat_operation(path: str) -> dict[str, Any]:
    errors = {status: _error_response() for status in ERROR_STATUSES}
    return {
        "post": {
            "summary": "Chat completion (OpenAI-compatible, routed)",
            "operationId": "ChatCompletions" + ("Api" if path.startswith("/api") else "V1"),
            "parameters": [
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                for name in ("x-session-id", "x-route-explain", "http-referer", "x-title")
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The answer; with `stream: true` an SSE stream of chunks, "
                    "`: processing` comments while waiting, and `data: [DONE]`.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ChatCompletion"}
                        },
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **errors,
            },
        }
    }


def _error_response() -> dict[str, Any]:
    return {
        "description": "An error in the gateway's one error envelope",
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def build_document(
    handlers: Sequence[ControllerRouterHandler], dependencies: Mapping[str, Any]
) -> dict[str, Any]:
    """The document for `handlers` (the app's own, less the chat route) plus the chat route."""
    schema_app = Litestar(
        route_handlers=list(handlers),
        dependencies=dict(dependencies),
        openapi_config=OpenAPIConfig(title=TITLE, version=VERSION),
    )
    document: dict[str, Any] = schema_app.openapi_schema.to_schema()
    paths: dict[str, Any] = document.setdefault("paths", {})
    for path in [p for p in paths if p.startswith("/schema")]:
        del paths[path]
    for item in paths.values():
        for operation in item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not isinstance(responses, dict):
                continue
            for status in list(responses):
                if status[:1] in ("4", "5"):
                    responses[status] = _error_response()
    for path in CHAT_PATHS:
        paths[path] = _chat_operation(path)
    document.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    return document


def openapi_route(
    handlers: Sequence[ControllerRouterHandler], dependencies: Mapping[str, Any]
) -> Any:
    """The `GET /api/v1/openapi.json` handler for an app serving `handlers`."""
    built: list[bytes] = []

    @get(OPENAPI_PATHS, sync_to_thread=False, include_in_schema=False)
    def openapi_json() -> Response[bytes]:
        if not built:
            built.append(encode(build_document(handlers, dependencies)))
        return Response(built[0], media_type="application/json")

    return openapi_json
