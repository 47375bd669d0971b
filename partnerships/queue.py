"""Handing a task to the task queue from a request or a task, within seconds whatever the broker.

`task_publish` queues one task signature at once on a connection of its own that gives up after
CELERY_BROKER_CONNECT_TIMEOUT (connecting and every read or write), with one retry for a
connection a broker restart closed; it raises `TaskQueueUnavailable` rather than hang or fail the
request when the broker is down. Imports and scoring runs both queue through it.
"""

import logging

from django.conf import settings
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)


class TaskQueueUnavailable(RuntimeError):
    """The broker could not be reached in time: the task was not queued."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__("The task queue is unavailable; nothing was started.")


def task_publish(signature) -> None:
    """Queue `signature` now, or raise TaskQueueUnavailable within about two timeouts."""
    app = signature.type.app
    if app.conf.task_always_eager:
        signature.apply_async()  # runs in-process, raising what the task raises
        return
    timeout = settings.CELERY_BROKER_CONNECT_TIMEOUT
    # A connection of its own: the shared pool would retry for as long as the broker settings
    # allow, with the user waiting on the answer.
    connection = app.connection_for_write(
        connect_timeout=timeout,
        transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout,
                           "max_retries": 1, "interval_start": 0, "interval_step": 0.2},
    )
    try:
        with connection:
            signature.apply_async(connection=connection, retry=True, retry_policy={
                "max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                "interval_max": 0.2,
            })
    except (KombuError, OSError) as error:
        logger.warning("Could not queue %s: %s", signature.task, error)
        raise TaskQueueUnavailable(str(error)) from error
