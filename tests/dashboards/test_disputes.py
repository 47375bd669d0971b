"""The disputes pages (both sides, scoped), the markers and counts on the agreement dashboard,
the portfolio and the partner's home, and the Months page held by open disputes; closing held
by an open dispute, with the override recorded, and the automatic close that never overrides."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from dashboards.selectors.months import month_shift
from partnerships.disputes import dispute_open, month_value
from partnerships.models import AuditEvent, Dispute, MonthEvent, ProgramMonth, Role
from scoring.closing import ClosingRefused, current_month, months_auto_close, months_close
from scoring.services import scoring_run_inline
from tests.conftest import make_user, write_observations

pytestmark = pytest.mark.django_db


def months_back(count: int) -> str:
    return month_shift(current_month(), -count)


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


@pytest.fixture
def scored(acme_agreement, globex_agreement, kpis):
    """Three ended months of both agreements, the partner reporting revenue too, scored."""
    rows = []
    for agreement, revenue in ((acme_agreement, 90), (globex_agreement, 40)):
        for back in (3, 2, 1):
            rows.append((agreement, kpis["revenue"], "host", f"{months_back(back)}-10", revenue))
            rows.append((agreement, kpis["revenue"], "partner", f"{months_back(back)}-10",
                         revenue + 30))
            rows.append((agreement, kpis["defect_rate"], "partner", f"{months_back(back)}-10",
                         3))
    write_observations(rows)
    scoring_run_inline()
    return acme_agreement


def test_a_partner_user_opens_a_dispute_from_the_prefilled_form(client, scored, kpis,
                                                                 acme_viewer):
    client.force_login(acme_viewer)
    month = months_back(1)
    url = reverse("dispute_new") + f"?agreement={scored.code}&kpi=revenue&month={month}"
    form = client.get(url)
    assert form.status_code == 200
    assert form.context["form"].initial == {"agreement": scored.code, "kpi": "revenue",
                                            "month": month}
    response = client.post(reverse("dispute_new"), {
        "agreement": scored.code, "kpi": "revenue", "month": month,
        "reason": "Our CRM has 120", "proposed_value": "120"})
    dispute = Dispute.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("dispute_detail", args=[dispute.pk])
    assert (dispute.opened_side, dispute.proposed_value) == ("partner", 120.0)
    page = client.get(response.url)
    assert page.context["source_value"] == 90.0 and page.context["other_value"] == 120.0
    assert page.context["difference"] == 30.0
    body = page.content.decode()
    assert "Our CRM has 120" in body and "Add the answer" in body
    # Partner users withdraw their side's dispute; they never resolve.
    assert page.context["withdraw_form"] is not None and page.context["resolve_form"] is None
    # The same value again: the form says it is disputed already, and opening is refused.
    again = client.post(reverse("dispute_new"), {
        "agreement": scored.code, "kpi": "revenue", "month": month, "reason": "Again"})
    assert again.status_code == 200 and "open already" in again.content.decode()


def test_another_partners_dispute_answers_as_a_missing_one(client, scored, kpis,
                                                           globex_viewer, acme_viewer,
                                                           globex_agreement):
    theirs = dispute_open(user=globex_viewer, agreement=globex_agreement, kpi=kpis["revenue"],
                          month=months_back(1), reason="Globex reason")
    client.force_login(acme_viewer)
    for name in ("dispute_detail",):
        assert client.get(reverse(name, args=[theirs.pk])).status_code == 404
    for name in ("dispute_comment", "dispute_withdraw"):
        assert client.post(reverse(name, args=[theirs.pk]), {"text": "x"}).status_code == 404
    listing = client.get(reverse("disputes"), {"status": ""})
    assert listing.context["rows"] == [] and "Globex" not in listing.content.decode()
    csv = client.get(reverse("disputes_csv"))
    assert "Globex reason" not in b"".join(csv.streaming_content).decode()
    # Their agreement filters exactly as one that does not exist.
    refused = client.get(reverse("disputes"), {"agreement": globex_agreement.code})
    missing = client.get(reverse("disputes"), {"agreement": "NO-SUCH-1"})
    assert refused.context["rows"] is None and missing.context["rows"] is None
    assert refused.context["form"].errors == missing.context["form"].errors
    assert "Globex" not in refused.content.decode().replace(globex_agreement.code, "")
    # Opening one on their agreement is refused as an unknown agreement.
    client.post(reverse("dispute_new"), {"agreement": globex_agreement.code, "kpi": "revenue",
                                         "month": months_back(1), "reason": "x"})
    assert Dispute.objects.count() == 1


def test_the_host_answers_and_resolves_with_a_corrected_value(client, scored, kpis,
                                                              acme_viewer, host_manager):
    month = months_back(1)
    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=month, reason="Our CRM has 120", proposed_value=120)
    client.force_login(host_manager)
    page = client.get(reverse("dispute_detail", args=[dispute.pk]))
    assert page.context["resolve_form"] is not None and page.context["withdraw_form"] is None
    assert "Acme Corp" in page.content.decode()
    # The choices name each side's value of the month (revenue: host 90, partner 120).
    assert [label for _value, label in page.context["resolve_form"].fields["resolution"]
            .choices] == ["Keep the host's value (90.00 USD), the source of truth",
                          "Take the partner's value (120.00 USD)", "Enter a corrected value"]
    client.post(reverse("dispute_comment", args=[dispute.pk]), {"text": "Checking the CRM"})
    response = client.post(reverse("dispute_resolve", args=[dispute.pk]), {
        "resolution": "corrected", "value": "118", "text": "Two deals were missing"})
    assert response.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.status, dispute.resolution, dispute.resolved_value) == (
        "resolved", "corrected", 118.0)
    assert month_value(agreement=scored, kpi=kpis["revenue"], side="host", month=month) == 118
    kinds = list(dispute.events.values_list("kind", "side"))
    assert kinds == [("opened", "partner"), ("comment", "host"), ("resolved", "host")]
    client.force_login(acme_viewer)
    page = client.get(reverse("dispute_detail", args=[dispute.pk])).content.decode()
    assert "Two deals were missing" in page and "Checking the CRM" in page


def test_a_partner_user_may_not_resolve(client, scored, kpis, acme_viewer):
    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=months_back(1), reason="Wrong")
    client.force_login(acme_viewer)
    response = client.post(reverse("dispute_resolve", args=[dispute.pk]),
                           {"resolution": "kept"})
    assert response.status_code == 404  # a host action: partner users do not learn of it
    assert Dispute.objects.get().status == "open"


def test_a_closed_month_is_offered_to_a_host_admin_for_reopening(client, scored, kpis,
                                                                  acme_viewer, host_manager,
                                                                  host_admin):
    month = months_back(1)
    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=month, reason="Wrong")
    months_close(through=month, user=host_manager, override_disputes="Payroll cannot wait")
    client.force_login(host_manager)
    page = client.get(reverse("dispute_detail", args=[dispute.pk]))
    assert "reopen" not in page.context["resolve_form"].fields
    refused = client.post(reverse("dispute_resolve", args=[dispute.pk]),
                          {"resolution": "corrected", "value": "100"})
    assert refused.status_code == 200
    assert f"{month} is closed" in refused.content.decode()
    assert "Ask a host admin" in refused.content.decode()
    assert Dispute.objects.get().status == "open"
    client.force_login(host_admin)
    page = client.get(reverse("dispute_detail", args=[dispute.pk]))
    assert "reopen" in page.context["resolve_form"].fields
    response = client.post(reverse("dispute_resolve", args=[dispute.pk]),
                           {"resolution": "corrected", "value": "100", "reopen": "on",
                            "text": "Reopened for the CRM's count"})
    assert response.status_code == 302
    assert not ProgramMonth.objects.get(month=month).closed
    reopening = MonthEvent.objects.get(month=month, action="reopened")
    assert f"Dispute {dispute.pk}" in reopening.reason
    assert Dispute.objects.get().resolved_value == 100.0
    assert dispute.events.last().text == "Reopened for the CRM's count"


def test_disputed_values_are_marked_and_counted(client, scored, kpis, acme_viewer,
                                                host_manager):
    month = months_back(1)
    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=month, reason="Wrong")
    client.force_login(acme_viewer)
    dashboard = client.get(reverse("agreement_dashboard", args=[scored.code]),
                           {"month": month}).content.decode()
    assert reverse("dispute_detail", args=[dispute.pk]) in dashboard
    assert "⚑ disputed" in dashboard
    home = client.get(reverse("home"))
    assert home.context["open_disputes"] == 1
    assert "1 open dispute of your agreements" in home.content.decode()
    client.force_login(host_manager)
    portfolio = client.get(reverse("portfolio"))
    assert portfolio.context["open_disputes"] == 1
    assert f'{reverse("disputes")}?status=open' in portfolio.content.decode()
    listing = client.get(reverse("disputes"))
    assert [row.pk for row in listing.context["rows"]] == [dispute.pk]


# ---- Closing held by open disputes -------------------------------------------------------------


def test_an_open_dispute_holds_the_close_until_overridden_with_a_reason(
        scored, kpis, acme_viewer, host_manager):
    month = months_back(2)
    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=month, reason="Wrong")
    with pytest.raises(ClosingRefused, match="open dispute"):
        months_close(through=months_back(1), user=host_manager)
    assert not ProgramMonth.objects.filter(closed=True).exists()
    closed = months_close(through=months_back(1), user=host_manager,
                          override_disputes="The statement is due today")
    assert month in closed
    event = MonthEvent.objects.get(month=month, action="closed")
    assert event.reason == "Closed with open disputes: The statement is due today"
    audit = AuditEvent.objects.filter(action="month_closed").latest("at")
    assert audit.detail["override_disputes"] == "The statement is due today"
    assert audit.detail["disputes"] == [dispute.pk]


def test_a_resolved_or_withdrawn_dispute_holds_nothing(scored, kpis, acme_viewer,
                                                      host_manager):
    from partnerships.disputes import dispute_withdraw

    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=months_back(1), reason="Wrong")
    dispute_withdraw(user=acme_viewer, dispute=dispute)
    assert months_close(through=months_back(1), user=host_manager)
    assert MonthEvent.objects.get(month=months_back(1), action="closed").reason == ""


def test_the_automatic_close_never_overrides(settings, scored, kpis, acme_viewer):
    settings.MONTH_AUTO_CLOSE_DAYS = 1
    dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                 month=months_back(1), reason="Wrong")
    outcome = months_auto_close()
    assert "open dispute" in outcome
    assert not ProgramMonth.objects.filter(closed=True).exists()
    refusal = AuditEvent.objects.get(action="month_close_refused")
    assert "open dispute" in refusal.detail["refused"]


def test_the_close_command_overrides_with_a_reason(scored, kpis, acme_viewer):
    dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                 month=months_back(1), reason="Wrong")
    with pytest.raises(CommandError, match="open dispute"):
        call_command("close_months", through=months_back(1))
    out = io.StringIO()
    call_command("close_months", "--through", months_back(1), "--override-disputes",
                 "Audit deadline", stdout=out)
    assert "Closed" in out.getvalue()
    assert MonthEvent.objects.get(month=months_back(1), action="closed").reason.endswith(
        "Audit deadline")


def test_the_months_page_lists_the_disputes_holding_the_close_and_takes_the_override(
        client, scored, kpis, acme_viewer, host_manager):
    dispute = dispute_open(user=acme_viewer, agreement=scored, kpi=kpis["revenue"],
                           month=months_back(1), reason="Wrong")
    client.force_login(host_manager)
    page = client.get(reverse("months"))
    assert [item.pk for item in page.context["open_disputes"]] == [dispute.pk]
    assert "override_disputes" in page.context["close_form"].fields
    assert reverse("dispute_detail", args=[dispute.pk]) in page.content.decode()
    refused = client.post(reverse("months_close"), {"through": months_back(1),
                                                    "confirm": "yes"})
    assert refused.status_code == 302 and not ProgramMonth.objects.filter(closed=True).exists()
    client.post(reverse("months_close"), {"through": months_back(1), "confirm": "yes",
                                          "override_disputes": "Quarter end"})
    assert ProgramMonth.objects.get(month=months_back(1)).closed
    dispute.refresh_from_db()
    assert dispute.status == "open"
