"""The real browser for dashboard tests: Debian's Chromium driven by Playwright.

`needs_chromium` marks a test module that needs it; `browser` (one per module) and `page` (a
fresh context per test) are fixtures (this module is a pytest plugin, loaded by conftest)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000

# Under CI (make test installs Chromium) a missing browser is a failure, never a silent skip.
if not Path(CHROMIUM).exists() and os.environ.get("CI"):
    raise RuntimeError(
        "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    )
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)

from playwright import sync_api  # noqa: E402  (a test dependency: installed by make test)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    try:
        yield pg
    finally:
        context.close()
