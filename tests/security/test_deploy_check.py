"""Production settings pass Django's deployment checklist, and turn the hardening on."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict:
    # Without what the test run itself sets (the browser tests allow async-unsafe ORM calls).
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE",
                                "TWO_FACTOR_REQUIRED_FOR_HOST", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    environment.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="pp.example.com",
        DJANGO_SETTINGS_MODULE="config.settings",
        **extra,
    )
    return environment


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, env=production_env(), timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_defaults_require_two_factor_and_secure_cookies():
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({name: getattr(settings, name) for name in ["
        "'TWO_FACTOR_REQUIRED_FOR_HOST', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_NAME', 'CSRF_COOKIE_NAME', "
        "'SESSION_COOKIE_AGE', 'SESSION_ABSOLUTE_TIMEOUT', 'AXES_FAILURE_LIMIT']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        env=production_env(), timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "TWO_FACTOR_REQUIRED_FOR_HOST": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_NAME": "__Host-sessionid",
        "CSRF_COOKIE_NAME": "__Host-csrftoken",
        "SESSION_COOKIE_AGE": 1800,
        "SESSION_ABSOLUTE_TIMEOUT": 43200,
        "AXES_FAILURE_LIMIT": 5,
    }


def test_environment_tunes_limits_and_time_outs():
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.AXES_FAILURE_LIMIT, "
        "settings.AXES_COOLOFF_TIME.total_seconds(), settings.SESSION_COOKIE_AGE, "
        "settings.SESSION_ABSOLUTE_TIMEOUT, settings.TWO_FACTOR_REQUIRED_FOR_HOST, "
        "settings.TRUSTED_PROXIES]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env=production_env(LOGIN_FAILURE_LIMIT="3", LOGIN_COOLOFF_MINUTES="60",
                           SESSION_IDLE_MINUTES="10", SESSION_ABSOLUTE_HOURS="8",
                           TWO_FACTOR_REQUIRED_FOR_HOST="false",
                           TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.1"),
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        3, 3600.0, 600, 8 * 3600, False, ["10.0.0.0/8", "192.168.1.1"]]
