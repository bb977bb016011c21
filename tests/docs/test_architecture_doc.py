"""docs/architecture.md embeds the node cycle's diagram: it must be what the code draws."""

from __future__ import annotations

import re
from pathlib import Path

from stagger.core.cycle.diagram import diagram

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_embedded_diagram_is_what_explain_draws() -> None:
    found = re.search(r"```mermaid\n(.*?)```", DOC.read_text(), re.S)
    assert found is not None, "docs/architecture.md has no mermaid block"
    assert found.group(1) == diagram("mermaid"), (
        "the diagram in docs/architecture.md is out of date: paste the output of "
        "`stagger explain --diagram mermaid` into it"
    )


def test_every_file_the_page_names_exists() -> None:
    src = DOC.parents[1] / "src" / "stagger"
    for name in re.findall(
        r"`((?:core|backends|server|agent|config|cli)/[\w/]+(?:\.py|/))`", DOC.read_text()
    ):
        assert (src / name).exists(), f"docs/architecture.md names {name}, which is not there"
