import pytest

from tests.browser import DESKTOP, launch, playwright_sync_api, watch


@pytest.fixture(scope="session")
def browser():
    with playwright_sync_api().sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors (CSP violations among them), uncaught
    exceptions, failed requests and error answers in `page.problems`."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.problems = watch(page)
    yield page
    context.close()
