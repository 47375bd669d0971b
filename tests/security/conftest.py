"""Helpers for the security tests: log-in by form from a given address, TOTP codes."""

import time
from base64 import b32decode

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

ADDRESS = "203.0.113.5"
OTHER_ADDRESS = "198.51.100.7"


def log_in(client, username: str, password: str, address: str = ADDRESS, **extra):
    """POST the log-in form as a browser at `address` would (REMOTE_ADDR)."""
    return client.post(
        reverse("login"), {"username": username, "password": password},
        REMOTE_ADDR=address, **extra,
    )


def totp_code(key: bytes, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows for `key` now (or `steps_ahead` periods later)."""
    totp = TOTP(key, step=30, digits=6)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def secret_key(page_text_secret: str) -> bytes:
    """The TOTP key from the grouped base32 secret shown on the set-up page."""
    return b32decode(page_text_secret.replace(" ", ""))


def wrong_code(key: bytes) -> str:
    """A six-digit code that no step in the accepted window produces."""
    accepted = {totp_code(key, steps_ahead=step) for step in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


def confirmed_device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


@pytest.fixture
def two_factor_on(settings):
    settings.TWO_FACTOR_REQUIRED_FOR_HOST = True
    return settings
