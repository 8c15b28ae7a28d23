"""The OpenAPI 3.1 description of ``/api/v1``, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from dnsbl import __version__


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


_ERRORS = {"400": _error("bad input; 'field' names the field at fault"),
           "401": _error("no token, or an unknown, expired or revoked one"),
           "403": _error("a read-only token writing, or a source the token may not write"),
           "413": _error("body too large"), "429": _error("rate limited (see Retry-After)"),
           "503": _error("the ledger is busy with another writer; try again after "
                         "Retry-After seconds")}
_KEY = {"name": "key", "in": "path", "required": True,
        "description": "an address or CIDR (10.0.0.0/24)", "schema": {"type": "string"}}
_JSON = "application/json"


def _query(name: str, text: str, integer: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": text,
            "schema": {"type": "integer" if integer else "string"}}


#: One page of results: at most 1000 (api.MAX_RESULTS), from ``offset``.
_PAGE = [_query("limit", "at most this many (1-1000; default 1000)", True),
         _query("offset", "skip this many: the previous page's next_offset", True)]


def _ok(text: str) -> dict[str, Any]:
    return {"description": text, "content": {_JSON: {"schema": {"type": "object"}}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "dnsbl ledger API", "version": __version__,
             "description": "Listings of the reputation ledger. Every request needs "
                            "'Authorization: Bearer TOKEN' (`dnsbl ledger token create`)."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "status"], "properties": {
                "error": {"type": "string"}, "status": {"type": "integer"},
                "field": {"type": "string"}}},
            "Listing": {"type": "object", "required": ["key", "category", "reason"],
                        "additionalProperties": False, "properties": {
                            "key": {"type": "string", "example": "192.0.2.7"},
                            "category": {"type": "string", "example": "spam"},
                            "source": {"type": "string",
                                       "description": "default: the token's one source"},
                            "reason": {"type": "string", "maxLength": 255},
                            "expires": {"type": "string",
                                        "description": "7d or a date; default: the "
                                                       "category's lifetime"},
                            "seen": {"type": "string", "description": "when the evidence "
                                                                      "is from; default now"},
                            "ref": {"type": "string"},
                            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
                            "force": {"type": "boolean"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/listings": {
            "get": {"summary": "search live listings (all=1: removed and expired too), "
                               "one page: listings, count, offset, next_offset (null after "
                               "the last page)",
                    "parameters": [*[{"name": n, "in": "query", "schema": {"type": "string"}}
                                     for n in ("category", "source", "expiring_within",
                                               "added_since", "all")], *_PAGE],
                    "responses": {"200": _ok("listings"), **_ERRORS}},
            "post": {"summary": "list a key, or extend the listing of the same key, "
                                "category and source",
                     "requestBody": {"required": True, "content": {_JSON: {"schema": {
                         "$ref": "#/components/schemas/Listing"}}}},
                     "responses": {"201": _ok("listed"), "200": _ok("extended"),
                                   "409": _error("removed after the evidence was seen"),
                                   **_ERRORS}}},
        "/api/v1/listings/bulk": {
            "post": {"summary": "many listings, one JSON object a line (NDJSON); all or "
                                "nothing",
                     "requestBody": {"required": True, "content": {
                         "application/x-ndjson": {"schema": {"type": "string"}}}},
                     "responses": {"200": _ok("merged counts"), **_ERRORS}}},
        "/api/v1/listings/{key}": {
            "get": {"summary": "every listing around KEY, live or not, with its history "
                               "and sightings; one page of listings (next_offset)",
                    "parameters": [_KEY, *_PAGE],
                    "responses": {"200": _ok("listings and history"),
                                  "404": _error("never listed"), **_ERRORS}},
            "delete": {"summary": "end KEY's live listings from the token's sources",
                       "parameters": [_KEY],
                       "requestBody": {"required": True, "content": {_JSON: {"schema": {
                           "type": "object", "required": ["reason"], "properties": {
                               "reason": {"type": "string"}, "category": {"type": "string"},
                               "source": {"type": "string"}}}}}},
                       "responses": {"200": _ok("what was removed"),
                                     "404": _error("nothing live to remove"), **_ERRORS}}},
        "/api/v1/changes": {
            "get": {"summary": "recent changes (the audit), newest first, one page; the "
                               "next page: before=next_before (null after the last)",
                    "parameters": [_query("limit", "at most this many (1-1000; default 100)",
                                          True),
                                   _query("before", "only changes older than this id: the "
                                                    "previous page's next_before", True)],
                    "responses": {"200": _ok("changes"), **_ERRORS}}},
        "/api/v1/requests": {
            "get": {"summary": "removal requests (state=pending|approved|rejected|all)",
                    "responses": {"200": _ok("requests"), **_ERRORS}}},
        "/api/v1/requests/{id}/{verdict}": {
            "post": {"summary": "approve (removes the listing, the request as the reason) "
                                "or reject a pending removal request",
                     "parameters": [
                         {"name": "id", "in": "path", "required": True,
                          "schema": {"type": "integer"}},
                         {"name": "verdict", "in": "path", "required": True,
                          "schema": {"enum": ["approve", "reject"]}}],
                     "responses": {"200": _ok("decided"), "404": _error("none pending"),
                                   **_ERRORS}}},
    },
}
