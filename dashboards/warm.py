"""The warm-up: what the pages keep of a published run (dashboards/cache.py), computed as soon
as the run is published.

The pages compute these on first need and keep them; a beat task (dashboards/tasks.py) computes
those of the run's latest month right after each run instead (the portfolio's figures and rows,
every agreement's scorecards, KPI scores and objective actuals, the tier cut-offs, the
reconciliation's disagreements), so that the first user to open a page in the morning does not
wait for them. Reads selectors only: no view.
"""

from partnerships.models import Agreement
from scoring.models import ScoringRun

from .program.overdue import current_tiers
from .program.progress import objective_actuals_kept
from .selectors.agreement import agreement_kpi_scores_kept, agreement_scorecards_kept
from .selectors.months import month_default, month_states, trend_window
from .selectors.portfolio import portfolio_figures_kept, portfolio_overview, row_cards_kept
from .selectors.reconciliation import month_disagreements, reconciliation_month_default
from .selectors.runs import tier_cutoffs_kept

# Agreements per query of their scores.
CHUNK = 200


def run_pages_warm(*, run: ScoringRun) -> int:
    """Keep what the portfolio and the agreement dashboards show for the run's last month;
    return the number of agreements kept."""
    month = run.last_period
    if not month:
        return 0
    agreements = Agreement.objects.all()
    overview = portfolio_overview(agreements=agreements)
    portfolio_figures_kept(agreements=agreements, run=run, month=month,
                           total=overview["total"], last_id=overview["last_id"],
                           active=overview["active"])
    # The overdue counts follow every change: the beat task keeps them on each turn.
    current_tiers(run=run)
    tier_cutoffs_kept(run=run, period=month)
    # The disagreements of the month the reconciliation page opens on, and of the month the
    # portfolio and the dashboards count them for.
    for shown in {reconciliation_month_default(run.periods, month_states()),
                  month_default(run.periods)}:
        month_disagreements(run=run, month=shown)
    ids = list(agreements.order_by("pk").values_list("pk", flat=True))
    window = trend_window(month)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        row_cards_kept(run=run, period=month, ids=chunk)
        agreement_scorecards_kept(run=run, ids=chunk)
        agreement_kpi_scores_kept(run=run, ids=chunk, period=month, trend_periods=window)
        objective_actuals_kept(run=run, ids=chunk)
    return len(ids)
