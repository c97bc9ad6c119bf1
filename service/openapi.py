"""The OpenAPI document, written by hand because the app is plain ASGI (FastAPI's
per-request validation cost more than the whole request budget; see README.md)."""
from __future__ import annotations

from service.tables import MAX_ID

_ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
_ERROR = {"description": "what was wrong and what to do",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_LISTEN = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Listen"}}}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _user_param() -> list:
    return [{"name": "user", "in": "path", "required": True, "schema": _ID}]


def _errors(*codes: str) -> dict:
    return {code: _ERROR for code in codes}


DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "botify", "version": "1.0",
             "description": "Next-track recommendations; every answered /next and /last is logged."},
    "paths": {
        "/": {"get": {"summary": "Alive", "operationId": "alive",
                      "responses": {"200": _json({"type": "object"}, "the service is up")}}},
        "/track/{track}": {"get": {
            "summary": "A track's catalog record", "operationId": "track",
            "parameters": [{"name": "track", "in": "path", "required": True, "schema": _ID}],
            "responses": {"200": _json({"$ref": "#/components/schemas/Track"}, "the record"),
                          **_errors("404", "422")}}},
        "/next/{user}": {"post": {
            "summary": "Recommend the next track", "operationId": "next",
            "parameters": _user_param(), "requestBody": _LISTEN,
            "responses": {"200": _json({"$ref": "#/components/schemas/Recommendation"}, "the next track"),
                          **_errors("400", "413", "422")}}},
        "/last/{user}": {"post": {
            "summary": "End the user's session", "operationId": "last",
            "parameters": _user_param(), "requestBody": _LISTEN,
            "responses": {"200": _json({"$ref": "#/components/schemas/User"}, "session closed"),
                          **_errors("400", "413", "422")}}},
        "/admin/reload": {"post": {
            "summary": "Reload the experiments config and tables (needs the admin token)",
            "operationId": "reload",
            "parameters": [{"name": "X-Admin-Token", "in": "header", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object"}, "new tables in service"),
                          **_errors("403", "404", "422")}}},
    },
    "components": {"schemas": {
        "Listen": {"type": "object", "required": ["track", "time"], "additionalProperties": False,
                   "properties": {"track": _ID,
                                  "time": {"type": "number", "minimum": 0, "maximum": 1}}},
        "Recommendation": {"type": "object", "required": ["user", "track"],
                           "properties": {"user": _ID, "track": _ID}},
        "User": {"type": "object", "required": ["user"], "properties": {"user": _ID}},
        "Track": {"type": "object", "required": ["track", "artist"],
                  "properties": {"track": _ID, "artist": {"type": "string"}, "title": {"type": "string"}}},
        "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
    }},
}
