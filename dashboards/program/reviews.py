"""Business reviews and their action items.

Both sides read an agreement's reviews page and download a planned review for their calendars;
host managers (and admins) plan reviews ahead, record them as held, record, edit and delete
reviews (cancel planned ones) and actions; partner users update the status of the actions their
side owns. Every change goes to the program's history. Forms work without JavaScript (post,
then redirect); with htmx the form panel is swapped in place with its errors, and a status
change answers with the one table row that changed.
"""

import datetime as dt
from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Model, Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from partnerships import governance_services
from partnerships.access import (
    action_items_for,
    manager_required,
    may_update_action_status,
    membership_of,
    reviews_for,
)
from partnerships.ical import review_ical
from partnerships.models import ActionItem, ActionStatus, Agreement, ReviewStatus
from partnerships.reviews import OPEN_STATUSES

from ..confirm import Confirmation, confirmation_page, confirmed
from ..http import HtmxHttpRequest, agreement_visible, redirect_after_change, refusal_into_form
from .overdue import annotate_actions, overdue_for
from .review_forms import ActionItemForm, ActionStatusForm, ReviewForm, ReviewPlanForm

PAGE = "program/reviews/page.html"
# Where a row stands (the same action may be listed twice on a page): part of its HTML id.
ROW_PREFIXES = ("-open", "-review", "-closed", "-panel", "-home")


def _reviews_url(agreement: Agreement, anchor: str = "") -> str:
    return reverse("agreement_reviews", args=[agreement.code]) + (f"#{anchor}" if anchor else "")


def _done(request: HtmxHttpRequest, url: str, notice: str) -> HttpResponse:
    """After a change: a message, then the page (htmx follows HX-Redirect)."""
    messages.success(request, notice)
    return redirect_after_change(request, url)


def _can_manage(request: HtmxHttpRequest) -> bool:
    membership = membership_of(request.user)
    return membership is not None and membership.is_host and membership.can_manage


# ---- The reviews page (both sides) ------------------------------------------------------------


