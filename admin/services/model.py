"""The base of every service input and output type.

Owns: `Frozen`, an immutable pydantic model: the same types are the admin API's
request and response bodies, so their JSON schema comes from here. Must not:
hold any use case.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)
