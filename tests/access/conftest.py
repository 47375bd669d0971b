"""Access-management cast on top of the shared one: a host admin and an acme editor."""

import pytest
from django.conf import settings
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from partnerships.models import Role
from tests.conftest import make_user


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin-ann", Role.HOST_ADMIN)


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


@pytest.fixture
def host_admin_client(host_admin):
    """The host admin's browser; separate from `client`, which plays the other person."""
    admin = Client()
    admin.force_login(host_admin)
    return admin


def csrf_client(user=None) -> Client:
    """A client that checks CSRF, holding the token cookie as a browser would after a page."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    request = RequestFactory().get("/")
    token = get_token(request)
    client.cookies[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
    client.csrf_token = token
    return client
