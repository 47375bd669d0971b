"""Forgotten passwords: a one-time link by e-mail, throttled, and the same answer whoever asks.

The page answers "if the address belongs to an account, a link is on its way" whether or not it
does, and in the same time: the look-up and the e-mail happen in a task, not in the request.
Requests are counted from the audit log (durable, and shown to host admins): more than
PASSWORD_RESET_PER_EMAIL_PER_HOUR for one address, or PASSWORD_RESET_PER_CLIENT_PER_HOUR from
one client, are recorded but send nothing. A link works once, for PASSWORD_RESET_TIMEOUT.
"""

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpRequest
from django.urls import reverse_lazy
from django.utils import timezone

from .audit import audit_record, client_address
from .models import AuditAction, AuditEvent

logger = logging.getLogger(__name__)

SITE_NAME = "Partnership Performance"


def password_reset_request(*, email: str, request: HttpRequest) -> bool:
    """Record a reset request and queue its e-mail unless throttled; True when queued."""
    from .tasks import password_reset_mail

    email = email.strip()
    since = timezone.now() - dt.timedelta(hours=1)
    asked = AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET_REQUESTED, at__gte=since)
    address = client_address(request)
    throttled = (
        asked.filter(target__iexact=email).count() >= settings.PASSWORD_RESET_PER_EMAIL_PER_HOUR
        or (address is not None and asked.filter(ip_address=address).count()
            >= settings.PASSWORD_RESET_PER_CLIENT_PER_HOUR)
    )
    audit_record(action=AuditAction.PASSWORD_RESET_REQUESTED, request=request, target=email,
                 detail={"throttled": throttled})
    if throttled:
        logger.warning("Password reset for %r from %s throttled", email, address)
        return False
    password_reset_mail.delay_on_commit(email, request.get_host(), request.is_secure())
    return True


def password_reset_mail_send(*, email: str, domain: str, use_https: bool) -> int:
    """E-mail a reset link to each active account with this address; return how many."""
    form = PasswordResetForm({"email": email})
    if not form.is_valid():
        return 0
    users = list(form.get_users(email))
    form.save(
        domain_override=domain, use_https=use_https,
        subject_template_name="registration/password_reset_subject.txt",
        email_template_name="registration/password_reset_email.txt",
        html_email_template_name="registration/password_reset_email.html",
        extra_email_context={"site_name": SITE_NAME,
                             "valid_minutes": settings.PASSWORD_RESET_TIMEOUT // 60},
    )
    return len(users)


class ThrottledPasswordResetForm(PasswordResetForm):
    """Django's form, saved through the throttled request above instead of sending at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].label = "E-mail address"

    def save(self, *, request=None, **_options) -> None:
        password_reset_request(email=self.cleaned_data["email"], request=request)


class PasswordResetView(auth_views.PasswordResetView):
    form_class = ThrottledPasswordResetForm
    template_name = "registration/password_reset_form.html"
    success_url = reverse_lazy("password_reset_done")

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs),
                "reset_minutes": settings.PASSWORD_RESET_TIMEOUT // 60}


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        audit_record(action=AuditAction.PASSWORD_RESET, request=self.request, user=form.user,
                     target=f"user {form.user.pk}")
        return response
