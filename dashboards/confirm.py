"""One way to ask before a destructive action (remove, delete, revoke, withdraw, deactivate).

The endpoint acts only on a POST that carries `confirm=yes`; any other request is answered
with the question instead, so a stray single POST (a double submit, a replayed form, a script)
never destroys anything. With htmx the question replaces the button that asked, in place
(`_confirm.html#ask`); without JavaScript it is a page of its own (`_confirm.html`). Buttons
that lead there are drawn by `_confirm.html#trigger`; static/js/confirm.js puts the button
back when the user keeps the object (Keep, or Escape) and returns focus to it.
"""

from dataclasses import dataclass

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.utils.text import slugify

CONFIRM_FIELD, CONFIRM_VALUE = "confirm", "yes"
# A trigger may name the element the confirmed answer replaces (htmx), e.g. a table row.
TARGET_FIELD = "confirm_target"
TEMPLATE = "_confirm.html"
NOT_RESENT = frozenset({"csrfmiddlewaretoken", CONFIRM_FIELD, TARGET_FIELD})


@dataclass(frozen=True)
class Confirmation:
    """What the user is asked: the question, what follows, the verb on the button, and where
    Keep goes without JavaScript."""

    question: str  # "Remove “Qualified leads” from ACME-CM-2025?"
    consequence: str  # "Its observations are kept; the removal is in the agreement's history."
    action: str  # "Remove"
    cancel_url: str


def confirmed(request) -> bool:
    """Whether the request is the confirmed POST of a destructive action."""
    return request.method == "POST" and request.POST.get(CONFIRM_FIELD) == CONFIRM_VALUE


def confirmation_page(request, confirmation: Confirmation) -> HttpResponse:
    """The question instead of the action: in place for htmx, a page otherwise. The fields the
    request carried (a token id, a `next` address) are sent again with the confirmation."""
    trigger_id = request.htmx.trigger if request.htmx else ""
    trigger_id = trigger_id or f"confirm-{slugify(request.path)}"
    resent = [(name, value) for name, values in request.POST.lists() if name not in NOT_RESENT
              for value in values]
    context = {
        "confirmation": confirmation,
        "post_url": request.get_full_path(),
        "resent": resent,
        "target": request.POST.get(TARGET_FIELD, ""),
        # htmx names the trigger that asked (HX-Trigger): Keep puts that one back.
        "trigger_id": trigger_id,
        "ask_id": f"{trigger_id}-ask",
    }
    template = f"{TEMPLATE}#ask" if request.htmx else TEMPLATE
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
