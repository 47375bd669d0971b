"""Disputes in the demo: one open and one resolved, each with a short thread, on agreements of the
demo partner's viewer, in the last month that has ended (left open by the demo's closing, so the
closed months still close). Written through the dispute services, without e-mail."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max

from .disputes import (
    dispute_comment,
    dispute_open,
    dispute_resolve,
    dispute_values,
    month_days,
)
from .models import Agreement, Dispute, KPIDefinition, MetricObservation
from .months import month_before, month_of

DEMO_PARTNER_USER, DEMO_MANAGER = "viewer", "manager"


def _candidates(*, partner_id: int, month: str) -> list[tuple[int, int]]:
    """(agreement, KPI) pairs of the partner with a source value in the month; those the other
    side reported too first (the disagreements reconciliation lists)."""
    first, last = month_days(month)
    reported = set(MetricObservation.objects.filter(
        agreement__partner_id=partner_id, date__gte=first, date__lte=last,
    ).values_list("agreement_id", "kpi_id", "side").distinct())
    sources = dict(KPIDefinition.objects.values_list("pk", "source"))
    pairs = sorted({(agreement, kpi) for agreement, kpi, side in reported
                    if side == sources[kpi]})
    both = [pair for pair in pairs if (*pair, "host" if sources[pair[1]] == "partner"
                                       else "partner") in reported]
    return both + [pair for pair in pairs if pair not in both]


def demo_disputes_create() -> str:
    """Open one dispute and resolve another (the other side's value taken, or kept); say what."""
    if Dispute.objects.exists():
        return "Disputes already present; kept."
    users = get_user_model().objects.select_related("membership")
    partner_user = users.filter(username=DEMO_PARTNER_USER, is_active=True).first()
    manager = users.filter(username=DEMO_MANAGER, is_active=True).first()
    latest = MetricObservation.objects.aggregate(last=Max("date"))["last"]
    if partner_user is None or manager is None or latest is None:
        return "No demo users or observations: no disputes written."
    month = month_before(month_of(latest))
    pairs = _candidates(partner_id=partner_user.membership.partner_id, month=month)
    if len(pairs) < 2:
        return f"Fewer than two values of the demo partner in {month}: no disputes written."
    agreements = Agreement.objects.in_bulk([agreement for agreement, _ in pairs[:2]])
    kpis = KPIDefinition.objects.in_bulk([kpi for _, kpi in pairs[:2]])
    (open_agreement, open_kpi), (resolved_agreement, resolved_kpi) = pairs[:2]
    with transaction.atomic():
        first = dispute_open(
            user=partner_user, agreement=agreements[open_agreement], kpi=kpis[open_kpi],
            month=month, notify=False,
            reason="Our own records for this month differ: two closed deals of the last week "
                   "are missing from the host's figure.")
        dispute_comment(user=manager, dispute=first, notify=False,
                        text="Thanks, we are checking them against the CRM export.")
        second = dispute_open(
            user=partner_user, agreement=agreements[resolved_agreement],
            kpi=kpis[resolved_kpi], month=month, notify=False,
            reason="The value was counted before the month's last import: please check.")
        dispute_comment(user=manager, dispute=second, notify=False,
                        text="Confirmed: the partner's figure is the complete one.")
        other = dispute_values(second)["other_value"]
        dispute_resolve(user=manager, dispute=second, notify=False,
                        resolution="other_side" if other is not None else "kept",
                        text="Corrected to the partner's value; the next run scores it.")
    return (f"Disputes of {month}: {first.pk} open, {second.pk} resolved "
            f"({agreements[open_agreement].code}, {agreements[resolved_agreement].code}).")
