"""Error pages are the product's own: navigation where there is a user, and what to do next."""

import pytest
from django.test import Client

from partnerships.models import Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_a_host_manager_refused_a_users_page_gets_the_reason_and_the_navigation(host_manager):
    client = Client()
    client.force_login(host_manager)
    response = client.get("/access/users/")

    assert response.status_code == 403
    page = response.text
    assert "You may not open this page" in page
    assert "Only host admins manage users" in page
    assert 'aria-label="Main"' in page and 'href="/portfolio/"' in page
    assert "Go to your start page" in page


def test_an_unknown_page_is_a_404_with_the_navigation(acme_viewer):
    client = Client()
    client.force_login(acme_viewer)
    response = client.get("/agreements/NO-SUCH-CODE/")

    assert response.status_code == 404
    assert "There is nothing here" in response.text
    assert "NO-SUCH-CODE" not in response.text  # the same page for another partner's code
    assert 'aria-label="Main"' in response.text


def test_an_anonymous_404_offers_the_log_in():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert 'href="/login/"' in response.text


def test_a_server_error_shows_the_products_page_without_details(settings, django_user_model):
    settings.ROOT_URLCONF = "tests.dashboards.error_urls"
    client = Client(raise_request_exception=False)
    client.force_login(make_user(django_user_model, "admin", Role.HOST_ADMIN))
    response = client.get("/test-failure/")

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "RuntimeError" not in response.text and "a failure for the test" not in response.text
    assert "css/app.css" in response.text
