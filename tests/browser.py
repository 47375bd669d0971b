"""What every browser test shares: Debian's Chromium driven by Playwright, never a downloaded
browser; skipped without it, except on CI where a missing browser is a failure."""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in its thread; Django refuses ORM calls from a
# thread with a running loop unless told this is safe (it is: the loop is Playwright's).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SHOTS = Path("/tmp/pp-shots")
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update",
]


def playwright_sync_api():
    """playwright.sync_api, or skip (fail on CI) when Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return pytest.importorskip("playwright.sync_api")


def launch(playwright):
    SHOTS.mkdir(exist_ok=True)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


def watch(page) -> list[str]:
    """Record console errors (CSP violations among them), uncaught exceptions, failed requests
    and error responses of this page."""
    problems = []
    page.on("console", lambda message: message.type == "error"
            and problems.append(f"console: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on("requestfailed", lambda request: problems.append(
        f"request failed: {request.url} {request.failure}"))
    page.on("response", lambda response: response.status >= 400
            and problems.append(f"HTTP {response.status}: {response.url}"))
    return problems


def horizontal_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def run_in_browser(scenario, *, viewport: dict = DESKTOP, javascript: bool = True):
    """Play `scenario(page)` in a fresh Chromium on a thread of its own and return its result.

    Playwright's sync API refuses to start in a thread whose event loop runs, and the session
    browser of tests/dashboards may hold the main thread's; a new thread has none. `page.problems`
    records what `watch` records. What the scenario raises is raised here. The thread's
    database connections (the scenario's own queries) are closed before it ends, so the
    test's flush is not kept waiting."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    sync_api = playwright_sync_api()

    def run():
        try:
            with sync_api.sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    context = browser.new_context(viewport=viewport,
                                                  java_script_enabled=javascript)
                    page = context.new_page()
                    page.problems = watch(page)
                    return scenario(page)
                finally:
                    # Queries made in Playwright's callbacks ran in its context: close there.
                    connections.close_all()
                    browser.close()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright") as pool:
        return pool.submit(run).result()


def postgresql_only_mark():
    """For browser tests that query the database while the page still talks to the server:
    SQLite's in-memory test database is one connection shared by the live server's thread and
    the test's, which SQLite refuses to serve from two threads at once. CI runs PostgreSQL."""
    from django.db import connection

    return pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (set DATABASE_URL=postgres://...): the scenario queries the "
               "database while the live server answers",
    )
