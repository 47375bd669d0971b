"""Reviews planned ahead: planned, edited, recorded as held or cancelled through the services
(each with its history and audit event); only held reviews count for the due dates; both sides
see the upcoming ones and download them as iCalendar events."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from partnerships import governance_services as services
from partnerships.ical import ical_fold, ical_text, review_ical
from partnerships.models import (
    AuditAction,
    AuditEvent,
    ChangeKind,
    ProgramChange,
    Review,
    ReviewStatus,
    Role,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def today() -> dt.date:
    return timezone.localdate()


def in_days(days: int) -> dt.date:
    return today() + dt.timedelta(days=days)


PLAN = {"kind": "quarterly_strategy", "starts_at": dt.time(14, 30), "duration_minutes": 90,
        "agenda": "Pipeline, Q3 targets; renewal\nNext steps",
        "host_attendees": "Jo (partner manager)", "partner_attendees": "Ann (alliances)"}


def plan(agreement, user, *, days: int = 14, **fields) -> Review:
    return services.review_schedule(agreement=agreement, user=user, held_on=in_days(days),
                                    **(PLAN | fields))


def changes(kind: str | None = None):
    rows = ProgramChange.objects.filter(object_type="business review")
    return rows.filter(kind=kind) if kind else rows


def program_events() -> int:
    return AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED).count()


# ---- Services --------------------------------------------------------------------------------


def test_scheduling_a_review_records_it_as_planned_with_history_and_audit(
        acme_agreement, host_manager):
    review = plan(acme_agreement, host_manager)
    review.refresh_from_db()
    assert review.status == ReviewStatus.PLANNED
    assert review.held_on == in_days(14) and review.starts_at == dt.time(14, 30)
    assert review.created_by == host_manager
    (change,) = changes(ChangeKind.CREATED)
    assert change.agreement_id == acme_agreement.pk and change.user == host_manager
    assert "Agenda" in change.fields and program_events() == 1


def test_a_review_cannot_be_planned_for_a_past_day(acme_agreement, host_manager):
    with pytest.raises(ValidationError) as refused:
        plan(acme_agreement, host_manager, days=-1)
    assert "held_on" in refused.value.message_dict
    assert not Review.objects.exists() and not changes().exists()


def test_editing_a_planned_review_records_the_changed_fields(acme_agreement, host_manager):
    review = plan(acme_agreement, host_manager)
    services.review_update(review=review, user=host_manager, held_on=in_days(21),
                           agenda="Only the renewal")
    change = changes(ChangeKind.UPDATED).get()
    assert set(change.fields) == {"Date", "Agenda"}
    review.refresh_from_db()
    assert review.status == ReviewStatus.PLANNED and review.agenda == "Only the renewal"
    # Notes belong to a held review: refused on a planned one (a caller's mistake).
    with pytest.raises(TypeError):
        services.review_update(review=review, user=host_manager, notes="Too early")


def test_recording_a_planned_review_as_held_keeps_its_plan_and_adds_the_outcome(
        acme_agreement, host_manager):
    review = plan(acme_agreement, host_manager, days=0)
    held = services.review_record_held(review=review, user=host_manager, held_on=today(),
                                       notes="Pipeline doubled", decisions="Renew for a year")
    held.refresh_from_db()
    assert held.pk == review.pk and held.status == ReviewStatus.HELD
    assert held.agenda == PLAN["agenda"] and held.decisions == "Renew for a year"
    change = changes(ChangeKind.UPDATED).get()
    assert {"Status", "Notes", "Decisions"} <= set(change.fields)
    with pytest.raises(ValidationError):  # once only
        services.review_record_held(review=held, user=host_manager, notes="Again")


def test_a_planned_review_is_not_recorded_as_held_before_its_day(acme_agreement, host_manager):
    review = plan(acme_agreement, host_manager, days=3)
    with pytest.raises(ValidationError) as refused:
        services.review_record_held(review=review, user=host_manager, notes="Too soon")
    assert "held_on" in refused.value.message_dict
    review.refresh_from_db()
    assert review.status == ReviewStatus.PLANNED and review.notes == ""


def test_cancelling_a_planned_review_deletes_it_and_keeps_it_in_the_history(
        acme_agreement, host_manager):
    review = plan(acme_agreement, host_manager)
    services.review_cancel(review=review, user=host_manager)
    assert not Review.objects.exists()
    deleted = changes(ChangeKind.DELETED).get()
    assert deleted.agreement_id == acme_agreement.pk
    assert program_events() == 2


def test_a_held_review_is_not_cancelled(acme_agreement, host_manager):
    held = services.review_create(agreement=acme_agreement, user=host_manager,
                                  kind="monthly_results", held_on=in_days(-3))
    with pytest.raises(ValidationError):
        services.review_cancel(review=held, user=host_manager)
    assert Review.objects.filter(pk=held.pk).exists()


# ---- Only held reviews count -----------------------------------------------------------------


def test_planned_reviews_do_not_count_for_the_review_due(client, host_manager, acme_agreement):
    from dashboards.program.overdue import agreement_review_panel, overdue_for

    acme_agreement.start_date = in_days(-400)
    acme_agreement.save()
    services.review_create(agreement=acme_agreement, user=host_manager,
                           kind="monthly_results", held_on=in_days(-200))
    # Planned for today and later, and one whose day passed without being recorded.
    plan(acme_agreement, host_manager, days=0)
    plan(acme_agreement, host_manager, days=30)
    Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                          status=ReviewStatus.PLANNED, held_on=in_days(-2))
    state = overdue_for(agreement_ids=[acme_agreement.pk])[acme_agreement.pk]
    assert state.last_review == in_days(-200) and state.review_overdue
    panel = agreement_review_panel(agreement=acme_agreement, user=host_manager)
    assert panel["state"].last_review == in_days(-200) and panel["state"].review_overdue
    assert [review.held_on for review in panel["upcoming"]] == [in_days(-2), today(),
                                                                in_days(30)]
    client.force_login(host_manager)
    page = client.get(reverse("agreement_reviews", args=[acme_agreement.code])).text
    assert "last review " + in_days(-200).isoformat() in page
    assert "Review overdue" in page


def test_the_ecosystem_counts_held_reviews_only(acme_agreement, host_manager):
    from dashboards.selectors.ecosystem import engagement_reviews
    from partnerships.models import Agreement

    services.review_create(agreement=acme_agreement, user=host_manager,
                           kind="monthly_results", held_on=today())
    plan(acme_agreement, host_manager, days=0)
    month = today().strftime("%Y-%m")
    assert engagement_reviews(agreements=Agreement.objects.all(), months=[month]) == [1]


# ---- iCalendar -------------------------------------------------------------------------------


def test_ical_text_escapes_commas_semicolons_backslashes_and_newlines():
    assert ical_text("a,b;c\\d\ne\r\nf") == "a\\,b\\;c\\\\d\\ne\\nf"


def test_ical_fold_keeps_lines_within_75_octets_and_whole_characters():
    line = "DESCRIPTION:" + "é" * 100
    folded = ical_fold(line)
    parts = folded.split("\r\n")
    assert all(len(part.encode()) <= 75 for part in parts)
    assert all(part.startswith(" ") for part in parts[1:])
    assert "".join([parts[0], *(part[1:] for part in parts[1:])]) == line


def test_a_planned_review_as_ical_has_a_stable_uid_utc_start_and_escaped_agenda(
        acme_agreement, host_manager, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    settings.SITE_URL = "https://partners.example.com"
    review = Review.objects.create(
        agreement=acme_agreement, kind="quarterly_strategy", status=ReviewStatus.PLANNED,
        held_on=dt.date(2031, 7, 15), starts_at=dt.time(14, 30), duration_minutes=90,
        agenda="Pipeline, Q3 targets; renewal\nNext steps")
    now = dt.datetime(2031, 7, 1, 8, 0, tzinfo=dt.UTC)
    text = review_ical(review=review, url="https://partners.example.com/r", now=now)
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert "\n" not in text.replace("\r\n", "")
    unfolded = text.replace("\r\n ", "")
    lines = unfolded.split("\r\n")
    assert f"UID:review-{review.pk}@partners.example.com" in lines
    assert "DTSTART:20310715T123000Z" in lines  # 14:30 in Berlin in summer is 12:30 UTC
    assert "DTEND:20310715T140000Z" in lines
    assert "DTSTAMP:20310701T080000Z" in lines
    description = next(line for line in lines if line.startswith("DESCRIPTION:"))
    assert description.startswith("DESCRIPTION:Pipeline\\, Q3 targets\\; renewal\\nNext steps")
    summary = next(line for line in lines if line.startswith("SUMMARY:"))
    assert acme_agreement.code in summary and acme_agreement.partner.name in summary
    # The same review downloaded again is the same event.
    assert review_ical(review=review, url="x", now=now).count(f"UID:review-{review.pk}@") == 1


def test_an_all_day_review_is_a_date_event(acme_agreement):
    review = Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                                   status=ReviewStatus.PLANNED, held_on=dt.date(2031, 2, 28))
    lines = review_ical(review=review, url="x").replace("\r\n ", "").split("\r\n")
    assert "DTSTART;VALUE=DATE:20310228" in lines and "DTEND;VALUE=DATE:20310301" in lines


# ---- Pages -----------------------------------------------------------------------------------


def test_both_sides_see_upcoming_reviews_and_download_them(
        client, acme_viewer, host_manager, acme_agreement, globex_agreement):
    review = plan(acme_agreement, host_manager, agenda="Renewal terms")
    plan(globex_agreement, host_manager, agenda="Globex secret agenda")
    client.force_login(acme_viewer)
    page = client.get(reverse("agreement_reviews", args=[acme_agreement.code])).text
    assert "Upcoming reviews" in page and "Renewal terms" in page
    assert "Globex secret agenda" not in page and "Record as held" not in page
    # The time says its zone, the site's (the calendar file converts from it).
    assert "14:30 UTC" in page
    dashboard = client.get(reverse("agreement_dashboard", args=[acme_agreement.code])).text
    assert "14:30 UTC (90 min)" in dashboard
    assert reverse("agreement_review_ics", args=[acme_agreement.code, review.pk]) in dashboard
    response = client.get(reverse("agreement_review_ics", args=[acme_agreement.code, review.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert "attachment" in response["Content-Disposition"]
    assert b"Renewal terms" in response.content and b"\r\nEND:VEVENT\r\n" in response.content
    # Another partner's review answers as a missing one.
    other = Review.objects.get(agreement=globex_agreement)
    assert client.get(reverse("agreement_review_ics", args=[globex_agreement.code, other.pk])
                      ).status_code == 404
    assert client.get(reverse("agreement_review_ics", args=[acme_agreement.code, other.pk])
                      ).status_code == 404


def test_manager_plans_then_records_a_review_as_held_on_the_pages(
        client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.post(reverse("program_review_plan", args=[acme_agreement.code]), {
        "kind": "monthly_results", "held_on": today().isoformat(), "starts_at": "09:00",
        "duration_minutes": "60", "agenda": "Leads", "host_attendees": "Jo",
        "partner_attendees": "Ann"})
    assert response.status_code == 302
    review = Review.objects.get()
    assert review.status == ReviewStatus.PLANNED and review.starts_at == dt.time(9, 0)
    refused = client.post(reverse("program_review_plan", args=[acme_agreement.code]), {
        "kind": "monthly_results", "held_on": in_days(-5).isoformat(),
        "duration_minutes": "60"})
    assert refused.status_code == 200 and "planned for today or a later day" in refused.text
    form = client.get(reverse("program_review_hold", args=[review.pk])).text
    assert "Leads" in form and "Record as held" in form
    response = client.post(reverse("program_review_hold", args=[review.pk]), {
        "kind": "monthly_results", "held_on": today().isoformat(), "host_attendees": "Jo",
        "partner_attendees": "Ann, Bo", "notes": "Went well", "decisions": "Go"})
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.status == ReviewStatus.HELD and review.partner_attendees == "Ann, Bo"
    # Held now: no calendar download, no second recording.
    assert client.get(reverse("agreement_review_ics", args=[acme_agreement.code, review.pk])
                      ).status_code == 404
    assert client.get(reverse("program_review_hold", args=[review.pk])).status_code == 404


def test_cancelling_a_planned_review_on_the_page_asks_first(client, host_manager,
                                                            acme_agreement):
    review = plan(acme_agreement, host_manager)
    client.force_login(host_manager)
    url = reverse("program_review_delete", args=[review.pk])
    asked = client.get(url)
    assert asked.status_code == 200 and "Cancel the quarterly" in asked.text
    assert client.post(url, {"confirm": "yes"}).status_code == 302
    assert not Review.objects.exists()
    assert changes(ChangeKind.DELETED).count() == 1


def test_partner_users_may_not_plan_or_record_reviews(client, django_user_model, acme,
                                                      acme_agreement, host_manager):
    editor = make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)
    review = plan(acme_agreement, host_manager)
    client.force_login(editor)
    assert client.get(reverse("program_review_plan", args=[acme_agreement.code])
                      ).status_code in (403, 404)
    assert client.post(reverse("program_review_hold", args=[review.pk]),
                       {"kind": "monthly_results", "held_on": today().isoformat()}
                       ).status_code in (403, 404)
    review.refresh_from_db()
    assert review.status == ReviewStatus.PLANNED


def test_planned_reviews_survive_the_program_file_round_trip_unchanged(
        acme_agreement, host_manager):
    from partnerships.program import program_load
    from partnerships.program_export import program_export

    held = services.review_create(agreement=acme_agreement, user=host_manager,
                                  kind="monthly_results", held_on=in_days(-3))
    planned = plan(acme_agreement, host_manager)
    exported = program_export()
    stored = list(Review.objects.order_by("pk").values())

    result = program_load(document=exported)

    # The program file does not carry reviews: loading it leaves them byte for byte as they were,
    # and the file exported afterwards is the same.
    assert not result.changed
    assert list(Review.objects.order_by("pk").values()) == stored
    assert {review["id"] for review in stored} == {held.pk, planned.pk}
    assert program_export() == exported


def test_a_partners_home_lists_its_upcoming_reviews_only(client, acme_viewer, host_manager,
                                                        acme_agreement, globex_agreement):
    review = plan(acme_agreement, host_manager, days=5)
    plan(globex_agreement, host_manager, days=3, agenda="Globex secret agenda")
    Review.objects.create(agreement=acme_agreement, kind="monthly_results",
                          status=ReviewStatus.PLANNED, held_on=in_days(-1))  # passed
    client.force_login(acme_viewer)
    text = client.get(reverse("home")).text
    assert "Upcoming business reviews" in text
    assert reverse("agreement_review_ics", args=[acme_agreement.code, review.pk]) in text
    assert in_days(5).isoformat() in text and in_days(-1).isoformat() not in text
    assert globex_agreement.code not in text
