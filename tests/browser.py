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


def watch(page, *, javascript: bool = True) -> list[str]:
    """Record console errors (CSP violations among them), uncaught exceptions, failed requests
    and error responses of this page; and, after every navigation and before every screenshot,
    what `audit` finds (axe-core's serious and critical violations, a page wider than a phone).
    Without JavaScript in the page axe-core cannot run (its timers never fire): the width is
    still checked."""
    problems = []
    audit_after_navigation(page, problems, accessibility=javascript)
    page.on("console", lambda message: message.type == "error"
            and problems.append(f"console: {message.text}"))
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on("requestfailed", lambda request: problems.append(
        f"request failed: {request.url} {request.failure}"))
    page.on("response", lambda response: response.status >= 400
            and problems.append(f"HTTP {response.status}: {response.url}"))
    return problems


def log_in(page, live_server, username: str, password: str) -> None:
    """Sign in through the log-in page, as a person would, and land on the home page."""
    page.goto(live_server.url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live_server.url + "/")


def horizontal_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


# axe-core's impact levels that fail a test; "moderate" and "minor" are left to review.
AXE_FAILING_IMPACTS = frozenset({"serious", "critical"})
# Up to this width a page is laid out for a phone (app.css: max-width 40rem).
PHONE_LAYOUT_MAX_WIDTH = 640


def accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each: rule,
    impact, where, and the first elements concerned. axe-core comes bundled with
    axe-playwright-python and is injected through the DevTools protocol, which the page's CSP
    does not govern."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page).response
    return [
        f"axe: {violation['id']} ({violation['impact']}) at {page.url} "
        f"{page.viewport_size['width']} px: {violation['help']} — "
        + "; ".join(" ".join(node["target"]) for node in violation["nodes"][:3])
        for violation in results["violations"]
        if violation["impact"] in AXE_FAILING_IMPACTS
    ]


def audit(page, *, accessibility: bool = True) -> list[str]:
    """What is wrong with the page as shown now: axe-core's serious and critical violations and,
    at a phone's width, a page wider than the window."""
    found = accessibility_violations(page) if accessibility else []
    width = page.viewport_size["width"]
    if width <= PHONE_LAYOUT_MAX_WIDTH:
        overflow = horizontal_overflow(page)
        if overflow > 0:
            found.append(f"wider than the window: {page.url} is {overflow} px too wide at "
                         f"{width} px")
    return found


def audit_after_navigation(page, problems: list[str], *, accessibility: bool = True) -> None:
    """Audit the page after each `goto`, `reload` and `wait_for_url` (how every browser test
    reaches a page) and before each screenshot, adding what is found to `problems` (once per
    address, width and document). Wrapping the page's own methods means every test's pages are
    audited without the tests saying so."""
    from playwright.sync_api import Error

    seen = set()

    def check() -> None:
        try:
            page.wait_for_load_state()
            state = (page.url, page.viewport_size["width"],
                     page.evaluate("document.documentElement.outerHTML.length"))
            if state in seen:
                return
            seen.add(state)
            problems.extend(audit(page, accessibility=accessibility))
        except Error as error:
            # The page went on to another document while it was audited (a redirect, a form
            # posted by the test): that one is audited when it is reached.
            if "context was destroyed" not in str(error) and "navigation" not in str(error):
                raise

    def audited(method, *, before: bool = False):
        def call(*args, **kwargs):
            if before:
                check()
                return method(*args, **kwargs)
            result = method(*args, **kwargs)
            check()
            return result
        return call

    page.goto = audited(page.goto)
    page.reload = audited(page.reload)
    page.wait_for_url = audited(page.wait_for_url)
    page.screenshot = audited(page.screenshot, before=True)


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
                    page.problems = watch(page, javascript=javascript)
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
