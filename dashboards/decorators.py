"""View decorators that answer a refusal with a page of their own (the imports' 403 page).

They are built on the decisions of `partnerships.access`; the decorators that answer 404 or 403
without a page of their own (`host_required`, `manager_required`, `admin_required`) live there.
"""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import render

from partnerships.access import may_see_imports
from partnerships.services import ImportNotAllowed, import_uploader

from .views import HtmxHttpRequest

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

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not may_see_imports(request.user):
            return _forbidden(request, NO_SIDE_MESSAGE)
        try:
            # The refusal says why (a viewer, an inactive account): shown on the page.
            request.uploader = import_uploader(user=request.user)
        except ImportNotAllowed as refused:
            return _forbidden(request, str(refused))
        return view(request, *args, **kwargs)

    return wrapped
