"""Settings come from the environment; production refuses to start without a secret key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import database_from_url, env_bool

ROOT = Path(__file__).resolve().parents[1]


def load_settings(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL",
                                "REDIS_CACHE_URL"}}
    environment.update(env)
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({'debug': settings.DEBUG, 'engine': settings.DATABASES['default']"
        "['ENGINE'], 'eager': settings.CELERY_TASK_ALWAYS_EAGER, 'tz': settings.TIME_ZONE, "
        "'hosts': settings.ALLOWED_HOSTS, 'name': str(settings.DATABASES['default']['NAME']), "
        "'broker': settings.CELERY_BROKER_URL, "
        "'cache': settings.CACHES['default'].get('LOCATION', 'in-process')}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        env={**environment, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )


def test_defaults_run_locally_with_sqlite_and_in_process_tasks():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert '"engine": "django.db.backends.sqlite3"' in result.stdout
    assert '"eager": true' in result.stdout
    assert '"debug": true' in result.stdout
    assert "db.sqlite3" in result.stdout


def test_production_without_secret_key_refuses_to_start():
    result = load_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_environment_sets_database_redis_hosts_and_time_zone():
    result = load_settings(
        DEBUG="false", SECRET_KEY="s" * 50, DATABASE_URL="postgres://u:p@db:5433/pp",
        REDIS_URL="redis://cache:6379/0", ALLOWED_HOSTS="pp.example.com, www.example.com",
        TIME_ZONE="Europe/Berlin",
    )
    assert result.returncode == 0, result.stderr
    assert '"engine": "django.db.backends.postgresql"' in result.stdout
    assert '"eager": false' in result.stdout
    assert '"hosts": ["pp.example.com", "www.example.com"]' in result.stdout
    assert '"tz": "Europe/Berlin"' in result.stdout
    assert '"broker": "redis://cache:6379/0"' in result.stdout
    assert '"cache": "redis://cache:6379/0"' in result.stdout  # no REDIS_CACHE_URL


def test_the_cache_may_have_a_redis_database_of_its_own():
    result = load_settings(REDIS_URL="redis://cache:6379/0",
                           REDIS_CACHE_URL="redis://cache:6379/1")
    assert result.returncode == 0, result.stderr
    assert '"broker": "redis://cache:6379/0"' in result.stdout
    assert '"cache": "redis://cache:6379/1"' in result.stdout
    assert '"cache": "in-process"' in load_settings().stdout


def test_database_url_parts():
    db = database_from_url("postgres://user:p%40ss@db.example.com:6543/partners?sslmode=require")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "user", "p@ss", "db.example.com", "6543", "partners"
    )
    assert db["OPTIONS"] == {"sslmode": "require"}
    assert db["CONN_HEALTH_CHECKS"] is True
    assert database_from_url("sqlite:////var/pp/db.sqlite3")["NAME"] == "/var/pp/db.sqlite3"


def test_unknown_database_scheme_is_an_error():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="mysql"):
        database_from_url("mysql://x@y/z")


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("Yes", True)])
def test_env_bool_reads_common_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env_bool("SOME_FLAG", not expected) is expected


def test_env_bool_rejects_nonsense(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env_bool("SOME_FLAG", True)


def test_a_management_command_prints_no_log_in_throttling_banner():
    # `make demo` runs five commands; each printed "AXES: BEGIN ..." before.
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT,
                            capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    assert "AXES" not in result.stdout + result.stderr
