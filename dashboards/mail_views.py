"""E-mail settings: a user's own preferences (signed in), and the one-click unsubscribe link of
every message (public: the signed token says who and what, and expires)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from partnerships.access import membership_of
from partnerships.mail_preferences import (
    PREFERENCE_FIELDS,
    UnsubscribeRefused,
    mail_preference_of,
    mail_preferences_save,
    mail_unsubscribe,
    unsubscribe_read,
)
from partnerships.models import MailPreference

from .http import HtmxHttpRequest

HELP = {
    "digest": "Once a week, on Monday morning: score and tier moves of your agreements, "
              "new at-risk, your side's actions due or overdue, reviews coming up or overdue, "
              "open disputes. Not sent when there is nothing to say.",
    "alert_at_risk": "After a scoring run: an agreement of yours is newly at risk.",
    "alert_tier": "After a scoring run: an agreement of yours moved to another tier.",
    "alert_action": "Checked every ten minutes: a new action of your agreements, or one "
                    "moved to your side, with its owner and due date.",
    "alert_review_overdue": "Once a day: a business review of one of your agreements is "
                            "past its due date (told once per due date).",
    "alert_dispute": "The other side opens a dispute of one of your agreements' values, "
                     "answers it, withdraws it, or the host resolves it.",
}


class MailPreferencesForm(forms.ModelForm):
    class Meta:
        model = MailPreference
        fields = PREFERENCE_FIELDS
        help_texts = HELP
        labels = {
            "digest": "Weekly digest",
            "alert_at_risk": "An agreement is newly at risk",
            "alert_tier": "An agreement's tier changed",
            "alert_action": "An action is assigned to my side",
            "alert_review_overdue": "A review is overdue",
            "alert_dispute": "A dispute is opened, answered or resolved",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.template_name = "forms/field_check_help.html"

    @property
    def alert_fields(self):
        return [self[name] for name in PREFERENCE_FIELDS if name != "digest"]


@never_cache
@login_required
def account_mail(request: HtmxHttpRequest) -> HttpResponse:
    preference = mail_preference_of(user=request.user)
    form = MailPreferencesForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        mail_preferences_save(user=request.user, request=request,
                              **{name: form.cleaned_data[name] for name in PREFERENCE_FIELDS})
        messages.success(request, "Your e-mail settings are saved.")
        return redirect("account_mail")
    return render(request, "registration/mail.html", {
        "form": form, "email": request.user.email,
        "partner_user": (membership := membership_of(request.user)) is not None
        and not membership.is_host,
    })


# Mail programs post the one-click unsubscribe (RFC 8058) without a CSRF token or a session:
# the signed token is what authorises it, and all it can do is turn one kind of e-mail off.
@never_cache
@csrf_exempt
def mail_unsubscribe_view(request: HtmxHttpRequest, token: str) -> HttpResponse:
    template = "registration/unsubscribe.html"
    try:
        unsubscribe = unsubscribe_read(token=token)
    except UnsubscribeRefused as refused:
        return render(request, template, {"refused": refused.state},
                      status=410 if refused.state == "expired" else 400)
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        mail_unsubscribe(token=token, request=request,
                         via="one-click unsubscribe" if one_click else "unsubscribe link")
        if one_click:
            return HttpResponse("Unsubscribed.", content_type="text/plain")
        return render(request, template, {"done": True, "name": unsubscribe.name})
    return render(request, template, {"name": unsubscribe.name, "token": token})
