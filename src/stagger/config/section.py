"""The base of every table in the configuration, in its own module so that section modules
(agent, server, ...) and the model that gathers them can all import it without a cycle."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every table in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
