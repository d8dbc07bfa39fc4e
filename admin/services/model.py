"""The base of every service input and output type.

Owns: `Frozen`, an immutable pydantic model: the same types are the admin API's
request and response bodies, so their JSON schema comes from here; and
`Existing`, the mark of an answer to a safe retry (the object existed already,
nothing was written). Must not: hold any use case.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Existing:
    """Mixed into a result type for the answer of a retry with `existing_ok`: the
    object existed already exactly as asked, and nothing was written or audited.
    The fields are the result's own; an API answers 200 instead of 201 for it."""
