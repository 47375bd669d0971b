"""A planned business review as an iCalendar event (RFC 5545), written by hand: one event needs
a few lines, not a dependency.

The text follows the RFC where calendar programs are strict: CRLF line ends, lines folded at 75
octets (a continuation line starts with a space, and a multi-byte character is never split),
commas, semicolons, backslashes and newlines escaped in text values. The UID is the review's id
and the site's host, so a second download updates the same event instead of adding one; a timed
review's DTSTART is in UTC (the local time converted with the site's time zone), an all-day one
is a DATE.
"""

import datetime as dt
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from .models import Review

LINE_OCTETS = 75


def ical_text(value: str) -> str:
    """A TEXT value escaped (RFC 5545 § 3.3.11): backslash, semicolon, comma and newlines."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def ical_fold(line: str) -> str:
    """One content line folded into lines of at most 75 octets, joined with CRLF + space."""
    parts, current, size = [], "", 0
    for char in line:
        octets = len(char.encode())
        # Continuation lines start with a space, which counts towards their 75 octets.
        limit = LINE_OCTETS if not parts else LINE_OCTETS - 1
        if size + octets > limit:
            parts.append(current)
            current, size = "", 0
        current += char
        size += octets
    parts.append(current)
    return "\r\n ".join(parts)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def review_uid(review: Review) -> str:
    """The event's UID: stable for the review, unique to this site."""
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"review-{review.pk}@{host}"


def review_ical(*, review: Review, url: str, now: dt.datetime | None = None) -> str:
    """The review as a VCALENDAR with one VEVENT; `url` links to the agreement's reviews."""
    agreement = review.agreement
    now = now or timezone.now()
    if review.starts_at is not None:
        zone = ZoneInfo(settings.TIME_ZONE)
        start = dt.datetime.combine(review.held_on, review.starts_at, tzinfo=zone)
        end = start + dt.timedelta(minutes=review.duration_minutes)
        when = [f"DTSTART:{_utc(start)}", f"DTEND:{_utc(end)}"]
    else:
        when = [f"DTSTART;VALUE=DATE:{review.held_on:%Y%m%d}",
                f"DTEND;VALUE=DATE:{review.held_on + dt.timedelta(days=1):%Y%m%d}"]
    description = review.agenda.strip()
    attendees = [(label, names.strip()) for label, names in (
        (agreement.partner.name, review.partner_attendees), ("Host", review.host_attendees))
        if names.strip()]
    if attendees:
        description += "\n\nAttendees\n" + "\n".join(f"{label}: {names}"
                                                    for label, names in attendees)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Partnership Performance//Business reviews//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{review_uid(review)}",
        f"DTSTAMP:{_utc(now)}",
        *when,
        "SUMMARY:" + ical_text(f"{review.get_kind_display()}: {agreement.partner.name} — "
                               f"{agreement.code}"),
        "DESCRIPTION:" + ical_text(description.strip()),
        f"URL:{url}",
        "STATUS:CONFIRMED",
        f"LAST-MODIFIED:{_utc(review.updated_at or now)}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(ical_fold(line) + "\r\n" for line in lines)
