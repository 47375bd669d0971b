from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class PartnershipsConfig(AppConfig):
    name = "partnerships"
    verbose_name = "Partnerships"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth import signals as auth_signals

        from . import security

        # Audit of sign-ins: receivers in partnerships/security.py.
        auth_signals.user_logged_in.connect(
            security.on_user_logged_in, dispatch_uid="partnerships.audit.login")
        auth_signals.user_login_failed.connect(
            security.on_user_login_failed, dispatch_uid="partnerships.audit.login_failed")
        auth_signals.user_logged_out.connect(
            security.on_user_logged_out, dispatch_uid="partnerships.audit.logout")
        user_locked_out.connect(
            security.on_user_locked_out, dispatch_uid="partnerships.audit.locked_out")


class HostAdminConfig(AdminConfig):
    """django.contrib.admin with our site: host staff only, behind the second factor."""

    default_site = "partnerships.security.HostAdminSite"
