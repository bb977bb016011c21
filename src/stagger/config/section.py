"""The base of every table in the configuration, in its own module so that section modules
(agent, server, window, ...) and the model that gathers them can all import it without a cycle.

One rule for every table: an unknown key is an error (`extra="forbid"`), a loaded
configuration never changes (`frozen`), and a field with a TOML spelling of its own
(`alias="needs-restarting"`) may also be set by its Python name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from stagger.core.errors import InvalidInput


class Section(BaseModel):
    """Base of every table in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def path_of(self, name: str, root: Path | None) -> Path:
        return path_of(self, name, root)


def path_of(section: BaseModel, name: str, root: Path | None) -> Path:
    """The path in field `name` of `section`: as written when the file set it, else the
    default under `root` (for tests, images and containers). Works for [agent] too."""
    value = Path(str(getattr(section, name)))
    if name in section.model_fields_set or root is None:
        return value
    return root / value.relative_to(value.anchor)


def need_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__} {value!r}")
    return value


def check_http_url(value: str) -> str:
    """A URL stagger sends requests to (a webhook, a blocker): http:// or https:// only."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("url must start with http:// or https://")
    return value
