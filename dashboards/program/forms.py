"""Forms of the program pages: partners, partner assessments, agreements and stage moves.

Every rule the database holds is also checked here, so a bad entry gets a sentence next to
its field (and the input is kept) instead of an integrity error.
"""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from partnerships.access import host_managers_for, partners_for
from partnerships.models import (
    CATEGORY_WEIGHT_FIELDS,
    DEFAULT_CATEGORY_WEIGHTS,
    Agreement,
    Partner,
    PartnerAssessment,
    PartnerStatus,
    Stage,
)
from partnerships.program_services import agreement_problems, weights_sum_message
from partnerships.validators import agreement_code_validator

WEIGHT_FIELDS = tuple(CATEGORY_WEIGHT_FIELDS.values())
TEXTAREA = {"rows": 3}


def service_fields(form: forms.ModelForm) -> dict:
    """The model fields of a valid form as cleaned, for a service; a disabled field is not
    the user's input."""
    return {name: form.cleaned_data[name] for name in form._meta.fields
            if name in form.cleaned_data and not form.fields[name].disabled}


# ---- Partners -----------------------------------------------------------------------------


class PartnerSearchForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100,
                        widget=forms.TextInput(attrs={"type": "search",
                                                      "placeholder": "Name, slug or industry"}))
    status = forms.ChoiceField(label="Status", required=False,
                               choices=[("", "Any status"), *PartnerStatus.choices])


