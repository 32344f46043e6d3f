"""A real browser (Debian's Chromium, driven by Playwright) on a served instance.

Chromium is started as the machine's notes say it runs here: headless, no sandbox (root), no
GPU, and none of its background connections (this machine's network refuses them). Every
page a test opens reports its console errors and uncaught exceptions; a test fails on any it
did not expect.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

CHROMIUM = os.environ.get("DICOM_FS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def expect_error(self, fragment: str) -> None:
        """A console error containing ``fragment`` is part of what the test does."""
        self.expected.append(fragment)

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(f in e for f in self.expected)]


# Module-scoped: Playwright's sync API keeps an event loop running in the main thread while it
# is open, and tests elsewhere that call asyncio.run() must not find it there.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def watch(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Watched:
    """A new page in a context of its own, recording console errors and page errors."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
    return watched


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Watched]:
    watched = watch(browser)
    yield watched
    watched.page.context.close()
    assert watched.unexpected_errors() == []