@login_required
@vary_on_headers("HX-Request")
def agreement_reviews(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    today = timezone.localdate()
    actions = (action_items_for(user=request.user).filter(agreement=agreement)
               .select_related("agreement"))
    reviews = list(
        reviews_for(user=request.user).filter(agreement=agreement).select_related("created_by")
        .prefetch_related(Prefetch("action_items", queryset=actions.order_by("due_date", "id")))
    )
    for review in reviews:
        review.actions = annotate_actions(review.action_items.all(), user=request.user,
                                          today=today)
    # Planned reviews first, the soonest first; then the held ones, newest first.
    planned = sorted((review for review in reviews if review.status == ReviewStatus.PLANNED),
                     key=lambda review: (review.held_on, review.starts_at or dt.time.min,
                                         review.pk))
    held = [review for review in reviews if review.status == ReviewStatus.HELD]
    open_actions = annotate_actions(
        actions.filter(status__in=OPEN_STATUSES).select_related("review")
        .order_by("due_date", "id"), user=request.user, today=today)
    loose_actions = annotate_actions(
        actions.filter(review__isnull=True).exclude(status__in=OPEN_STATUSES)
        .order_by("-due_date", "-id"), user=request.user, today=today)
    context = {
        "agreement": agreement,
        "state": overdue_for(agreement_ids=[agreement.pk], today=today)[agreement.pk],
        "reviews": held,
        "planned_reviews": planned,
        "open_actions": open_actions,
        "open_count": len(open_actions),
        "overdue_count": sum(1 for action in open_actions if action.overdue_days),
        "loose_actions": loose_actions,
        "can_manage": _can_manage(request),
        "status_choices": ActionStatus.choices,
        "today": today,
    }
    return render(request, PAGE, context)


# ---- Reviews (host managers) ------------------------------------------------------------------


def _saved(form: forms.ModelForm, save: Callable[[dict], Model]) -> Model | None:
    """A posted, valid form saved by `save(cleaned_data)` (a service): the saved object; None
    when nothing was posted or the form (or the service, on the form) refused it."""
    if not form.is_bound or not form.is_valid():
        return None
    try:
        return save(form.cleaned_data)
    except ValidationError as error:
        refusal_into_form(form, error)
        return None


def _form_page(request: HtmxHttpRequest, template: str, context: dict) -> HttpResponse:
    if request.htmx:
        template += "#form-panel"
    return render(request, template, context)


@manager_required
@vary_on_headers("HX-Request")
def review_create(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    form = ReviewForm(request.POST or None, agreement=agreement)
    review = _saved(form, lambda fields: governance_services.review_create(
        agreement=agreement, user=request.user, request=request, **fields))
    if review is not None:
        url = reverse("program_action_new", args=[agreement.code]) + f"?review={review.pk}"
        return _done(request, url, f"{review.get_kind_display()} of {review.held_on:%Y-%m-%d} "
                                   "recorded. Add its action items below, or go back to the "
                                   "reviews.")
    return _form_page(request, "program/reviews/review_form.html",
                      {"form": form, "agreement": agreement, "review": None})


@manager_required
@vary_on_headers("HX-Request")
def review_plan(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    form = ReviewPlanForm(request.POST or None, agreement=agreement)
    review = _saved(form, lambda fields: governance_services.review_schedule(
        agreement=agreement, user=request.user, request=request, **fields))
    if review is not None:
        return _done(request, _reviews_url(agreement, f"review-{review.pk}"),
                     f"{review.get_kind_display()} planned for {review.held_on:%Y-%m-%d}. Both "
                     "sides see it as upcoming and can add it to their calendars.")
    return _form_page(request, "program/reviews/review_form.html",
                      {"form": form, "agreement": agreement, "review": None, "planning": True})


@manager_required
@vary_on_headers("HX-Request")
def review_edit(request: HtmxHttpRequest, review_id: int) -> HttpResponse:
    review = get_object_or_404(
        reviews_for(user=request.user).select_related("agreement__partner"), pk=review_id)
    agreement = review.agreement
    planning = review.status == ReviewStatus.PLANNED
    form_class = ReviewPlanForm if planning else ReviewForm
    form = form_class(request.POST or None, instance=review, agreement=agreement)
    if _saved(form, lambda fields: governance_services.review_update(
            review=review, user=request.user, request=request, **fields)):
        return _done(request, _reviews_url(agreement, f"review-{review.pk}"), "Review saved.")
    return _form_page(request, "program/reviews/review_form.html",
                      {"form": form, "agreement": agreement, "review": review,
                       "planning": planning})


@manager_required
@vary_on_headers("HX-Request")
def review_hold(request: HtmxHttpRequest, review_id: int) -> HttpResponse:
    """Record a planned review as held: the record form, filled with what was planned."""
    review = get_object_or_404(
        reviews_for(user=request.user).filter(status=ReviewStatus.PLANNED)
        .select_related("agreement__partner"), pk=review_id)
    agreement = review.agreement
    initial = {"held_on": min(review.held_on, timezone.localdate())}
    form = ReviewForm(request.POST or None, instance=review, agreement=agreement,
                      initial=initial)
    held = _saved(form, lambda fields: governance_services.review_record_held(
        review=review, user=request.user, request=request, **fields))
    if held is not None:
        url = reverse("program_action_new", args=[agreement.code]) + f"?review={held.pk}"
        return _done(request, url, f"{held.get_kind_display()} of {held.held_on:%Y-%m-%d} "
                                   "recorded as held. Add its action items below, or go back "
                                   "to the reviews.")
    return _form_page(request, "program/reviews/review_form.html",
                      {"form": form, "agreement": agreement, "review": review,
                       "holding": True})


@login_required
def review_ics(request: HtmxHttpRequest, code: str, review_id: int) -> HttpResponse:
    """A planned review as an iCalendar file (both sides, their own agreements' reviews)."""
    agreement = agreement_visible(request=request, code=code)
    review = get_object_or_404(
        reviews_for(user=request.user).filter(agreement=agreement, status=ReviewStatus.PLANNED)
        .select_related("agreement__partner"), pk=review_id)
    text = review_ical(review=review, url=request.build_absolute_uri(
        _reviews_url(agreement, f"review-{review.pk}")))
    response = HttpResponse(text.encode(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="review-{agreement.code}-{review.held_on:%Y-%m-%d}.ics"')
    return response


KEPT_IN_HISTORY = "Both sides stop seeing it. The deletion is kept in the agreement's history."


def _delete(request: HtmxHttpRequest, agreement: Agreement, delete: Callable[[], None], *,
            notice: str, question: str, consequence: str,
            action: str = "Delete") -> HttpResponse:
    """Unless confirmed: ask; confirmed: `delete()` the review or action (a service)."""
    if not confirmed(request):
        return confirmation_page(request, Confirmation(
            question=question, consequence=consequence, action=action,
            cancel_url=_reviews_url(agreement)))
    delete()
    return _done(request, _reviews_url(agreement), notice)


@manager_required
def review_delete(request: HtmxHttpRequest, review_id: int) -> HttpResponse:
    review = get_object_or_404(
        reviews_for(user=request.user).select_related("agreement__partner"), pk=review_id)
    if review.status == ReviewStatus.PLANNED:
        return _delete(request, review.agreement,
                       lambda: governance_services.review_cancel(review=review,
                                                                 user=request.user,
                                                                 request=request),
                       question=f"Cancel the {review.get_kind_display().lower()} planned for "
                                f"{review.held_on:%Y-%m-%d} ({review.agreement.code})?",
                       consequence="Both sides stop seeing it as upcoming; calendars that "
                                   "imported it keep their copy. The cancellation is kept in "
                                   "the agreement's history.",
                       notice="Planned review cancelled.", action="Cancel the review")
    consequence = KEPT_IN_HISTORY
    if not confirmed(request):
        count = review.action_items.count()
        if count:
            consequence = (f"Its {count} action item{pluralize(count)} stay{pluralize(count, 's,')}"
                           " on the agreement, no longer tied to a review. " + consequence)
    return _delete(request, review.agreement,
                   lambda: governance_services.review_delete(review=review, user=request.user,
                                                             request=request),
                   question=f"Delete the {review.get_kind_display().lower()} of "
                            f"{review.held_on:%Y-%m-%d} ({review.agreement.code})?",
                   consequence=consequence,
                   notice="Review deleted. Its action items stay on the agreement.")


# ---- Action items (host managers) -------------------------------------------------------------


@manager_required
@vary_on_headers("HX-Request")
def action_create(request: HtmxHttpRequest, code: str) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    initial = {}
    review_id = request.GET.get("review", "")
    if review_id.isdigit():
        initial["review"] = (reviews_for(user=request.user)
                             .filter(agreement=agreement, pk=review_id).first())
    form = ActionItemForm(request.POST or None, agreement=agreement, initial=initial)
    action = _saved(form, lambda fields: governance_services.action_item_create(
        agreement=agreement, user=request.user, request=request, **fields))
    if action is not None:
        notice = f"Action “{action}” added, due {action.due_date:%Y-%m-%d}."
        if "add_another" in request.POST:
            url = reverse("program_action_new", args=[agreement.code])
            if action.review_id:
                url += f"?review={action.review_id}"
            return _done(request, url, notice)
        anchor = f"review-{action.review_id}" if action.review_id else "open-actions"
        return _done(request, _reviews_url(agreement, anchor), notice)
    return _form_page(request, "program/reviews/action_form.html",
                      {"form": form, "agreement": agreement, "action": None})


def _other_copies(action: ActionItem, previous_status: str, row_prefix: str) -> list[str]:
    """The ids (prefixes) of the action's other rows on the reviews page, as it was drawn."""
    if row_prefix not in ("-open", "-review", "-closed"):
        return []
    drawn = []
    if previous_status in OPEN_STATUSES:
        drawn.append("-open")
    if action.review_id:
        drawn.append("-review")
    elif previous_status not in OPEN_STATUSES:
        drawn.append("-closed")
    return [prefix for prefix in drawn if prefix != row_prefix]


@manager_required
@vary_on_headers("HX-Request")
def action_edit(request: HtmxHttpRequest, action_id: int) -> HttpResponse:
    action = get_object_or_404(
        action_items_for(user=request.user).select_related("agreement__partner"), pk=action_id)
    agreement = action.agreement
    form = ActionItemForm(request.POST or None, instance=action, agreement=agreement)
    saved = _saved(form, lambda fields: governance_services.action_item_update(
        action=action, user=request.user, request=request, **fields))
    if saved is not None:
        anchor = f"review-{saved.review_id}" if saved.review_id else "open-actions"
        return _done(request, _reviews_url(agreement, anchor), "Action saved.")
    return _form_page(request, "program/reviews/action_form.html",
                      {"form": form, "agreement": agreement, "action": action})


@manager_required
def action_delete(request: HtmxHttpRequest, action_id: int) -> HttpResponse:
    action = get_object_or_404(
        action_items_for(user=request.user).select_related("agreement__partner"), pk=action_id)
    return _delete(request, action.agreement,
                   lambda: governance_services.action_item_delete(action=action,
                                                                  user=request.user,
                                                                  request=request),
                   notice="Action deleted.",
                   question=f"Delete the action “{action.description}” of "
                            f"{action.agreement.code}?",
                   consequence=f"Owned by {action.owner_name} "
                               f"({action.get_owner_side_display().lower()}), due "
                               f"{action.due_date:%Y-%m-%d}, {action.get_status_display().lower()}"
                               f". {KEPT_IN_HISTORY}")


# ---- An action's status (host managers: any; partner users: their side's) --------------------


@login_required
@require_POST
@vary_on_headers("HX-Request")
def action_status(request: HtmxHttpRequest, code: str, action_id: int) -> HttpResponse:
    agreement = agreement_visible(request=request, code=code)
    action = (action_items_for(user=request.user).filter(agreement=agreement, pk=action_id)
              .select_related("agreement").first())
    if action is None:
        raise Http404("No such action.")
    if not may_update_action_status(user=request.user, action=action):
        raise PermissionDenied("Only the host updates the host's actions.")
    form = ActionStatusForm(request.POST)
    notice = error = ""
    previous_status = action.status
    if form.is_valid():
        try:
            action = governance_services.action_item_status_update(
                action=action, user=request.user, status=form.cleaned_data["status"],
                request=request)
        except ValidationError as refused:
            refusal_into_form(form, refused)
        else:
            notice = f"Status: {action.get_status_display().lower()}."
    if form.errors:
        error = " ".join(message for errors in form.errors.values() for message in errors)
    if request.htmx:
        today, row_prefix = timezone.localdate(), request.POST.get("row_prefix", "")
        # The open and overdue counts drawn beside the row change with it.
        counts_on = {"-open": "page", "-review": "page", "-closed": "page",
                     "-panel": "panel"}.get(row_prefix, "")
        annotate_actions([action], user=request.user, today=today)
        return render(request, f"{PAGE}#status-response", {
            "oob_prefixes": _other_copies(action, previous_status, row_prefix),
            "action": action, "agreement": agreement, "row_notice": notice, "row_error": error,
            "status_choices": ActionStatus.choices, "today": today,
            "show_agreement": request.POST.get("show_agreement") == "1",
            "row_prefix": row_prefix if row_prefix in ROW_PREFIXES else "",
            # Rows on the dashboards have no edit links: only the reviews page's rows do.
            "can_manage": _can_manage(request) and row_prefix not in ("-panel", "-home"),
            "counts_on": counts_on,
            "counts": action_items_for(user=request.user).filter(
                agreement=agreement, status__in=OPEN_STATUSES).aggregate(
                open_actions=Count("pk"), overdue_actions=Count("pk", filter=Q(
                    due_date__lt=today))) if counts_on else {},
        })
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"“{action}”: {notice[0].lower()}{notice[1:]}")
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(_reviews_url(agreement, "open-actions"))
