"""End-to-end journeys: a real Chromium (Debian's, headless, driven by Playwright) against pytest-django's live server.

Each journey logs in through the login form, drives the pages like a user, and saves a full-page screenshot of
every page it visits under $PARLANCE_E2E_SCREENSHOTS (default var/e2e-screenshots/<journey>/<nn>-<page>.png).
A journey fails on any uncaught JavaScript error, console error or HTTP 5xx response.
"""

import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.workers import ROOT, app_broker_env, celery_worker, purge_app_queues, require_redis

REQUIRE_SERVICES = os.environ.get("PARLANCE_REQUIRE_SERVICES") == "1"
PASSWORD = "pw-for-tests-only"  # what make_user gives every test user
DEFAULT_TIMEOUT_MS = 20_000


def _unavailable(message: str):
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def screenshots_root() -> Path:
    return Path(os.environ.get("PARLANCE_E2E_SCREENSHOTS") or ROOT / "var" / "e2e-screenshots")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system (PARLANCE_CHROMIUM, default /usr/bin/chromium); Playwright downloads none."""
    executable = os.environ.get("PARLANCE_CHROMIUM", "/usr/bin/chromium")
    if not os.access(executable, os.X_OK):
        _unavailable(f"no Chromium at {executable} (set PARLANCE_CHROMIUM, or apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed: {exc}")
    # Playwright's sync API keeps an asyncio loop running in this thread while it is started, which makes Django
    # refuse ORM calls from the test body ("async context"); the test code is plain synchronous code, so allow
    # them, for this module only (Playwright stops, and the variable is restored, when the module ends).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            # Containers often have a small /dev/shm, which crashes Chromium on long pages.
            chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                                  args=["--disable-dev-shm-usage"])
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Journey:
    """One user's walk through the site in its own browser context: logs in, snaps every page, collects errors."""

    def __init__(self, *, name: str, context, base_url: str):
        self.name, self.context, self.base_url = name, context, base_url
        self.page = context.new_page()
        self.errors: list[str] = []
        self.shots: list[Path] = []
        self.started = time.monotonic()
        self.folder = screenshots_root() / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.page.on("pageerror", lambda error: self.errors.append(f"JavaScript error on {self.page.url}: {error}"))
        self.page.on("console", self._console)
        self.page.on("response", self._response)

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console error on {self.page.url}: {message.text}")

    def _response(self, response):
        if response.status >= 500:
            self.errors.append(f"HTTP {response.status} from {response.request.method} {response.url}")

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str, snap: str | None = None):
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"GET {path} answered {response and response.status}"
        if snap:
            self.snap(snap)
        return response

    def login(self, username: str, password: str = PASSWORD) -> None:
        """Log in through the real login form."""
        self.goto("/accounts/login/", snap="login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(lambda url: "/accounts/login/" not in url)
        assert username in self.page.locator(".whoami").inner_text()
        self.snap("home")

    def snap(self, page_name: str) -> Path:
        """Save a full-page screenshot of what the user sees now, and fail early on any error seen so far."""
        self.page.wait_for_load_state("load")
        self.folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", page_name.lower()).strip("-")
        path = self.folder / f"{len(self.shots) + 1:02d}-{slug}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        print(f"[{time.monotonic() - self.started:6.1f}s] {path.name}: {self.page.url}")
        self.check()
        return path

    def see_heading(self, name) -> None:
        """Wait for a heading (a name or a pattern); on a timeout, report the browser's errors first."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.get_by_role("heading", name=name).first.wait_for()
        except PlaywrightTimeout:
            self.check()
            raise
        self.check()

    def check(self) -> None:
        assert not self.errors, "the browser saw errors:\n" + "\n".join(self.errors)


@pytest.fixture
def journey(browser, live_server, request):
    """Start a journey named after the test module (test_analyst.py: "analyst")."""
    contexts = []

    def _start(name: str | None = None) -> Journey:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        name = name or request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        return Journey(name=name, context=context, base_url=live_server.url)

    yield _start
    for context in contexts:
        context.close()


@pytest.fixture
def ml_worker(mlcore_home, tmp_path):
    """Start a real Celery worker (queues default and ml) against the live server's test database."""

    @contextmanager
    def _start(**extra_env):
        from core.celery import app

        if app.conf.broker_url.startswith("redis"):
            require_redis(app.conf.broker_url)
        purge_app_queues()
        env = {**app_broker_env(), "MLCORE_HOME": str(mlcore_home), **extra_env}
        with celery_worker(broker_url=env["CELERY_BROKER_URL"], queues="default,ml", extra_env=env,
                           log_dir=tmp_path) as worker:
            yield worker

    return _start


@pytest.fixture(scope="session")
def tiny_lm_dir(tiny_lm_dir, tmp_path_factory):
    """The tests' tiny Llama made 64 layers deep for the journeys: the 2-layer one writes 200 tokens in ~0.1 s,
    faster than a page polls (700 ms), so no page could show the text growing; this one takes ~2-3 s, like a
    real model writing a short passage. Same tokenizer, vocabulary and chat template."""
    from transformers import AutoTokenizer

    from tests.conftest import save_tiny_llama

    path = tmp_path_factory.mktemp("tiny-lm-deep")
    # The shallow one's tokenizer (pytest passes the parent fixture).
    save_tiny_llama(path, AutoTokenizer.from_pretrained(tiny_lm_dir), hidden_size=64, layers=64)
    return path
