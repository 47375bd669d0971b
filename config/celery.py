import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("partnership_performance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_stale_connections(task=None, **_kwargs) -> None:
    # A long-lived worker otherwise keeps a connection that a PostgreSQL restart has closed.
    # Tasks run in-process share the caller's connection and transaction: leave those alone.
    if task is not None and task.request.is_eager:
        return
    from django.db import close_old_connections

    close_old_connections()
