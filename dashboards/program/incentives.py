"""The incentive plan of an agreement (DOMAIN.md § Incentives): create, edit, remove.

Host pages: partner users get 404; host managers and admins edit. The page states the payout
formula in words and works an example from the plan's current values (and, when the agreement
has been scored, from its latest scored month).
"""

from decimal import Decimal

import numpy as np
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from dashboards.templatetags.numbers import money_text
from partnerships.access import host_required, manager_required
from partnerships.history import history_record, history_snapshot
from partnerships.models import Agreement, ChangeKind, IncentivePlan, Tier
from scoring import rules
from scoring.models import Scorecard, ScoringRun

from ..confirm import Confirmation, confirmation_page, confirmed
from ..selectors import one_decimal
from ..views import HtmxHttpRequest, agreement_visible, redirect_after_change
from .kpi_forms import IncentivePlanForm
from .kpis import partial_or_page, validating, validation_response

EXAMPLE_OVERALL = 90.0


def incentive_payout(*, plan: IncentivePlan, overall: float | None, rolling: float | None,
                     tier: str, complete: bool) -> float:
    """The payout of one month under `plan`, by the scoring rules' own `payout` (DOMAIN.md §
    Incentives): `base × multiplier(tier) × min(overall, 120) / 100` when the scorecard is
    complete, the agreement has a tier and the rolling score is at least the baseline B."""
    if overall is None or rolling is None:
        return 0.0
    multipliers = {
        Tier.TRANSACTIONAL: plan.multiplier_transactional, Tier.GROWTH: plan.multiplier_growth,
        Tier.STRATEGIC: plan.multiplier_strategic,
    }
    amount = rules.payout(
        overall=np.array([overall], dtype=float), rolling=np.array([rolling], dtype=float),
        complete=np.array([bool(complete)]),
        tier=np.array([rules.TIERS.index(tier) if tier in rules.TIERS else -1]),
        base_amount=np.array([float(plan.base_amount)]),
        baseline=np.array([float(plan.baseline_score)]),
        multipliers=np.array([[float(multipliers[name]) for name in rules.TIERS]]),
    )
    return float(amount[0])


def _money(amount: float | Decimal, currency: str) -> str:
    return f"{money_text(amount)} {currency}"


def _examples(plan: IncentivePlan, agreement: Agreement) -> dict:
    rolling = max(plan.baseline_score, 75.0)
    tiers = []
    for tier, label, multiplier in (
            (Tier.TRANSACTIONAL, "transactional", plan.multiplier_transactional),
            (Tier.GROWTH, "growth", plan.multiplier_growth),
            (Tier.STRATEGIC, "strategic", plan.multiplier_strategic)):
        payout = incentive_payout(plan=plan, overall=EXAMPLE_OVERALL, rolling=rolling,
                                  tier=tier, complete=True)
        tiers.append({
            "tier": tier, "label": label, "multiplier": f"{multiplier.normalize():f}",
            "payout": _money(payout, plan.currency),
        })
    latest = None
    run = ScoringRun.objects.current()
    if run is not None:
        card = (Scorecard.objects.filter(run=run, agreement=agreement, has_scorecard=True)
                .order_by("-period").first())
        if card is not None:
            payout = incentive_payout(plan=plan, overall=card.overall, rolling=card.rolling,
                                      tier=card.tier, complete=not card.incomplete)
            reasons = []
            if card.incomplete:
                reasons.append("the scorecard is incomplete")
            if not card.tier:
                reasons.append("the agreement has no tier yet")
            if card.rolling is None:
                reasons.append("the rolling score is not defined yet")
            elif card.rolling < plan.baseline_score:
                reasons.append(f"the rolling score {one_decimal(card.rolling)} is below "
                               f"the baseline {plan.baseline_score:g}")
            latest = {"card": card, "overall": one_decimal(card.overall),
                      "rolling": one_decimal(card.rolling),
                      "payout": _money(payout, plan.currency), "reasons": reasons}
    return {
        "example_overall": f"{EXAMPLE_OVERALL:g}", "example_rolling": f"{rolling:g}",
        "base": _money(plan.base_amount, plan.currency), "tiers": tiers, "latest": latest,
    }


def _page(request: HtmxHttpRequest, agreement: Agreement, plan: IncentivePlan | None,
          form: IncentivePlanForm, *, whole: bool = False) -> HttpResponse:
    shown = plan
    if form.is_bound and form.is_valid():
        shown = form.instance  # the example follows the values being typed
    context = {
        "agreement": agreement, "plan": plan, "form": form, "section": "incentives",
        "examples": _examples(shown, agreement) if shown is not None else None,
        "action": reverse("program_incentive_plan", args=[agreement.code]),
    }
    return partial_or_page(request, "program/incentives/plan.html", "plan-panel", context,
                           whole=whole)


@host_required
def incentive_plan(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """GET: the plan (or a form to create one); POST (host managers): save it."""
    agreement = agreement_visible(request=request, code=code)
    plan = IncentivePlan.objects.filter(agreement=agreement).first()
    if request.method != "POST":
        form = IncentivePlanForm(instance=plan or IncentivePlan(agreement=agreement))
        return _page(request, agreement, plan, form, whole=True)
    return _plan_save(request, agreement, plan)


@manager_required
def _plan_save(request: HtmxHttpRequest, agreement: Agreement,
               plan: IncentivePlan | None) -> HttpResponse:
    before = history_snapshot(plan) if plan else None
    form = IncentivePlanForm(request.POST, instance=plan or IncentivePlan(agreement=agreement))
    valid = form.is_valid()
    if validating(request):
        # The example follows the values being typed (when they are valid).
        shown = form.instance if valid else plan
        formula = render_to_string("program/incentives/plan.html#plan-formula", {
            "examples": _examples(shown, agreement) if shown is not None else None,
            "oob": True}, request=request)
        return validation_response(request, form, extra=mark_safe(formula))
    if not valid:
        return _page(request, agreement, plan, form)
    with transaction.atomic():
        saved = form.save()
        history_record(user=request.user, obj=saved,
                       kind=ChangeKind.UPDATED if plan else ChangeKind.CREATED, before=before)
    messages.success(request, "Incentive plan saved." if plan else "Incentive plan created.")
    target = reverse("program_incentive_plan", args=[agreement.code])
    return redirect_after_change(request, target)


@manager_required
@require_POST
def incentive_plan_delete(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    plan = IncentivePlan.objects.filter(agreement=agreement).first()
    target = reverse("program_incentive_plan", args=[agreement.code])
    if plan is None:
        messages.info(request, f"{agreement.code} has no incentive plan.")
    elif not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=f"Remove the incentive plan of {agreement.code}?",
            consequence="The next scoring run computes no payouts for it. The plan's values "
                        "stay in the agreement's history.",
            action="Remove", cancel_url=target))
    else:
        with transaction.atomic():
            history_record(user=request.user, obj=plan, kind=ChangeKind.DELETED)
            plan.delete()
        messages.success(request, f"Incentive plan of {agreement.code} removed: no payouts "
                                  "from the next scoring run on.")
    return redirect_after_change(request, target)
