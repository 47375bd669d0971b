"""Celery beat's schedule names tasks the workers know."""

import importlib

from django.conf import settings


def test_every_scheduled_task_is_registered():
    from config.celery import app

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "dashboards.tasks.pages_warm" in tasks
    for task in tasks:
        importlib.import_module(task.rsplit(".", 1)[0])  # as the worker's autodiscovery does
        assert task in app.tasks, task
