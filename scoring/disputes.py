"""Resolving a dispute of a closed month: a host admin reopens the month, with the dispute as the
reason, and the value is written, in one transaction (partnerships cannot reopen months: the
closing rules live here). Either both happen or neither: a closed month never changes silently.
"""

from django.db import transaction
from django.http import HttpRequest

from partnerships.disputes import dispute_resolve
from partnerships.models import Dispute

from .closing import month_reopen


def dispute_reopen_reason(dispute: Dispute) -> str:
    """The reason a month is reopened for a dispute, as the Months page and the audit log say."""
    return (f"Dispute {dispute.pk}: {dispute.kpi.name} of {dispute.agreement.code} in "
            f"{dispute.month} is corrected")


def dispute_resolve_reopening(*, user, dispute: Dispute, resolution: str,
                              value: float | str | None = None, text: str = "",
                              request: HttpRequest | None = None) -> tuple[Dispute, list[str]]:
    """Reopen the dispute's month (host admins; ClosingRefused or PermissionDenied otherwise)
    and resolve the dispute; returns the dispute and the months reopened."""
    with transaction.atomic():
        reopened = month_reopen(month=dispute.month, reason=dispute_reopen_reason(dispute),
                                user=user, request=request)
        resolved = dispute_resolve(user=user, dispute=dispute, resolution=resolution,
                                   value=value, text=text, request=request)
    return resolved, reopened
