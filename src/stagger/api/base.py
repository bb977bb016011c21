"""What every document model shares: the base classes and the one time format."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from stagger.core.text import PLAIN_TEXT, check_operator_text
from stagger.core.times import rfc3339

_INSTANT_SCHEMA = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC (Z)"}

# An instant in a document: read as any RFC 3339 time, written in UTC with `Z`.
Instant = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema(_INSTANT_SCHEMA, mode="serialization"),
]
MaybeInstant = Annotated[
    datetime | None,
    PlainSerializer(
        lambda v: None if v is None else rfc3339(v), return_type=str | None, when_used="json"
    ),
    WithJsonSchema({"anyOf": [_INSTANT_SCHEMA, {"type": "null"}]}, mode="serialization"),
]


class Model(BaseModel):
    """A document stagger writes: frozen, unknown fields ignored when read back (a newer
    server may add fields)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Request(BaseModel):
    """A request body: strict types ("2" is not a number), unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


By = Annotated[
    str | None,
    Field(
        None,
        min_length=1,
        max_length=256,
        json_schema_extra={"pattern": PLAIN_TEXT},
        description="who acts, recorded in history; no control characters",
    ),
    AfterValidator(lambda v: None if v is None else check_operator_text(v, "by")),
]
