"""Request bodies that are text: a policy or a case table, sent as text/plain or JSON.

Owns: reading such a body (`text/plain` as UTF-8, or `application/json` as
`{"text": ...}`), its size cap, and the OpenAPI description of both forms.
Must not: interpret the text. Failure behaviour: a body that is not UTF-8, not
the JSON object described, of another media type, or over the cap is a 415/422
problem; nothing is read further.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field, ValidationError

from admin.api.problems import ApiProblem

MAX_TEXT_BYTES = 1024 * 1024


class TextBody(BaseModel):
    text: str = Field(max_length=MAX_TEXT_BYTES)


def text_body_openapi(what: str) -> dict[str, Any]:
    """`openapi_extra` for a route whose body is read by `read_text`."""
    return {
        "requestBody": {
            "required": True,
            "description": f'{what}: as text/plain (UTF-8), or JSON {{"text": ...}}',
            "content": {
                "text/plain": {"schema": {"type": "string", "maxLength": MAX_TEXT_BYTES}},
                "application/json": {"schema": TextBody.model_json_schema()},
            },
        }
    }


def _invalid(message: str) -> ApiProblem:
    return ApiProblem(
        422, "Unprocessable Content", message, kind="invalid-request",
        errors=[{"field": "body", "message": message}],
    )  # fmt: skip


async def read_text(request: Request) -> str:
    """The body's text (see the module docstring)."""
    raw = await request.body()
    if len(raw) > MAX_TEXT_BYTES:
        raise _invalid(f"the text is larger than {MAX_TEXT_BYTES} bytes")
    media = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("the body is not UTF-8 text") from None
    if media == "text/plain":
        return decoded
    if media != "application/json":
        raise ApiProblem(
            415, "Unsupported Media Type", "send text/plain or application/json",
            kind="unsupported-media-type",
        )  # fmt: skip
    try:
        return TextBody.model_validate(json.loads(decoded)).text
    except (ValueError, ValidationError):
        raise _invalid('the JSON body must be an object {"text": "..."}') from None
