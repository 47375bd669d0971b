"""Every write of the program leaves its history and its audit event, whatever path made it.

`every_write_recorded()` watches the saves and deletes of the models that have a change history
(through Django's model signals, in tests only) and, when the block ends, fails unless each
written object has a `ProgramChange` made during the block and the block recorded a
`program_changed` or `program_loaded` audit event. The test suite wraps every request to the
site in it (conftest.py), so every view, admin page and API call of every test is checked; the
tests of the program file and the services wrap their calls in it.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.signals import request_finished, request_started
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from partnerships import models as program

# The models whose every change the program's history records.
HISTORY_MODELS = (
    program.Partner, program.PartnerAssessment, program.KPIDefinition,
    program.KPITemplateItem, program.Agreement, program.AgreementKPI, program.Objective,
    program.IncentivePlan, program.Review, program.ActionItem, program.ProgramSettings,
)
# Models of the partnerships app that are not the program: each has its own record (the
# observation history, the audit log itself, imports, access), checked by their own tests.
OTHER_MODELS = (
    program.MetricObservation, program.ObservationChange, program.ImportBatch,
    program.Membership, program.ApiToken, program.AuditEvent, program.Invitation,
    program.ProgramChange, program.StageTransition, program.ProgramMonth, program.MonthEvent,
    program.Dispute, program.DisputeEvent, program.MailPreference, program.SentMessage,
)
AUDIT_ACTIONS = ("program_changed", "program_loaded")

_state = threading.local()


def _watching() -> list | None:
    return getattr(_state, "writes", None)


def _saved(sender, instance, **_kwargs) -> None:
    writes = _watching()
    if writes is not None:
        writes.append((sender, instance.pk, "saved"))


def _deleted(sender, instance, **_kwargs) -> None:
    writes = _watching()
    if writes is not None:
        writes.append((sender, instance.pk, "deleted"))


def _missing(writes: list, since) -> list[str]:
    if not writes:
        return []
    changes = set(program.ProgramChange.objects.filter(at__gte=since)
                  .values_list("object_type", "object_id"))
    missing = [f"{model.__name__} {pk} {what} without a history row"
               for model, pk, what in dict.fromkeys(writes)
               if (str(model._meta.verbose_name), pk) not in changes]
    if not program.AuditEvent.objects.filter(at__gte=since, action__in=AUDIT_ACTIONS).exists():
        missing.append(f"{len(writes)} write(s) without a program audit event")
    return missing


def _start() -> bool:
    if _watching() is not None:
        return False  # an enclosing block checks these writes
    _state.writes, _state.since = [], timezone.now()
    return True


def _finish() -> list[str]:
    writes, since = _state.writes, _state.since
    _state.writes = None
    return _missing(writes, since)


@contextmanager
def every_write_recorded() -> Iterator[list]:
    """Fail when a program object written inside the block has no history row or audit event."""
    outermost = _start()
    try:
        yield _state.writes
    finally:
        if outermost:
            missing = _finish()
            assert not missing, "; ".join(missing)


def _request_started(**_kwargs) -> None:
    _state.request = _start()


def _request_finished(**_kwargs) -> None:
    if getattr(_state, "request", False):
        _state.request = False
        missing = _finish()
        assert not missing, "A request wrote the program unrecorded: " + "; ".join(missing)


def reset() -> None:
    """Forget what an unfinished request of an earlier test left (a stream never read)."""
    _state.writes, _state.request = None, False


def install() -> None:
    """Watch every model with history, and every request to the site (tests only)."""
    for model in HISTORY_MODELS:
        post_save.connect(_saved, sender=model, dispatch_uid=f"write-guard-save-{model.__name__}")
        post_delete.connect(_deleted, sender=model,
                            dispatch_uid=f"write-guard-delete-{model.__name__}")
    request_started.connect(_request_started, dispatch_uid="write-guard-request-started")
    request_finished.connect(_request_finished, dispatch_uid="write-guard-request-finished")
