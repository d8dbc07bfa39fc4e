"""The public HTTP API described as OpenAPI 3.1 (served at /api/v1/openapi.json).

Owns: the hand-written description of /api/v1/verify/{token},
/api/v1/verify/document, /.well-known/barid/keys.json and /healthz, kept in step
with `gateway.http.app` and the `as_dict` contracts in `gateway.verification.service`.
Must not: import the app (it is data only).
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.verification.service import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_MATCHES
from keys.tokens import MAX_TOKEN_CHARS

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_SHA256: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "A short reason."}},
    },
    "Agency": {
        "type": "object",
        "required": ["code", "name_en", "name_ar"],
        "properties": {
            "code": {"type": "string", "examples": ["MOH"]},
            "name_en": {"type": "string"},
            "name_ar": {"type": "string"},
        },
    },
    "Verdict": {
        "type": "object",
        "description": (
            "What the gateway says about a token. Only `status` and `problem` are set for"
            " a forged token; an unknown (correctly signed, not stored) token also has"
            " `registry`, `issued_at` and `key_id`."
        ),
        "required": [
            "status",
            "problem",
            "registry",
            "agency",
            "issued_at",
            "sender",
            "documents",
            "revoked",
            "key_id",
        ],
        "properties": {
            "status": {"type": "string", "enum": ["valid", "revoked", "unknown", "forged"]},
            "problem": {
                "type": ["string", "null"],
                "enum": ["malformed", "unsupported-version", "unknown-key", "bad-signature", None],
            },
            "registry": {**_NULLABLE_STRING, "examples": ["MOH/2026/000042"]},
            "agency": {"oneOf": [{"$ref": "#/components/schemas/Agency"}, {"type": "null"}]},
            "issued_at": {
                "type": ["string", "null"],
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
            },
            "sender": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["name_en", "name_ar"],
                        "properties": {
                            "name_en": {"type": "string"},
                            "name_ar": {"type": "string"},
                        },
                    },
                    {"type": "null"},
                ]
            },
            "documents": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "sha256"],
                    "properties": {"name": {"type": "string"}, "sha256": _SHA256},
                },
            },
            "revoked": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["at", "reason"],
                        "properties": {"at": _NULLABLE_STRING, "reason": _NULLABLE_STRING},
                    },
                    {"type": "null"},
                ]
            },
            "key_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{16}$"},
        },
    },
    "DocumentVerdict": {
        "type": "object",
        "required": ["status", "sha256", "matches"],
        "properties": {
            "status": {"type": "string", "enum": ["match", "no-match"]},
            "sha256": _SHA256,
            "matches": {
                "type": "array",
                "maxItems": MAX_DOCUMENT_MATCHES,
                "items": {
                    "type": "object",
                    "required": ["registry", "status", "agency"],
                    "properties": {
                        "registry": {"type": "string"},
                        "status": {"type": "string", "enum": ["valid", "revoked"]},
                        "agency": {"$ref": "#/components/schemas/Agency"},
                    },
                },
            },
        },
    },
    "Keys": {
        "type": "object",
        "required": ["keys"],
        "properties": {
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kid", "alg", "public_key", "status"],
                    "properties": {
                        "kid": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                        "alg": {"const": "Ed25519"},
                        "public_key": {
                            "type": "string",
                            "description": "The raw 32-byte public key, base64url without padding.",
                        },
                        "status": {"type": "string", "enum": ["current", "retired"]},
                    },
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": {"type": "string", "enum": ["ok", "unavailable"]},
        },
    },
}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_PATHS: dict[str, Any] = {
    "/api/v1/verify/{token}": {
        "get": {
            "operationId": "verifyToken",
            "summary": "Verify a token: its signature offline, then its stored status.",
            "parameters": [
                {
                    "name": "token",
                    "in": "path",
                    "required": True,
                    "description": "The token as in the verify URL (base32, any letter case).",
                    "schema": {"type": "string", "maxLength": MAX_TOKEN_CHARS},
                }
            ],
            "responses": {
                "200": _json("Verdict", "The verdict, whatever it is."),
                "503": _json("Error", "The database cannot answer now."),
            },
        }
    },
    "/api/v1/verify/document": {
        "post": {
            "operationId": "verifyDocument",
            "summary": "Find the issued messages holding a document with exactly these bytes.",
            "requestBody": {
                "required": True,
                "description": f"The document, at most {MAX_DOCUMENT_BYTES} bytes.",
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "string",
                                    "contentMediaType": "application/octet-stream",
                                }
                            },
                        }
                    },
                },
            },
            "responses": {
                "200": _json("DocumentVerdict", "Match (with registry numbers) or no-match."),
                "400": _json("Error", "Empty body, or a form without a `file`."),
                "413": _json("Error", "The document is too large."),
                "503": _json("Error", "The database cannot answer now."),
            },
        }
    },
    "/.well-known/barid/keys.json": {
        "get": {
            "operationId": "tokenKeys",
            "summary": "The Ed25519 public keys that sign tokens, current and retired.",
            "responses": {"200": _json("Keys", "The keys, by key id.")},
        }
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Liveness and database reachability.",
            "responses": {
                "200": _json("Health", "The gateway and its database answer."),
                "503": _json("Health", "The database does not answer."),
            },
        }
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Barid public verification API",
        "version": "1",
        "description": (
            "Check that an official message was issued by this gateway and is not revoked."
            " Answers disclose only the issuing agency, registry number, issue time, the"
            " documents' names and SHA-256, the sender's name and the status."
        ),
    },
    "paths": _PATHS,
    "components": {"schemas": _SCHEMAS},
}


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the OpenAPI document (callers may change it freely)."""
    return copy.deepcopy(_DOCUMENT)
