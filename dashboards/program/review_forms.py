"""Forms of business reviews and action items (host managers) and of an action's status."""

from django import forms
from django.utils import timezone

from partnerships.models import ActionItem, ActionStatus, Review, Side

ISO_DATE = ["%Y-%m-%d"]
DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class ReviewForm(forms.ModelForm):
    """A review as it was held: recorded afterwards, so its date is never in the future."""

    mark_required = True  # labels say which fields are required

    class Meta:
        model = Review
        fields = ["kind", "held_on", "host_attendees", "partner_attendees", "notes",
                  "decisions"]
        labels = {"held_on": "Held on"}
        widgets = {
            "held_on": DATE_WIDGET,
            "host_attendees": forms.Textarea(attrs={"rows": 2}),
            "partner_attendees": forms.Textarea(attrs={"rows": 2}),
            "notes": forms.Textarea(attrs={"rows": 5}),
            "decisions": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {
            "held_on": "The day the review took place (not a planned date).",
            "host_attendees": "Names and roles, one per line or separated by commas.",
            "partner_attendees": "Names and roles, one per line or separated by commas.",
            "decisions": "What both sides agreed. Add the action items after saving.",
        }
        error_messages = {"held_on": {"required": "Enter the date the review was held.",
                                      "invalid": "Enter a date as YYYY-MM-DD."},
                          "kind": {"required": "Choose the kind of review."}}

    def __init__(self, *args, agreement, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreement = agreement
        self.fields["kind"].choices = [("", "— choose —"), *Review.Kind.choices]
        # ISO only: "03/04/2026" means two different days on the two sides of the Atlantic.
        self.fields["held_on"].input_formats = ISO_DATE
        # The date may not be in the future: the model's rule (Review.clean), which the form
        # runs too; the date picker stops at today.
        self.fields["held_on"].widget.attrs["max"] = timezone.localdate().isoformat()

    def _post_clean(self):
        # Recorded as held (a planned review, too, once it took place): the model's rule on the
        # date applies.
        self.instance.status = Review.Status.HELD
        super()._post_clean()


class ReviewPlanForm(forms.ModelForm):
    """A review planned ahead: when, how long, what kind, the agenda and who will attend."""

    mark_required = True

    class Meta:
        model = Review
        fields = ["kind", "held_on", "starts_at", "duration_minutes", "agenda",
                  "host_attendees", "partner_attendees"]
        labels = {"held_on": "Date", "starts_at": "Starts at"}
        widgets = {
            "held_on": DATE_WIDGET,
            "starts_at": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "duration_minutes": forms.NumberInput(attrs={"min": 5, "max": 24 * 60, "step": 5}),
            "agenda": forms.Textarea(attrs={"rows": 5}),
            "host_attendees": forms.Textarea(attrs={"rows": 2}),
            "partner_attendees": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "held_on": "The day the review is planned for.",
            "starts_at": "Local time; leave empty for an all-day review.",
            "agenda": "What both sides will discuss, one topic per line.",
            "host_attendees": "Names and roles, one per line or separated by commas.",
            "partner_attendees": "Names and roles, one per line or separated by commas.",
        }
        error_messages = {"held_on": {"required": "Enter the date the review is planned for.",
                                      "invalid": "Enter a date as YYYY-MM-DD."},
                          "starts_at": {"invalid": "Enter a time as HH:MM."},
                          "kind": {"required": "Choose the kind of review."}}

    def __init__(self, *args, agreement, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreement = agreement
        self.fields["kind"].choices = [("", "— choose —"), *Review.Kind.choices]
        self.fields["held_on"].input_formats = ISO_DATE
        self.fields["starts_at"].input_formats = ["%H:%M"]
        if self.instance.pk is None:
            self.fields["held_on"].widget.attrs["min"] = timezone.localdate().isoformat()

    def _post_clean(self):
        # The model's rule (no future date) is for held reviews; the service refuses a past
        # date for a planned one. Validate as the planned review it is.
        self.instance.status = Review.Status.PLANNED
        super()._post_clean()


class ActionItemForm(forms.ModelForm):
    """An action: what, who (name and side), their RACI role and by when."""

    mark_required = True

    review = forms.ModelChoiceField(
        label="Review", queryset=Review.objects.none(), required=False,
        empty_label="— none: not from a review —",
    )

    class Meta:
        model = ActionItem
        fields = ["review", "description", "owner_name", "owner_side", "raci", "due_date",
                  "status"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2}), "due_date": DATE_WIDGET}
        labels = {"due_date": "Due date", "owner_name": "Owner"}
        help_texts = {
            "owner_name": "The person who owns the action.",
            "owner_side": "Partner users may update the status of their side's actions.",
            "raci": "The owner's role: Responsible does it, Accountable answers for it, "
                    "Consulted gives input, Informed is kept up to date.",
        }
        error_messages = {
            "description": {"required": "Say what is to be done."},
            "owner_name": {"required": "Name the person who owns the action."},
            "owner_side": {"required": "Choose the owner's side: host or partner.",
                           "invalid_choice": "The owner's side is host or partner."},
            "due_date": {"required": "Enter a due date.",
                         "invalid": "Enter a date as YYYY-MM-DD."},
        }

    def __init__(self, *args, agreement, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreement = self.instance.agreement = agreement  # for the model's own rules
        self.fields["review"].queryset = Review.objects.filter(agreement=agreement)
        self.fields["review"].label_from_instance = (
            lambda review: f"{review.held_on:%Y-%m-%d} · {review.get_kind_display()}"
                           + (" (planned)" if review.status == Review.Status.PLANNED else ""))
        self.fields["owner_side"].choices = [("", "— choose —"), *Side.choices]
        self.fields["owner_side"].widget.choices = self.fields["owner_side"].choices
        self.fields["due_date"].input_formats = ISO_DATE
        if self.instance.pk is None:
            # A new action starts open; its status is changed on the reviews page later.
            del self.fields["status"]


class ActionStatusForm(forms.Form):
    status = forms.ChoiceField(label="Status", choices=ActionStatus.choices,
                               error_messages={"invalid_choice": "Choose a listed status.",
                                               "required": "Choose a status."})

