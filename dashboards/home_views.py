"""The home page: what the user's side has, and what it owes (its overdue actions)."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import render

from partnerships.access import agreements_for, disputes_for, membership_of
from partnerships.models import Stage
from scoring.attention import REASON_LABELS, REASONS
from scoring.models import ScoringRun

from .charts import agreements_by_stage_figure
from .http import HtmxHttpRequest
from .program.overdue import home_overdue_actions, upcoming_reviews
from .selectors.attention import attention_worklist
from .selectors.disputes import disputes_open_count
from .selectors.months import month_default
from .selectors.portfolio import portfolio_rows

# Agreements linked on a host's home page; the portfolio lists them all.
HOME_LINKS = 20


def _attention_counts(request: HtmxHttpRequest, agreements, *, run) -> dict:
    mine = agreements.filter(owner=request.user)
    scope = "mine" if membership_of(request.user).is_host and mine.exists() else "all"
    worklist = attention_worklist(agreements=mine if scope == "mine" else agreements, run=run)
    counts = worklist.counts()
    return {"total": len(worklist.rows), "scope": scope, "checked": worklist.checked,
            "reasons": [(reason, REASON_LABELS[reason], counts[reason])
                        for reason in REASONS if counts[reason]]}


@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    agreements = agreements_for(user=request.user)
    counts = dict(agreements.order_by().values_list("stage").annotate(n=Count("id")))
    total = sum(counts.values())
    membership = membership_of(request.user)
    context = {
        "agreement_count": total,
        "active_count": counts.get(Stage.ACTIVE, 0),
        "stage_figure": agreements_by_stage_figure(counts=counts) if total else None,
        # The overdue actions the user's own side owns (dashboards/program/overdue.py).
        "overdue_actions": home_overdue_actions(user=request.user) if total else None,
    }
    run = ScoringRun.objects.current() if total else None
    if total:
        # What needs attention (the worklist's counts): a host manager's own agreements when
        # they own some, else everyone's; a partner's users their own.
        context["attention"] = _attention_counts(request, agreements, run=run)
    if membership is not None and not membership.is_host and total:
        # A partner's users see each of their own agreements as a card: the numbers of the
        # month a page opens on (the latest that has ended), the same stored values as every
        # other page.
        month = month_default(run.periods) if run is not None else ""
        context.update(partner_home=True, run=run, month=month, agreement_cards=portfolio_rows(
            agreements=agreements, run=run, period=month))
        # The reviews planned with the host, the soonest first (dashboards/program/overdue.py).
        context["upcoming_reviews"] = upcoming_reviews(user=request.user)
        # Their agreements' open disputes, whichever side opened them.
        context["open_disputes"] = disputes_open_count(
            disputes=disputes_for(user=request.user))
    else:
        # Links to the agreement dashboards; the host has the portfolio page for more.
        context["agreement_links"] = list(
            agreements.select_related("partner").order_by("code")[:HOME_LINKS]) if total else []
    return render(request, "dashboards/home.html", context)
