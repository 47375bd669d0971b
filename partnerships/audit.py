"""The audit log: one function every part of the project calls to record a security event."""

from django.http import HttpRequest

from .models import AuditEvent, Partner


def client_address(request: HttpRequest | None) -> str | None:
    """The address the request came from. REMOTE_ADDR only: a forwarded-for header is trusted
    only when a proxy in front of us sets REMOTE_ADDR from it (configured there, not here)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    user=None,
    username: str = "",
    partner: Partner | None = None,
    target: str = "",
    detail: dict | None = None,
) -> AuditEvent:
    """Record one security-relevant action (who, when, what, from which address)."""
    if user is None and request is not None and request.user.is_authenticated:
        user = request.user
    if user is not None and not username:
        username = user.get_username()
    return AuditEvent.objects.create(
        action=action,
        user=user,
        username=username[:150],
        ip_address=client_address(request),
        partner=partner,
        target=str(target)[:200],
        detail=detail or {},
    )
