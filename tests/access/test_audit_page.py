"""The audit log page: host admins filter by action, user, partner and dates; newest first,
paginated; every event says who, when, what, from which address and on which object."""

import datetime as dt

import pytest
from django.utils import timezone

from partnerships.audit import audit_record
from partnerships.models import AuditEvent

pytestmark = pytest.mark.django_db


def at(event: AuditEvent, when: dt.datetime) -> None:
    AuditEvent.objects.filter(pk=event.pk).update(at=when)


@pytest.fixture
def events(host_admin_client, host_admin, acme_viewer, acme, globex):
    # Only these four: not the log-in of the admin's test client.
    AuditEvent.objects.all().delete()
    day = timezone.make_aware(dt.datetime(2026, 3, 10, 12, 0))
    made = [
        audit_record(action="login", user=acme_viewer),
        audit_record(action="import", user=acme_viewer, partner=acme, target="import 7",
                     detail={"rows": 12}),
        audit_record(action="role_changed", user=host_admin, partner=globex,
                     target="user globex-viewer",
                     detail={"from": {"role": "partner_viewer", "partner": "globex"},
                             "to": {"role": "partner_editor", "partner": "globex"}}),
        audit_record(action="login_failed", username="mallory"),
    ]
    AuditEvent.objects.filter(pk=made[3].pk).update(ip_address="198.51.100.7")
    for offset, event in enumerate(made):
        at(event, day + dt.timedelta(days=offset))
    return made


def rows(response) -> list[str]:
    if "<tbody>" not in response.text:
        return []
    return response.text.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]


def test_events_are_listed_newest_first_with_who_when_what_where_and_object(
    host_admin_client, events
):
    response = host_admin_client.get("/access/audit/")

    assert response.status_code == 200
    listed = rows(response)
    assert len(listed) == 4
    assert "Failed log-in" in listed[0] and "mallory" in listed[0]
    assert "198.51.100.7" in listed[0] and "2026-03-13 12:00:00" in listed[0]
    assert "Role changed" in listed[1] and "user globex-viewer" in listed[1]
    assert "partner viewer (globex) → partner editor (globex)" in listed[1]
    assert "Globex" in listed[1]
    assert "Metrics imported" in listed[2] and "import 7" in listed[2] and "rows: 12" in listed[2]
    assert "Logged in" in listed[3] and "acme-viewer" in listed[3]


@pytest.mark.parametrize(("query", "expected"), [
    ("action=import", ["Metrics imported"]),
    ("user=ACME", ["Metrics imported", "Logged in"]),
    ("partner=globex", ["Role changed"]),
    ("date_from=2026-03-11&date_to=2026-03-12", ["Role changed", "Metrics imported"]),
    ("date_to=2026-03-10", ["Logged in"]),
    ("action=login&user=acme", ["Logged in"]),
])
def test_filters(host_admin_client, events, query, expected):
    listed = rows(host_admin_client.get(f"/access/audit/?{query}"))
    assert len(listed) == len(expected)
    for row, action in zip(listed, expected, strict=True):
        assert action in row


def test_bad_filters_are_named_and_not_applied(host_admin_client, events):
    response = host_admin_client.get(
        "/access/audit/?date_from=2026-03-12&date_to=2026-03-10&partner=nope")
    assert response.status_code == 200
    assert "The end of the range is before its start." in response.text
    assert "Select a valid choice" in response.text


def test_pages_of_fifty(host_admin_client, host_admin):
    for number in range(120):
        audit_record(action="export", user=host_admin, target=f"export {number:03d}")
    first = host_admin_client.get("/access/audit/?action=export")
    assert len(rows(first)) == 50 and "export 119" in rows(first)[0]
    assert "page 1 of 3" in first.text
    assert 'href="?action=export&amp;page=2"' in first.text
    last = host_admin_client.get("/access/audit/?action=export&page=3")
    assert len(rows(last)) == 20 and "export 000" in rows(last)[-1]


def test_htmx_filter_answers_with_the_results_only(host_admin_client, events):
    response = host_admin_client.get("/access/audit/?action=login",
                                     headers={"HX-Request": "true"})
    assert response.text.lstrip().startswith('<section id="audit-results"')
    assert "<html" not in response.text and len(rows(response)) == 1
    assert "HX-Request" in response.headers["Vary"]


def test_the_audit_log_is_for_host_admins_only(client, host_manager, acme_viewer, events):
    assert client.get("/access/audit/").status_code == 302
    client.force_login(host_manager)
    assert client.get("/access/audit/").status_code == 403
    client.force_login(acme_viewer)
    assert client.get("/access/audit/").status_code == 404
