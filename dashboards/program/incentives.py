"""The incentive plan of an agreement (DOMAIN.md § Incentives): create, edit, remove.

Host pages: partner users get 404; host managers and admins edit. The page states the payout
formula in words and works an example from the plan's current values (and, when the agreement
has been scored, from its latest scored month).
"""

from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from dashboards.templatetags.numbers import money_text, score_text
from partnerships import governance_services
from partnerships.access import host_required, manager_required
from partnerships.models import Agreement, IncentivePlan, Tier
from scoring import incentives
from scoring.models import Scorecard, ScoringRun

from ..confirm import Confirmation, confirmation_page, confirmed
from ..http import (
    HtmxHttpRequest,
    agreement_visible,
    partial_or_page,
    redirect_after_change,
    refusal_into_form,
    validating,
    validation_response,
)
from .kpi_forms import IncentivePlanForm

TIER_LABELS = {Tier.TRANSACTIONAL: "transactional", Tier.GROWTH: "growth",
               Tier.STRATEGIC: "strategic"}


def _money(amount: float | Decimal, currency: str) -> str:
    return f"{money_text(amount)} {currency}"


def _reason_texts(plan: IncentivePlan, card: Scorecard) -> list[str]:
    texts = {
        incentives.INCOMPLETE: "the scorecard is incomplete",
        incentives.NO_TIER: "the agreement has no tier yet",
        incentives.NO_ROLLING: "the rolling score is not defined yet",
        incentives.BELOW_BASELINE: f"the rolling score {score_text(card.rolling)} is below "
                                   f"the baseline {plan.baseline_score:g}",
    }
    return [texts[reason] for reason in incentives.no_payout_reasons(
        plan=plan, rolling=card.rolling, tier=card.tier, incomplete=card.incomplete)]


def _latest_card(agreement: Agreement) -> Scorecard | None:
    run = ScoringRun.objects.current()
    if run is None:
        return None
    return (Scorecard.objects.of_run(run).filter(agreement=agreement, has_scorecard=True)
            .order_by("-period").first())


def _examples(plan: IncentivePlan, agreement: Agreement) -> dict:
    tiers = [
        {"tier": tier, "label": TIER_LABELS[tier], "multiplier": f"{multiplier.normalize():f}",
         "payout": _money(payout, plan.currency)}
        for tier, multiplier, payout in incentives.example_payouts(plan)
    ]
    latest = None
    card = _latest_card(agreement)
    if card is not None:
        payout = incentives.incentive_payout(
            plan=plan, overall=card.overall, rolling=card.rolling, tier=card.tier,
            complete=not card.incomplete)
        latest = {"card": card, "overall": score_text(card.overall),
                  "rolling": score_text(card.rolling),
                  "payout": _money(payout, plan.currency),
                  "reasons": _reason_texts(plan, card)}
    return {
        "example_overall": f"{incentives.EXAMPLE_OVERALL:g}",
        "example_rolling": f"{incentives.example_rolling(plan):g}",
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
    form = IncentivePlanForm(request.POST, instance=plan or IncentivePlan(agreement=agreement))
    valid = form.is_valid()
    if validating(request):
        # The example follows the values being typed (when they are valid).
        shown = form.instance if valid else plan
        formula = render_to_string("program/incentives/plan.html#plan-formula", {
            "examples": _examples(shown, agreement) if shown is not None else None,
            "oob": True}, request=request)
        return validation_response(request, form, extra=mark_safe(formula))
    if valid:
        try:
            governance_services.incentive_plan_save(
                agreement=agreement, user=request.user, request=request, **form.cleaned_data)
        except ValidationError as error:
            refusal_into_form(form, error)
        else:
            messages.success(request,
                             "Incentive plan saved." if plan else "Incentive plan created.")
            target = reverse("program_incentive_plan", args=[agreement.code])
            return redirect_after_change(request, target)
    return _page(request, agreement, plan, form)


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
        governance_services.incentive_plan_delete(plan=plan, user=request.user,
                                                  request=request)
        messages.success(request, f"Incentive plan of {agreement.code} removed: no payouts "
                                  "from the next scoring run on.")
    return redirect_after_change(request, target)
