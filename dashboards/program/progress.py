"""Progress of objectives, measured from the published scores of their linked KPI.

The rule lives in `scoring.objectives` (its docstring states it); this module reads what it
needs: three queries whatever the number of objectives: the run, the agreement KPIs, the scores
(the run's scores are read once per run, then from the cache).
"""

import datetime as dt
import math
from collections.abc import Iterable

from django.utils import timezone

from partnerships.models import AgreementKPI, Objective
from scoring.models import KPIScore, ScoringRun
from scoring.objectives import ObjectiveProgress, objective_progress

from ..cache import run_cached_each


def _latest_actuals_of_each(*, run: ScoringRun, ids: list[int]) -> dict[int, dict]:
    """For each agreement: the latest month with an actual value, and the value, of each of
    its KPIs ({kpi id: (month, actual)}). One query."""
    result: dict[int, dict] = {pk: {} for pk in ids}
    # Oldest month first: the last one written for a KPI is its latest month.
    for agreement_id, kpi_id, period, actual in (
            KPIScore.objects.of_run(run).filter(agreement_id__in=ids, actual__isnull=False)
            .order_by("period").values_list("agreement_id", "kpi_id", "period", "actual")):
        # Runs before non-finite actuals were refused may hold ±inf: that month has no value.
        if math.isfinite(actual):
            result[agreement_id][kpi_id] = (period, actual)
    return result


def objective_actuals_kept(*, run: ScoringRun, ids: list[int]) -> dict[int, dict]:
    """`_latest_actuals_of_each`, read once per run, then from the cache."""
    return run_cached_each(run=run, name="objective-actuals", ids=ids,
                           compute=lambda missing: _latest_actuals_of_each(run=run,
                                                                           ids=missing))


def objectives_progress(*, objectives: Iterable[Objective], run: ScoringRun | None = None,
                        today: dt.date | None = None) -> list[ObjectiveProgress]:
    """Progress of each objective towards its target value from its linked KPI's latest
    scored monthly actual (see the module's docstring for the rule); in the given order.

    `run` defaults to the published run; objectives need `agreement` loaded or loadable
    (select_related("agreement", "kpi") keeps it to three queries)."""
    objectives = list(objectives)
    today = today or timezone.localdate()
    if run is None:
        run = ScoringRun.objects.current()
    linked = [item for item in objectives if item.kpi_id is not None]
    agreement_ids = {item.agreement_id for item in linked}
    kpi_ids = {item.kpi_id for item in linked}
    agreement_kpis: dict[tuple[int, int], AgreementKPI] = {}
    latest: dict[tuple[int, int], tuple[str, float]] = {}
    if linked:
        agreement_kpis = {
            (row.agreement_id, row.kpi_id): row
            # Only what the rule reads (the direction and the floor).
            for row in AgreementKPI.objects.filter(agreement_id__in=agreement_ids,
                                                   kpi_id__in=kpi_ids)
            .only("agreement_id", "kpi_id", "target", "floor")
        }
    if linked and run is not None:
        # The run's scores never change: read once per run.
        for agreement_id, actuals in objective_actuals_kept(
                run=run, ids=sorted(agreement_ids)).items():
            latest.update({(agreement_id, kpi_id): found for kpi_id, found in actuals.items()})

    return [
        objective_progress(
            objective=objective, today=today,
            agreement_kpi=agreement_kpis.get((objective.agreement_id, objective.kpi_id)),
            latest=latest.get((objective.agreement_id, objective.kpi_id)))
        for objective in objectives
    ]
