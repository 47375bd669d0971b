"""Business reviews and action items: who reads, who records, who updates a status, and the
history every change leaves."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from partnerships.models import ActionItem, AuditAction, AuditEvent, ProgramChange, Review, Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def acme_editor(django_user_model, acme):
    return make_user(django_user_model, "acme-editor", Role.PARTNER_EDITOR, acme)


@pytest.fixture
def host_admin(django_user_model):
    return make_user(django_user_model, "admin", Role.HOST_ADMIN)


def today() -> dt.date:
    return timezone.localdate()


def make_review(agreement, *, days_ago: int = 10, **fields) -> Review:
    values = {"kind": "monthly_results", "host_attendees": "Jo (partner manager)",
              "partner_attendees": "Ann (alliances)", "notes": "Pipeline is thin.",
              "decisions": "Run a joint webinar."} | fields
    return Review.objects.create(agreement=agreement,
                                 held_on=today() - dt.timedelta(days=days_ago), **values)


def make_action(agreement, *, side: str = "partner", due_in: int = 7, review=None,
                status: str = "open", description: str = "Send the webinar list") -> ActionItem:
    return ActionItem.objects.create(
        agreement=agreement, review=review, description=description, owner_name="Ann",
        owner_side=side, raci="responsible", due_date=today() + dt.timedelta(days=due_in),
        status=status,
    )


def reviews_url(code: str) -> str:
    return reverse("agreement_reviews", args=[code])


def status_url(action: ActionItem, code: str | None = None) -> str:
    return reverse("agreement_action_status", args=[code or action.agreement.code, action.pk])


# ---- The reviews page ---------------------------------------------------------------------------


def test_partner_viewer_reads_reviews_and_actions_of_their_agreement(
        client, acme_viewer, acme_agreement, globex_agreement):
    older = make_review(acme_agreement, days_ago=40, kind="quarterly_strategy", notes="Older")
    newer = make_review(acme_agreement, days_ago=5, notes="Newer")
    make_action(acme_agreement, review=newer, due_in=-3, description="Fix the lead form")
    make_review(globex_agreement, notes="Globex secret")
    client.force_login(acme_viewer)
    response = client.get(reviews_url(acme_agreement.code))
    assert response.status_code == 200
    text = response.text
    assert text.index("Newer") < text.index("Older") and older.pk != newer.pk
    assert "Jo (partner manager)" in text and "Ann (alliances)" in text
    assert "Run a joint webinar." in text
    assert "Fix the lead form" in text and "3 days overdue" in text
    assert "Next review due by" in text or "Review overdue" in text
    assert "Globex" not in text
    assert "Record a review" not in text  # partner users do not edit


def test_another_partners_reviews_answer_like_a_missing_agreement(
        client, acme_viewer, globex_agreement):
    make_review(globex_agreement)
    client.force_login(acme_viewer)
    other = client.get(reviews_url(globex_agreement.code))
    missing = client.get(reviews_url("NO-SUCH-CODE"))
    assert other.status_code == missing.status_code == 404


def test_the_page_says_when_the_next_review_is_due(client, host_manager, acme_agreement):
    acme_agreement.review_cadence = "monthly"
    acme_agreement.save()
    make_review(acme_agreement, days_ago=40)
    client.force_login(host_manager)
    text = client.get(reviews_url(acme_agreement.code)).text
    assert "Review overdue by 9 days" in text
    assert (today() - dt.timedelta(days=9)).isoformat() in text


def test_the_reviews_page_takes_the_same_queries_for_3_and_30_reviews(
        client, host_manager, acme_agreement):
    client.force_login(host_manager)
    client.get(reviews_url(acme_agreement.code))
    counts = {}
    for total in (3, 30):
        while Review.objects.count() < total:
            review = make_review(acme_agreement, days_ago=Review.objects.count() + 1)
            make_action(acme_agreement, review=review)
            make_action(acme_agreement, review=review, side="host", status="done")
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reviews_url(acme_agreement.code)).status_code == 200
        counts[total] = len(queries)
    assert counts[3] == counts[30]


# ---- Recording reviews (host managers) -----------------------------------------------------


def review_form(**changes) -> dict:
    return {"kind": "quarterly_strategy", "held_on": today().isoformat(),
            "host_attendees": "Jo", "partner_attendees": "Ann", "notes": "Good quarter",
            "decisions": "Expand to EMEA"} | changes


def test_a_manager_records_a_review_and_is_sent_on_to_its_actions(
        client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.post(reverse("program_review_new", args=[acme_agreement.code]),
                           review_form())
    review = Review.objects.get()
    assert response.status_code == 302
    assert response["Location"] == (reverse("program_action_new", args=[acme_agreement.code])
                                    + f"?review={review.pk}")
    assert (review.agreement, review.created_by, review.decisions) == (
        acme_agreement, host_manager, "Expand to EMEA")
    change = ProgramChange.objects.get()
    assert (change.kind, change.agreement, change.username) == (
        "created", acme_agreement, "manager")
    assert change.fields["Decisions"] == ["", "Expand to EMEA"]


def test_a_review_in_the_future_is_refused_and_the_input_kept(
        client, host_manager, acme_agreement):
    client.force_login(host_manager)
    tomorrow = (today() + dt.timedelta(days=1)).isoformat()
    response = client.post(reverse("program_review_new", args=[acme_agreement.code]),
                           review_form(held_on=tomorrow, notes="Kept notes"))
    assert response.status_code == 200
    assert "cannot be in the future" in response.text
    assert f'value="{tomorrow}"' in response.text and "Kept notes" in response.text
    assert not Review.objects.exists() and not ProgramChange.objects.exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("held_on", "", "Enter the date the review was held."),
    ("held_on", "15/06/2026", "Enter a date as YYYY-MM-DD."),
    ("kind", "", "Choose the kind of review."),
    ("kind", "annual_party", "Select a valid choice."),
])
def test_review_fields_are_checked(client, host_manager, acme_agreement, field, value, message):
    client.force_login(host_manager)
    response = client.post(reverse("program_review_new", args=[acme_agreement.code]),
                           review_form(**{field: value}))
    assert response.status_code == 200 and message in response.text
    assert not Review.objects.exists()


def test_htmx_answers_an_invalid_form_with_the_form_panel_only(
        client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.post(reverse("program_review_new", args=[acme_agreement.code]),
                           review_form(held_on=""), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="form-panel"')
    assert "<html" not in response.text and "Enter the date the review was held." in response.text


def test_htmx_answers_a_saved_form_with_a_redirect_header(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.post(reverse("program_review_new", args=[acme_agreement.code]),
                           review_form(), headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith(
        reverse("program_action_new", args=[acme_agreement.code]))


def test_editing_a_review_records_the_changed_fields(client, host_admin, acme_agreement):
    review = make_review(acme_agreement)
    client.force_login(host_admin)
    data = review_form(held_on=review.held_on.isoformat(), kind=review.kind,
                       host_attendees=review.host_attendees,
                       partner_attendees=review.partner_attendees, notes=review.notes,
                       decisions="Run two webinars.")
    response = client.post(reverse("program_review_edit", args=[review.pk]), data)
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.decisions == "Run two webinars."
    change = ProgramChange.objects.get()
    assert change.kind == "updated"
    assert change.fields == {"Decisions": ["Run a joint webinar.", "Run two webinars."]}


def test_deleting_a_review_asks_first_and_keeps_its_actions(client, host_manager, acme_agreement):
    review = make_review(acme_agreement)
    item = make_action(acme_agreement, review=review)
    client.force_login(host_manager)
    url = reverse("program_review_delete", args=[review.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Delete the monthly results review of" in page.text
    assert "stays on the agreement" in page.text
    assert Review.objects.filter(pk=review.pk).exists()
    response = client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    assert not Review.objects.exists()
    item.refresh_from_db()
    assert item.review is None
    assert ProgramChange.objects.get().kind == "deleted"


@pytest.mark.parametrize("name", ["program_review_new", "program_action_new"])
def test_partner_users_do_not_find_the_editing_pages(
        client, acme_editor, acme_agreement, name):
    client.force_login(acme_editor)
    assert client.get(reverse(name, args=[acme_agreement.code])).status_code == 404
    assert client.post(reverse(name, args=[acme_agreement.code]),
                       review_form()).status_code == 404
    assert not Review.objects.exists()


def test_partner_users_cannot_edit_or_delete_reviews_or_actions(
        client, acme_editor, acme_agreement):
    review = make_review(acme_agreement)
    item = make_action(acme_agreement, review=review)
    client.force_login(acme_editor)
    for url in (reverse("program_review_edit", args=[review.pk]),
                reverse("program_review_delete", args=[review.pk]),
                reverse("program_action_edit", args=[item.pk]),
                reverse("program_action_delete", args=[item.pk])):
        assert client.post(url, {**review_form(), "confirm": "yes"}).status_code == 404
    assert Review.objects.exists() and ActionItem.objects.exists()


# ---- Action items (host managers) ------------------------------------------------------------


def action_form(**changes) -> dict:
    return {"description": "Share the Q3 pipeline", "owner_name": "Ann",
            "owner_side": "partner", "raci": "responsible",
            "due_date": (today() + dt.timedelta(days=14)).isoformat()} | changes


def test_a_manager_adds_an_action_to_a_review(client, host_manager, acme_agreement):
    review = make_review(acme_agreement)
    client.force_login(host_manager)
    url = reverse("program_action_new", args=[acme_agreement.code])
    page = client.get(url, {"review": review.pk})
    assert f'<option value="{review.pk}" selected>' in page.text
    response = client.post(url, action_form(review=review.pk))
    assert response.status_code == 302
    assert response["Location"].endswith(f"#review-{review.pk}")
    item = ActionItem.objects.get()
    assert (item.review, item.agreement, item.owner_side, item.status) == (
        review, acme_agreement, "partner", "open")
    change = ProgramChange.objects.get()
    assert change.kind == "created" and change.fields["Owner's side"] == ["", "Partner"]


def test_an_action_can_be_added_to_the_agreement_directly(client, host_manager, acme_agreement):
    client.force_login(host_manager)
    response = client.post(reverse("program_action_new", args=[acme_agreement.code]),
                           action_form(add_another="1"))
    assert response["Location"] == reverse("program_action_new", args=[acme_agreement.code])
    assert ActionItem.objects.get().review is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("due_date", "", "Enter a due date."),
    ("owner_side", "", "Choose the owner&#x27;s side: host or partner."),
    ("owner_side", "both", "The owner&#x27;s side is host or partner."),
    ("owner_name", "", "Name the person who owns the action."),
    ("description", "", "Say what is to be done."),
])
def test_action_fields_are_checked_and_the_input_kept(
        client, host_manager, acme_agreement, field, value, message):
    client.force_login(host_manager)
    response = client.post(reverse("program_action_new", args=[acme_agreement.code]),
                           action_form(**{field: value}, owner_name="Ann Example")
                           if field != "owner_name" else action_form(owner_name=""))
    assert response.status_code == 200 and message in response.text
    if field != "owner_name":
        assert 'value="Ann Example"' in response.text
    assert not ActionItem.objects.exists()


def test_a_review_of_another_agreement_cannot_be_chosen(
        client, host_manager, acme_agreement, globex_agreement):
    other = make_review(globex_agreement)
    client.force_login(host_manager)
    response = client.post(reverse("program_action_new", args=[acme_agreement.code]),
                           action_form(review=other.pk))
    assert response.status_code == 200 and "Select a valid choice" in response.text
    assert not ActionItem.objects.exists()


def test_editing_an_action_to_done_stamps_its_completion(client, host_manager, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(host_manager)
    response = client.post(reverse("program_action_edit", args=[item.pk]),
                           action_form(status="done", description=item.description))
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "done" and item.completed_at is not None


def test_deleting_an_action_asks_first_and_is_recorded(client, host_manager, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(host_manager)
    url = reverse("program_action_delete", args=[item.pk])
    assert "Delete the action “" in client.get(url).text
    assert client.post(url, {"confirm": "yes"}).status_code == 302
    assert not ActionItem.objects.exists()
    change = ProgramChange.objects.get()
    assert (change.kind, change.agreement) == ("deleted", acme_agreement)


# ---- Status updates: the permission matrix ---------------------------------------------------


@pytest.mark.parametrize(("who", "side", "expected"), [
    ("host_manager", "host", 302),
    ("host_manager", "partner", 302),
    ("host_admin", "host", 302),
    ("acme_viewer", "partner", 302),
    ("acme_editor", "partner", 302),
    ("acme_viewer", "host", 403),
    ("acme_editor", "host", 403),
])
def test_who_may_update_an_actions_status(
        client, request, acme_agreement, who, side, expected):
    user = request.getfixturevalue(who)
    item = make_action(acme_agreement, side=side)
    client.force_login(user)
    response = client.post(status_url(item), {"status": "done"})
    assert response.status_code == expected
    item.refresh_from_db()
    assert (item.status == "done") is (expected == 302)
    assert ProgramChange.objects.exists() is (expected == 302)


@pytest.mark.parametrize("who", ["acme_viewer", "acme_editor"])
def test_another_partners_action_answers_404_like_a_missing_one(
        client, request, acme_agreement, globex_agreement, who):
    theirs = make_action(globex_agreement, side="partner")
    client.force_login(request.getfixturevalue(who))
    answers = [
        client.post(status_url(theirs), {"status": "done"}),  # Globex's code and action
        client.post(status_url(theirs, acme_agreement.code), {"status": "done"}),  # own code
        client.post(reverse("agreement_action_status", args=["NO-SUCH", 987654]),
                    {"status": "done"}),
    ]
    assert [answer.status_code for answer in answers] == [404, 404, 404]
    theirs.refresh_from_db()
    assert theirs.status == "open"


def test_done_stamps_completion_and_reopening_clears_it(client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(acme_viewer)
    client.post(status_url(item), {"status": "done"})
    item.refresh_from_db()
    assert item.status == "done" and item.completed_at is not None
    client.post(status_url(item), {"status": "in_progress"})
    item.refresh_from_db()
    assert item.status == "in_progress" and item.completed_at is None


def test_a_partner_users_status_change_is_in_the_history(client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(acme_viewer)
    client.post(status_url(item), {"status": "in_progress"})
    change = ProgramChange.objects.get()
    assert (change.kind, change.username, change.object_id, change.agreement) == (
        "updated", "acme-viewer", item.pk, acme_agreement)
    assert change.fields == {"Status": ["Open", "In progress"]}


def test_htmx_status_change_answers_with_the_row(client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement, due_in=-2)
    client.force_login(acme_viewer)
    response = client.post(status_url(item), {"status": "done", "row_prefix": "-open"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    text, counts = response.text.strip().split("<template>", 1)
    text = text.strip()
    assert text.startswith(f'<tr id="action-{item.pk}-open"') and text.endswith("</tr>")
    assert "<html" not in text and text.count("<tr") == 1
    # The heading's counts, out of band: nothing open any more.
    assert counts.startswith('<span id="open-actions-counts" class="muted" '
                             'hx-swap-oob="true"></span>')
    assert "Status: done." in text
    assert "overdue" not in text.split("</th>")[1]  # done is never overdue
    assert '<option value="done" selected>' in text


def test_htmx_status_change_redraws_the_counts_beside_the_row(
        client, host_manager, acme_agreement):
    late = make_action(acme_agreement, due_in=-2)
    make_action(acme_agreement, due_in=-1)
    make_action(acme_agreement, due_in=5)
    client.force_login(host_manager)
    page = client.get(reviews_url(acme_agreement.code)).text
    assert '<span id="open-actions-counts" class="muted">· 3 open, 2 overdue</span>' in page
    response = client.post(status_url(late), {"status": "done", "row_prefix": "-open"},
                           headers={"HX-Request": "true"})
    assert ('<span id="open-actions-counts" class="muted" hx-swap-oob="true">'
            "· 2 open, 1 overdue</span>") in response.text
    # On the agreement dashboard: its two cards.
    dashboard = client.get(reverse("agreement_dashboard", args=[acme_agreement.code])).text
    assert 'id="panel-overdue-actions"' in dashboard and 'id="panel-open-actions"' in dashboard
    other = ActionItem.objects.filter(status="open", due_date__lt=today()).get()
    response = client.post(status_url(other), {"status": "in_progress", "row_prefix": "-panel"},
                           headers={"HX-Request": "true"})
    cards = response.text.split("<template>", 1)[1]
    assert 'id="panel-overdue-actions" class="kpi-card kpi-card--overdue" hx-swap-oob="true"' \
        in cards
    assert 'id="panel-open-actions" class="kpi-card" hx-swap-oob="true"' in cards
    assert [value.split("<")[0] for value in cards.split('kpi-card__value">')[1:]] == ["1", "2"]
    assert "open-actions-counts" not in response.text  # not on the dashboard


def test_htmx_status_change_also_redraws_the_rows_other_copy_out_of_band(
        client, host_manager, acme_agreement):
    review = make_review(acme_agreement)
    item = make_action(acme_agreement, review=review, side="host")
    client.force_login(host_manager)
    response = client.post(status_url(item), {"status": "cancelled", "row_prefix": "-open"},
                           headers={"HX-Request": "true"})
    text = response.text
    assert text.count("<tr") == 2
    assert f'<tr id="action-{item.pk}-review" class="action-row is-closed" hx-swap-oob="true">' \
        in text


def test_an_unknown_status_is_refused_with_a_message(client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(acme_viewer)
    response = client.post(status_url(item), {"status": "forgotten"},
                           headers={"HX-Request": "true"})
    assert "Choose a listed status." in response.text
    item.refresh_from_db()
    assert item.status == "open" and not ProgramChange.objects.exists()


def test_without_javascript_a_status_change_returns_to_the_page_it_came_from(
        client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(acme_viewer)
    back = reverse("agreement_dashboard", args=[acme_agreement.code])
    response = client.post(status_url(item), {"status": "done", "next": back})
    assert response["Location"] == back
    outside = client.post(status_url(item), {"status": "open", "next": "https://evil.example/"})
    assert outside["Location"] == reviews_url(acme_agreement.code) + "#open-actions"


def test_a_status_can_only_be_posted(client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement)
    client.force_login(acme_viewer)
    assert client.get(status_url(item)).status_code == 405


# ---- On the dashboards of both sides --------------------------------------------------------


def test_the_agreement_dashboard_shows_the_review_due_and_open_actions(
        client, acme_viewer, acme_agreement):
    make_action(acme_agreement, side="host", due_in=-6, description="Send the MDF report")
    client.force_login(acme_viewer)
    text = client.get(reverse("agreement_dashboard", args=[acme_agreement.code])).text
    section = text[text.index('id="reviews-and-actions"'):]
    assert "review overdue" in section  # active since 2025 and never reviewed
    assert "Send the MDF report" in section and "6 days overdue" in section
    assert reviews_url(acme_agreement.code) in section
    assert "<select" not in section.split("</section>")[0]  # a host action: no status form


def test_the_partner_home_lists_their_own_overdue_actions_only(
        client, acme_viewer, acme_agreement, globex_agreement):
    make_action(acme_agreement, side="partner", due_in=-2, description="Acme partner task")
    make_action(acme_agreement, side="host", due_in=-2, description="Acme host task")
    make_action(globex_agreement, side="partner", due_in=-2, description="Globex task")
    client.force_login(acme_viewer)
    text = client.get(reverse("home")).text
    assert "Your overdue actions" in text and "Acme partner task" in text
    assert "Acme host task" not in text and "Globex task" not in text


def test_the_portfolio_counts_overdue_reviews_and_actions(
        client, host_manager, acme_agreement, globex_agreement, kpis):
    from scoring.services import scoring_run_inline
    from tests.conftest import write_observations

    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    scoring_run_inline()
    make_review(acme_agreement, days_ago=3)  # Acme is reviewed; Globex never was
    make_action(globex_agreement, due_in=-1)
    client.force_login(host_manager)
    response = client.get(reverse("portfolio"))
    figures = response.context["review_figures"]
    assert figures == {"overdue_reviews": 1, "overdue_actions": 1, "open_actions": 1,
                       "agreements_with_overdue_actions": 1}
    assert "overdue review today" in response.text


def test_the_portfolios_overdue_counts_follow_every_change_at_once(
        client, host_manager, acme_agreement, globex_agreement, kpis):
    """The counts are kept between requests, and not one request after a change through the
    services: a status changed through the page, a review recorded, an agreement ended, an
    action deleted."""
    from partnerships.governance_services import action_item_delete, review_create
    from partnerships.lifecycle import agreement_stage_move
    from scoring.services import scoring_run_inline
    from tests.conftest import write_observations

    write_observations([(acme_agreement, kpis["revenue"], "host", "2025-01-10", 50)])
    scoring_run_inline()
    late = make_action(globex_agreement, due_in=-1)
    other = make_action(acme_agreement, due_in=-3)
    client.force_login(host_manager)

    def figures() -> dict:
        return client.get(reverse("portfolio")).context["review_figures"]

    both = {"overdue_reviews": 2, "overdue_actions": 2, "open_actions": 2,
            "agreements_with_overdue_actions": 2}
    assert figures() == both
    assert figures() == both
    client.post(status_url(late), {"status": "done"})
    assert figures() == {"overdue_reviews": 2, "overdue_actions": 1, "open_actions": 1,
                         "agreements_with_overdue_actions": 1}
    review_create(agreement=acme_agreement, user=host_manager, kind="monthly_results",
                  held_on=today() - dt.timedelta(days=3))
    assert figures()["overdue_reviews"] == 1
    for stage in ("exiting", "ended"):
        agreement_stage_move(agreement=globex_agreement, to_stage=stage, user=host_manager,
                             reason="The partner leaves the program")
    assert figures()["overdue_reviews"] == 0
    action_item_delete(action=other, user=host_manager)
    assert figures() == {"overdue_reviews": 0, "overdue_actions": 0, "open_actions": 0,
                         "agreements_with_overdue_actions": 0}


# ---- Every change goes through the services ----------------------------------------------------


def test_every_change_of_reviews_and_actions_leaves_one_audit_event_with_its_address(
        client, host_manager, acme_viewer, acme_agreement):
    client.force_login(host_manager)
    client.post(reverse("program_review_new", args=[acme_agreement.code]), review_form())
    review = Review.objects.get()
    client.post(reverse("program_review_edit", args=[review.pk]),
                review_form(decisions="Expand to APAC"))
    client.post(reverse("program_action_new", args=[acme_agreement.code]),
                action_form(review=review.pk))
    action = ActionItem.objects.get()
    client.post(reverse("program_action_edit", args=[action.pk]),
                action_form(review=review.pk, status="open", owner_name="Ann Lee"))
    client.force_login(acme_viewer)
    client.post(status_url(action), {"status": "in_progress"})
    client.force_login(host_manager)
    client.post(reverse("program_action_delete", args=[action.pk]), {"confirm": "yes"})
    client.post(reverse("program_review_delete", args=[review.pk]), {"confirm": "yes"})
    changes = list(ProgramChange.objects.order_by("id"))
    assert [(change.object_type, change.kind) for change in changes] == [
        ("business review", "created"), ("business review", "updated"),
        ("action item", "created"), ("action item", "updated"), ("action item", "updated"),
        ("action item", "deleted"), ("business review", "deleted")]
    events = AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED).order_by("id")
    assert [event.detail["change"] for event in events] == [change.pk for change in changes]
    assert all(event.ip_address == "127.0.0.1" for event in events)
    assert events[4].user == acme_viewer


def test_an_unchanged_status_records_nothing(client, acme_viewer, acme_agreement):
    item = make_action(acme_agreement, status="in_progress")
    client.force_login(acme_viewer)
    response = client.post(status_url(item), {"status": "in_progress"}, headers=HTMX)
    assert response.status_code == 200 and "Status: in progress." in response.text
    assert not ProgramChange.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PROGRAM_CHANGED).exists()


@pytest.mark.parametrize("name", ["agreement_reviews", "program_review_new",
                                  "program_action_new"])
def test_the_reviews_pages_vary_on_htmx(client, host_manager, acme_agreement, name):
    client.force_login(host_manager)
    response = client.get(reverse(name, args=[acme_agreement.code]))
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
