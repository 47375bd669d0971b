"""What the views of the dashboards share: the request type, the one lookup of an agreement by
code, the month a page shows, the answers to htmx (a named partial, inline validation, the next
page after a change), a service's refusal shown on its form, and the decorators of the imports'
pages (a refusal answered with a page of their own).

The HTMX plumbing is django-htmx's and Django's (`HtmxDetails`, `HttpResponseClientRedirect`,
`patch_vary_headers` and `vary_on_headers("HX-Request")`): no view module writes htmx headers
itself. The decorators that answer 404 or 403 without a page (`host_required`,
`manager_required`, `admin_required`) live with the access decisions in `partnerships.access`.
"""

from collections.abc import Callable
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from partnerships.access import agreements_for, may_see_imports
from partnerships.models import Agreement
from partnerships.services import ImportNotAllowed, import_uploader

from .program.kpi_forms import partial_errors
from .selectors.months import month_default


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# ---- What a view looks up ----------------------------------------------------------------


def agreement_visible(*, request: HtmxHttpRequest, code: str) -> Agreement:
    """The agreement by code if the user may see it; 404 otherwise, whether it exists or not."""
    agreement = (agreements_for(user=request.user)
                 .select_related("partner", "owner", "incentive_plan")
                 .filter(code=code).first())
    if agreement is None:
        # Another partner's agreement answers exactly like one that does not exist.
        raise Http404("No such agreement.")
    return agreement


def month_asked(request: HtmxHttpRequest, months: list[str]) -> str:
    """The month (YYYY-MM) the request asks for if the run scored it, else the month a page
    opens on: the latest of `months` that has ended, never the month in progress (its figures
    are partial; it can still be asked for)."""
    asked = request.GET.get("month", "")
    if asked in months:
        return asked
    return month_default(months)


def month_neighbours(months: list[str], month: str) -> tuple[str, str]:
    """The scored months before and after `month` ("" at either end)."""
    if month not in months:
        return "", ""
    index = months.index(month)
    return (months[index - 1] if index > 0 else "",
            months[index + 1] if index + 1 < len(months) else "")


# ---- What a view answers -------------------------------------------------------------------


def partial_or_page(request: HtmxHttpRequest, template: str, partial: str, context: dict,
                    *, whole: bool = False) -> HttpResponse:
    """The named partial for htmx requests (unless `whole`), the whole page otherwise."""
    use_partial = request.htmx and not request.htmx.history_restore_request and not whole
    name = f"{template}#{partial}" if use_partial else template
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def validating(request: HtmxHttpRequest) -> bool:
    """An inline-validation request (`?validate=1`): check the form, save nothing."""
    return request.method == "POST" and request.GET.get("validate") == "1"


def validation_response(request: HtmxHttpRequest, form, *, extra: str = "",
                        warn_fields: list[str] | tuple = (), warn_text: str = "") -> HttpResponse:
    """Inline validation: each field's messages, swapped in beside the field out of band."""
    partial_errors(form)
    response = render(request, "program/kpis/_feedback.html", {
        "form": form, "extra": extra, "warn_fields": warn_fields, "warn_text": warn_text})
    patch_vary_headers(response, ["HX-Request"])
    return response


def redirect_after_change(request: HtmxHttpRequest, url: str) -> HttpResponse:
    """After a saved form or an action: the next page, loaded whole. htmx follows the
    redirect header of an empty answer; without JavaScript it is a plain redirect."""
    if request.htmx:
        return HttpResponseClientRedirect(url, status=204)
    return redirect(url)


def refusal_into_form(form: forms.BaseForm, error: ValidationError) -> None:
    """A service's refusal on the form that was sent, so nothing typed is lost: each message
    beside its field, or above the form when it names no field of the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


# ---- Decorators of the imports' pages: a refusal is a page of its own ----------------------


NO_SIDE_MESSAGE = (
    "Your account is not linked to the host or to a partner yet, so there are no imports to "
    "show. Ask an administrator to give you a role."
)


def _forbidden(request: HtmxHttpRequest, message: str) -> HttpResponse:
    return render(request, "dashboards/imports/forbidden.html", {"message": message},
                  status=403)


def imports_visible(view: Callable) -> Callable:
    """Signed-in members of the host or of a partner (viewers included): they see imports."""

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not may_see_imports(request.user):
            return _forbidden(request, NO_SIDE_MESSAGE)
        return view(request, *args, **kwargs)

    return wrapped


def uploader_required(view: Callable) -> Callable:
    """Users who may import (host managers and admins, partner editors); 403 for viewers.

    The view gets the `Uploader` (side and partner) as `request.uploader`."""

    @imports_visible
    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            # The refusal says why (a viewer, an inactive account): shown on the page.
            request.uploader = import_uploader(user=request.user)
        except ImportNotAllowed as refused:
            return _forbidden(request, str(refused))
        return view(request, *args, **kwargs)

    return wrapped