class PartnerForm(forms.ModelForm):
    error_summary = "Please correct the marked field"

    class Meta:
        model = Partner
        fields = ["name", "slug", "website", "industry", "status"]
        help_texts = {
            "name": "The organisation's name as people know it.",
            "slug": "A short, permanent id used in URLs and program files: lower-case letters, "
                    "digits and hyphens, e.g. “acme”.",
            "website": "A full address, e.g. https://example.com (optional).",
            "industry": "e.g. Retail software, Logistics (optional).",
        }
        error_messages = {
            "slug": {"unique": "Another partner already has this slug: choose another one."},
            "website": {"invalid": "Enter a full web address, e.g. https://example.com."},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slug"].widget.attrs.update(autocomplete="off", spellcheck="false")
        # An <input type="url">: app.css styles it with the other text inputs.
        self.fields["website"].widget.attrs.update(autocomplete="url", placeholder="https://")
        if self.instance.pk:
            self.fields["slug"].help_text += (
                " Changing it breaks links and program files that use the old one.")
        else:
            # static/js/slug.js fills a new partner's slug from the name as it is typed, until
            # the slug is edited by hand (an existing slug is never changed behind one's back).
            self.fields["slug"].widget.attrs["data-slug-from"] = "name"
            self.fields["slug"].help_text += " Filled in from the name; change it if you like."

    def clean_slug(self):
        return self.cleaned_data["slug"].strip().lower()


# ---- Partner assessments --------------------------------------------------------------------


def _score_field(label: str, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, min_value=1, max_value=5, help_text=help_text,
        error_messages={"min_value": "Give a score from 1 to 5.",
                        "max_value": "Give a score from 1 to 5.",
                        "invalid": "Give a whole number from 1 to 5.",
                        "required": "Give a score from 1 to 5."},
        widget=forms.NumberInput(attrs={"min": 1, "max": 5, "step": 1, "inputmode": "numeric"}),
    )


class AssessmentForm(forms.ModelForm):
    error_summary = "Please correct the marked field"
    strategic_fit = _score_field(
        "Strategic fit", "1 = their goals pull another way, 5 = they need what we offer and we "
        "need what they have.")
    cultural_compatibility = _score_field(
        "Cultural compatibility", "1 = we would clash daily, 5 = we already work alike.")
    operational_capability = _score_field(
        "Operational capability", "1 = they cannot deliver their side, 5 = proven delivery.")
    market_position = _score_field(
        "Market position", "1 = weak or shrinking presence, 5 = leader in the market we want.")
    resource_contribution = _score_field(
        "Resource contribution", "What they bring (people, money, customers, technology): "
        "1 = little, 5 = a lot.")
    implementation_complexity = _score_field(
        "Implementation complexity", "What it takes to make it work (integration, legal, "
        "training): 1 = simple, 5 = very hard.")

    class Meta:
        model = PartnerAssessment
        fields = [
            "assessed_on", "strategic_fit", "cultural_compatibility", "operational_capability",
            "market_position", *PartnerAssessment.ALIGNMENT_FIELDS,
            "horizon_today", "horizon_capabilities", "horizon_options",
            "resource_contribution", "implementation_complexity", "notes",
        ]
        widgets = {
            "assessed_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "horizon_today": forms.Textarea(attrs=TEXTAREA),
            "horizon_capabilities": forms.Textarea(attrs=TEXTAREA),
            "horizon_options": forms.Textarea(attrs=TEXTAREA),
            "notes": forms.Textarea(attrs=TEXTAREA),
        }
        labels = {
            "aligned_decision_speed": "Decision-making speed",
            "aligned_communication": "Communication style",
            "aligned_risk_tolerance": "Risk tolerance",
            "aligned_innovation": "Innovation approach",
            "aligned_customer_focus": "Customer focus",
        }
        help_texts = {
            "horizon_today": "What the partnership is worth now: revenue, customers, savings.",
            "horizon_capabilities": "What we could build or learn together in 6–18 months.",
            "horizon_options": "Which future options it opens (markets, products, an "
                               "investment).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in PartnerAssessment.ALIGNMENT_FIELDS:
            self.fields[name].template_name = "forms/field_check.html"

    @property
    def score_fields(self):
        return [self[name] for name in ("strategic_fit", "cultural_compatibility",
                                        "operational_capability", "market_position")]

    @property
    def alignment_fields(self):
        return [self[name] for name in PartnerAssessment.ALIGNMENT_FIELDS]

    @property
    def horizon_fields(self):
        return [self[name] for name in ("horizon_today", "horizon_capabilities",
                                        "horizon_options")]

    @property
    def value_fields(self):
        return [self["resource_contribution"], self["implementation_complexity"]]


# ---- Agreements -----------------------------------------------------------------------------


def _weight_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label, min_value=0, max_value=100,
        error_messages={"min_value": "A weight is from 0 to 100.",
                        "max_value": "A weight is from 0 to 100.",
                        "invalid": "Enter a whole number from 0 to 100.",
                        "required": "Enter a weight (0 if the category is not measured)."},
        widget=forms.NumberInput(attrs={"min": 0, "max": 100, "step": 1, "inputmode": "numeric",
                                        "data-weight": ""}),
    )


class WeightsForm(forms.Form):
    """The four category weights, for the live check while typing."""

    weight_financial = _weight_field("Financial")
    weight_strategic = _weight_field("Strategic")
    weight_operational = _weight_field("Operational")
    weight_relationship = _weight_field("Relationship")


def weights_check(data) -> dict:
    """The sum of the weights typed so far and what to say about it."""
    form = WeightsForm(data)
    form.is_valid()
    values = [form.cleaned_data.get(name) for name in WEIGHT_FIELDS]
    if any(value is None for value in values):
        return {"total": None, "ok": False,
                "message": "Each weight is a whole number from 0 to 100; together they make 100."}
    total = sum(values)
    return {"total": total, "ok": total == 100, "message": weights_sum_message(total)}


# What a good entry of each written term contains: shown under the field.
TERM_HELP = {
    "value_financial": "Money each side gives and gets: fees, revenue share, discounts, "
                       "budgets. Figures, not adjectives.",
    "value_strategic": "What each side gains beyond money: market access, brand, a product "
                       "gap filled.",
    "value_operational": "What each side does or provides: people, integration work, "
                         "training, data.",
    "attribution_method": "How a deal or lead is credited to the partner (first touch, "
                          "registration, referral code) and who settles a dispute about it. "
                          "Unagreed attribution is the most common quarrel.",
    "qualified_lead_definition": "The exact criteria a lead must meet to count: company size, "
                                 "budget, need, timing. Both sides count the same leads.",
    "underperformance_consequences": "What happens below target, step by step: a review, an "
                                     "improvement plan with a date, a lower tier, exit.",
    "overperformance_rewards": "What exceeding target earns: higher margin, a bonus, "
                               "co-marketing funds, a higher tier.",
    "customer_relationship_owner": "Who owns the customer after the sale: who they call, "
                                   "who renews, who may contact them.",
    "support": "Who answers which support requests, at which level, in what time.",
    "marketing_materials": "Who makes which materials, in whose brand, and who pays.",
    "messaging_approval": "Who approves public messages about the partnership, and within "
                          "how many days.",
    "shared_costs": "Which costs are shared, in what proportion, and up to which amount.",
    "dispute_resolution": "The steps to settle a disagreement: owners first, then "
                          "executives, then mediation; with time limits.",
    "exit_criteria": "When either side may end it (e.g. three months below 50 overall) and "
                     "what happens to customers, data and money when it ends.",
    "review_cadence": "How often both sides review the results together.",
}
TERM_FIELDS = {
    "value": ("value_financial", "value_strategic", "value_operational"),
    "measurement": ("attribution_method", "qualified_lead_definition"),
    "performance": ("underperformance_consequences", "overperformance_rewards"),
    "responsibilities": ("customer_relationship_owner", "support_responsibilities",
                         "marketing_materials", "messaging_approval", "shared_costs"),
    "governance": ("dispute_resolution", "exit_criteria", "review_cadence"),
}
BASIC_FIELDS = ("partner", "code", "title", "type", "start_date", "end_date", "owner",
                "partner_contacts")
ALL_TERM_FIELDS = tuple(name for names in TERM_FIELDS.values() for name in names)


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


class AgreementForm(forms.ModelForm):
    """An agreement's basics, scorecard weights and written terms; never its stage (that is a
    recorded move of its own)."""

    initial_stage = forms.ChoiceField(
        label="Starts as", choices=[(Stage.PROSPECT, "Prospect: still being negotiated"),
                                    (Stage.PILOT, "Pilot: a trial with limited scope")],
        initial=Stage.PROSPECT,
        help_text="Later stages are reached by moving the agreement, with a reason.",
    )
    weight_financial = _weight_field("Financial")
    weight_strategic = _weight_field("Strategic")
    weight_operational = _weight_field("Operational")
    weight_relationship = _weight_field("Relationship")

    class Meta:
        model = Agreement
        fields = [*BASIC_FIELDS, *WEIGHT_FIELDS, *ALL_TERM_FIELDS]
        widgets = {
            "start_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "end_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "partner_contacts": forms.Textarea(attrs=TEXTAREA),
            **{name: forms.Textarea(attrs=TEXTAREA) for name in ALL_TERM_FIELDS
               if name != "review_cadence"},
        }
        labels = {"start_date": "Start date", "end_date": "End date (optional)",
                  "owner": "Host-side owner", "title": "Title (optional)"}
        help_texts = {
            "code": "Unique and permanent: import files and the API name the agreement by it. "
                    "Letters, digits, “-”, “_” and “.”, e.g. ACME-CM-2025.",
            "title": "A few words on what the partnership is about.",
            "partner_contacts": "Who to talk to on the partner's side: names, roles, e-mail "
                                "addresses, one a line.",
            "owner": "The host manager accountable for this partnership.",
            **{name: text for name, text in TERM_HELP.items()
               if name in ALL_TERM_FIELDS},
            "support_responsibilities": TERM_HELP["support"],
        }
        error_messages = {
            "code": {"unique": "Another agreement already has this code: choose another one."},
            "owner": {"invalid_choice": "Choose a host manager as the owner."},
            "partner": {"invalid_choice": "Choose one of the partners in the list."},
        }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partner"] = forms.ModelChoiceField(
            label="Partner", queryset=partners_for(user=user).order_by("name"),
            to_field_name="slug", empty_label="— choose a partner —",
            error_messages={"invalid_choice": "Choose one of the partners in the list.",
                            "required": "Choose the partner."},
        )
        self.fields["owner"] = OwnerChoiceField(
            label="Host-side owner", queryset=host_managers_for(user=user), required=False,
            empty_label="— nobody yet —",
            help_text="The host manager accountable for this partnership.",
            error_messages={"invalid_choice": "Choose a host manager as the owner."},
        )
        self.fields["code"].widget.attrs.update(autocomplete="off", spellcheck="false")
        owner = self.instance.owner if self.instance.owner_id else None
        if owner is not None:
            # An owner who has since left the managers stays selectable, so saving other
            # terms does not silently clear the owner.
            self.fields["owner"].queryset = (
                host_managers_for(user=user) | type(owner).objects.filter(pk=owner.pk)
            ).distinct().order_by("username")
        if self.instance.pk:
            # An agreement keeps its partner and code: scores, imports and the history are
            # tied to them.
            del self.fields["initial_stage"]
            for name in ("partner", "code"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once the agreement exists."
            self.initial["partner"] = self.instance.partner.slug
        else:
            for category, name in CATEGORY_WEIGHT_FIELDS.items():
                self.fields[name].initial = DEFAULT_CATEGORY_WEIGHTS[category]
        self.order_fields([*BASIC_FIELDS[:4], "initial_stage", *BASIC_FIELDS[4:]])

    def clean_code(self):
        code = self.cleaned_data["code"].strip()
        agreement_code_validator(code)
        if (Agreement.objects.filter(code__iexact=code).exclude(pk=self.instance.pk).exists()):
            raise ValidationError("Another agreement already has this code: choose another one.")
        return code

    def clean(self):
        cleaned = super().clean()
        problems = agreement_problems(
            start_date=cleaned.get("start_date"), end_date=cleaned.get("end_date"),
            weights=[cleaned.get(name) for name in WEIGHT_FIELDS])
        self.weights_error = problems.pop(NON_FIELD_ERRORS, "")
        for name, message in problems.items():
            self.add_error(name, message)
        if self.weights_error:
            self.add_error(None, self.weights_error)
        return cleaned

    def validate_constraints(self):
        # The weights' sum and the dates are checked in clean() with sentences a manager
        # understands; the database constraints behind them would only repeat it in jargon.
        exclude = self._get_validation_exclusions() | {*WEIGHT_FIELDS, "start_date", "end_date"}
        try:
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as error:
            self._update_errors(error)

    weights_error = ""

    def sections(self) -> list[dict]:
        """The form in the order a manager fills it in, with a heading and a sentence each."""
        term_intro = {
            "value": ("What each side gives and gets",
                      "Partnerships fail when one side feels it gives more than it gets: write "
                      "down the exchange in all three kinds of value."),
            "measurement": ("How results are counted",
                            "Agree before the first deal how it is credited, so both sides "
                            "trust the numbers."),
            "performance": ("What happens below and above target",
                            "Known consequences and rewards make the targets mean something."),
            "responsibilities": ("Who does what",
                                 "Unclear ownership of customers, support and messages is where "
                                 "day-to-day friction starts."),
            "governance": ("Disputes, exit and reviews",
                           "How to disagree, how to end it well, and how often to look at "
                           "the results together."),
        }
        basics = [self[name] for name in (*BASIC_FIELDS[:4], "initial_stage", *BASIC_FIELDS[4:])
                  if name in self.fields]
        return [
            {"id": "basics", "title": "Basics", "intro": "", "fields": basics},
            *({"id": key, "title": term_intro[key][0], "intro": term_intro[key][1],
               "fields": [self[name] for name in names]}
              for key, names in TERM_FIELDS.items()),
        ]

    @property
    def weight_fields(self):
        return [self[name] for name in WEIGHT_FIELDS]


class StageMoveForm(forms.Form):
    to_stage = forms.ChoiceField(label="Move to", widget=forms.RadioSelect,
                                 error_messages={"required": "Choose the stage to move to.",
                                                 "invalid_choice": "That move is not allowed "
                                                                   "from the current stage."})
    reason = forms.CharField(
        label="Why", max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the stage history that both sides can read.",
        error_messages={"required": "Say why the stage changes: the reason is kept in the "
                                    "history."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Every stage is a valid answer here; whether the move is allowed from the current
        # stage is decided by the service, under a lock, with a sentence saying why not.
        self.fields["to_stage"].choices = Stage.choices
