"""CSV downloads: the tables of the agreement dashboard and the scorecard export.

Every download goes through the scoping layer (another partner's agreement is a 404, a partner
user's scorecard export holds only their own agreements) and is written to the audit log."""

import re
from itertools import chain

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse

from partnerships.access import agreements_for, membership_of
from partnerships.audit import audit_record
from partnerships.models import AuditAction
from partnerships.months import MONTH_PATTERN
from scoring.exports import (
    EXPORT_HEADER,
    iter_csv_lines,
    scorecard_export_iter,
    scorecard_export_queryset,
)
from scoring.models import Scorecard, ScoringRun

from .csv_rows import (
    AGREEMENT_KPI_EXPORT_HEADER,
    AGREEMENT_MONTHS_EXPORT_HEADER,
    agreement_kpi_export_rows,
    agreement_months_export_rows,
)
from .http import HtmxHttpRequest, agreement_visible, month_asked
from .selectors.agreement import agreement_kpi_table, agreement_months_to, agreement_scorecards

BOM = "\ufeff"


def csv_filename(*parts: str) -> str:
    # Codes may hold characters a Content-Disposition header must not carry unquoted.
    return "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in parts if part) + ".csv"


def csv_response(*, lines, filename: str, bom: bool) -> StreamingHttpResponse:
    # A byte-order mark first, so spreadsheet programs read the file as UTF-8; the scorecard
    # export has none, to stay byte for byte what `export_scorecards` writes.
    body = chain([BOM], lines) if bom else lines
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def export_audit(request: HtmxHttpRequest, *, target: str, detail: dict) -> None:
    membership = membership_of(request.user)
    audit_record(action=AuditAction.EXPORT, request=request,
                 partner=membership.partner if membership and not membership.is_host else None,
                 target=target, detail=detail)


def _agreement_month(request: HtmxHttpRequest,
                     agreement) -> tuple[ScoringRun | None, list[Scorecard], str]:
    """The published run, the agreement's scorecards in it, and the month asked for (the
    run's last by default), as the dashboard picks it."""
    run = ScoringRun.objects.current()
    scorecards = agreement_scorecards(run=run, agreement=agreement)
    return run, scorecards, month_asked(request, [card.period for card in scorecards])


@login_required
def agreement_kpis_csv(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The KPI table of the dashboard for the month asked for (the run's last by default)."""
    agreement = agreement_visible(request=request, code=code)
    run, _, month = _agreement_month(request, agreement)
    rows = agreement_kpi_export_rows(
        agreement=agreement, period=month,
        rows=agreement_kpi_table(run=run, agreement=agreement, period=month))
    export_audit(request, target=f"KPI table of {agreement.code}",
                 detail={"agreement": agreement.code, "period": month, "rows": len(rows)})
    return csv_response(lines=iter_csv_lines(header=AGREEMENT_KPI_EXPORT_HEADER, rows=rows),
                        filename=csv_filename(agreement.code, "kpis", month), bom=True)


@login_required
def agreement_months_csv(request: HtmxHttpRequest, code: str) -> HttpResponse:
    """The tier and payout table of the dashboard: every month up to the one asked for."""
    agreement = agreement_visible(request=request, code=code)
    _, scorecards, month = _agreement_month(request, agreement)
    rows = agreement_months_export_rows(
        agreement=agreement, months=agreement_months_to(scorecards=scorecards, period=month))
    export_audit(request, target=f"tiers and payouts of {agreement.code}",
                 detail={"agreement": agreement.code, "period": month, "rows": len(rows)})
    return csv_response(
        lines=iter_csv_lines(header=AGREEMENT_MONTHS_EXPORT_HEADER, rows=rows),
        filename=csv_filename(agreement.code, "months-to", month), bom=True)


@login_required
def scorecard_export(request: HtmxHttpRequest) -> HttpResponse:
    """DOMAIN.md's scorecard export, byte for byte what `export_scorecards` writes: the whole
    program for host users, only their own agreements for partner users. ?period=YYYY-MM."""
    period = request.GET.get("period", "").strip()
    if period and not MONTH_PATTERN.fullmatch(period):
        return HttpResponse(f"period must be a month as YYYY-MM, not {period[:20]!r}.",
                            status=400, content_type="text/plain; charset=utf-8")
    membership = membership_of(request.user)
    host = membership is not None and membership.is_host
    run = ScoringRun.objects.current()
    # Partner users: the agreements the scoping layer gives them, by id.
    visible = None if host else agreements_for(user=request.user).order_by().values("pk")
    count = scorecard_export_queryset(run=run, period=period or None,
                                      agreement_ids=visible).count()
    export_audit(request, target="scorecards",
                 detail={"period": period, "rows": count,
                         "scope": "program" if host else "partner"})
    scope = "" if host else (
        membership.partner.slug if membership and membership.partner else "none")
    rows = scorecard_export_iter(run=run, period=period or None, agreement_ids=visible)
    return csv_response(lines=iter_csv_lines(header=EXPORT_HEADER, rows=rows),
                        filename=csv_filename("scorecards", scope, period), bom=False)
