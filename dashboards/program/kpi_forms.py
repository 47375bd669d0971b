"""Forms of the KPI library, agreement KPIs, KPI templates, objectives and incentive plans.

Every rule the database holds is checked here first, so a bad value gets a message next to
its field instead of an integrity error. `partial_errors` keeps only the errors of fields the
user has filled, for inline validation while the form is still being typed.
"""

import math
import re

from django import forms
from django.utils import timezone

from config.forms import LiveFeedbackRenderer
from partnerships.models import (
    DEFAULT_TOLERANCE_PERCENT,
    AgreementKPI,
    AgreementType,
    IncentivePlan,
    KPIDefinition,
    KPITemplateItem,
    Objective,
)
from partnerships.program import PERCENT_RANGE
from partnerships.program_services import (
    agreement_kpi_duplicate_problem,
    kpi_template_item_duplicate_problem,
    target_floor_weight_problems,
)

NUMBER_ERROR = "Enter a number, e.g. 1500 or 2.5 (a dot as decimal point, no thousands separator)."


class FiniteFloatField(forms.FloatField):
    default_error_messages = {"invalid": NUMBER_ERROR}

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and not math.isfinite(value):
            raise forms.ValidationError(NUMBER_ERROR, code="invalid")
        return value


def number_input(**attrs) -> forms.NumberInput:
    return forms.NumberInput(attrs={"step": "any", "inputmode": "decimal", **attrs})


def partial_errors(form: forms.BaseForm) -> None:
    """Drop the errors of fields left empty, so inline validation does not scold a user for
    fields they have not reached yet. Call after `is_valid()`."""
    for name in list(form.errors):
        if name == forms.forms.NON_FIELD_ERRORS:
            continue
        raw = form.data.get(form.add_prefix(name), "")
        if str(raw).strip() == "":
            del form.errors[name]


# ---- KPI library ---------------------------------------------------------------------------


class KPIDefinitionForm(forms.ModelForm):
    default_renderer = LiveFeedbackRenderer  # messages beside each field, checked as typed

    SCORING_FIELDS = ("category", "aggregation", "source")
    VALUE_FIELDS = ("value_type", "minimum", "maximum")

    minimum = FiniteFloatField(
        label="Minimum", required=False, widget=number_input(),
        help_text="The lowest value an observation may have; empty: no lower bound "
                  "(a percentage: 0).")
    maximum = FiniteFloatField(
        label="Maximum", required=False, widget=number_input(),
        help_text="The highest value an observation may have; empty: no upper bound "
                  "(a percentage: 100).")

    tolerance = FiniteFloatField(
        label="Tolerance", min_value=0, widget=number_input(min="0"), required=False,
        initial=DEFAULT_TOLERANCE_PERCENT,
        help_text="How far the other side's value may differ from the source of truth's before "
                  "reconciliation lists it: a percent of the source's value (where the source "
                  "reports 0, any other value is listed), or an amount in the KPI's unit.")

    class Meta:
        model = KPIDefinition
        fields = ["code", "name", "unit", "value_type", "minimum", "maximum", "category",
                  "aggregation", "source", "tolerance_kind", "tolerance", "description"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 4}),
            "code": forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        }
        help_texts = {
            "code": "Letters, digits, hyphens and underscores, e.g. qualified_leads. "
                    "Metric files and the API refer to the KPI by this code.",
            "unit": "e.g. USD, %, days, leads.",
            "value_type": "Imports refuse what the KPI cannot be: a count takes whole numbers "
                          "≥ 0, a percentage a value within its range; every value is "
                          "checked against the minimum and maximum below.",
            "aggregation": "How a month's observations become one value: their sum, their "
                           "mean, or the last one.",
            "source": "The side whose observations are scored; the other side's are shown "
                      "beside them.",
            "tolerance_kind": "Percent of the source of truth's value, or an absolute amount.",
            "description": "How it is measured and attributed, so both sides count it the "
                           "same way.",
        }
        error_messages = {
            "code": {
                "invalid": "Use only letters, digits, hyphens and underscores.",
                "unique": "Another KPI already has this code.",
            },
        }

    def clean_code(self) -> str:
        # The pattern is the model field's (a slug), checked when the form validates the model:
        # the program file and the services apply the same rule.
        code = self.cleaned_data["code"].strip()
        clash = KPIDefinition.objects.filter(code=code).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("Another KPI already has this code.")
        return code

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Left out (a form or a client that predates tolerances): the KPI keeps its own.
        self.fields["tolerance_kind"].required = False

    def clean_tolerance_kind(self) -> str:
        return self.cleaned_data.get("tolerance_kind") or self.instance.tolerance_kind

    def clean_tolerance(self) -> float:
        tolerance = self.cleaned_data.get("tolerance")
        return self.instance.tolerance if tolerance is None else tolerance

    def clean(self):
        cleaned = super().clean()
        # As in the program file: a percentage left without a bound gets 0 or 100.
        if cleaned.get("value_type") == KPIDefinition.ValueType.PERCENTAGE:
            for name, default in zip(("minimum", "maximum"), PERCENT_RANGE, strict=True):
                if cleaned.get(name) is None and name not in self.errors:
                    cleaned[name] = default
        return cleaned

    def scoring_changes(self) -> list[str]:
        """Names of the fields that decide scores and that this form changes."""
        if self.instance.pk is None:
            return []
        return [name for name in self.SCORING_FIELDS if name in self.changed_data]


# ---- Target, floor and weight (agreement KPIs and template items) --------------------------


class TargetFloorWeightMixin:
    """target, floor and weight: numbers; the floor is not the target; the weight is > 0."""

    def clean(self):
        cleaned = super().clean()
        problems = target_floor_weight_problems(
            target=cleaned.get("target"), floor=cleaned.get("floor"),
            weight=cleaned.get("weight"))
        for name, message in problems.items():
            self.add_error(name, message)
        return cleaned


class AgreementKPIValuesForm(TargetFloorWeightMixin, forms.ModelForm):
    default_renderer = LiveFeedbackRenderer  # messages beside each field, checked as typed

    target = FiniteFloatField(label="Monthly target", widget=number_input())
    floor = FiniteFloatField(
        label="Floor", widget=number_input(),
        help_text="The worst acceptable value. Above the target: lower is better.")
    weight = FiniteFloatField(label="Weight", initial=1, widget=number_input(min="0"),
                              help_text="Within its category; more than 0.")

    class Meta:
        model = AgreementKPI
        fields = ["target", "floor", "weight"]


class AgreementKPIAddForm(AgreementKPIValuesForm):
    kpi = forms.ModelChoiceField(
        label="KPI", queryset=KPIDefinition.objects.none(), to_field_name="code",
        empty_label="— choose a KPI from the library —")

    class Meta:
        model = AgreementKPI
        fields = ["kpi", "target", "floor", "weight"]

    def __init__(self, *args, agreement, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreement = agreement
        self.fields["kpi"].queryset = KPIDefinition.objects.order_by("category", "name")
        self.fields["kpi"].label_from_instance = (
            lambda kpi: f"{kpi.name} ({kpi.code}) · {kpi.get_category_display()}")

    def clean_kpi(self):
        kpi = self.cleaned_data["kpi"]
        if problem := agreement_kpi_duplicate_problem(agreement=self.agreement, kpi=kpi):
            raise forms.ValidationError(problem)
        return kpi


class TemplateItemForm(TargetFloorWeightMixin, forms.ModelForm):
    default_renderer = LiveFeedbackRenderer  # messages beside each field, checked as typed

    agreement_type = forms.ChoiceField(label="Agreement type", choices=AgreementType.choices)
    kpi = forms.ModelChoiceField(
        label="KPI", queryset=KPIDefinition.objects.none(), to_field_name="code",
        empty_label="— choose a KPI from the library —")
    target = FiniteFloatField(label="Monthly target", widget=number_input())
    floor = FiniteFloatField(label="Floor", widget=number_input(),
                             help_text="The worst acceptable value; never the target.")
    weight = FiniteFloatField(label="Weight", initial=1, widget=number_input(min="0"))

    class Meta:
        model = KPITemplateItem
        fields = ["agreement_type", "kpi", "target", "floor", "weight"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kpi"].queryset = KPIDefinition.objects.order_by("category", "name")
        self.fields["kpi"].label_from_instance = (
            lambda kpi: f"{kpi.name} ({kpi.code}) · {kpi.get_category_display()}")

    def clean(self):
        cleaned = super().clean()
        agreement_type, kpi = cleaned.get("agreement_type"), cleaned.get("kpi")
        if agreement_type and kpi and (problem := kpi_template_item_duplicate_problem(
                agreement_type=agreement_type, kpi=kpi, item_id=self.instance.pk)):
            self.add_error("kpi", problem)
        return cleaned

    def validate_unique(self):
        # clean() says it next to the KPI field, in words.
        pass


class CopyFromAgreementForm(forms.Form):
    default_renderer = LiveFeedbackRenderer  # messages beside each field, checked as typed

    source = forms.ModelChoiceField(
        label="Copy the KPIs of", queryset=None, to_field_name="code",
        empty_label="— choose an agreement —")
    mode = forms.ChoiceField(
        label="KPIs this agreement already has", widget=forms.RadioSelect, initial="keep",
        template_name="forms/field_radios.html",
        choices=[("keep", "Keep them as they are; add only the KPIs it lacks"),
                 ("replace", "Replace them: the set becomes exactly the copied one "
                             "(KPIs it lacks are removed)")])

    def __init__(self, *args, agreements, agreement, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = (agreements.exclude(pk=agreement.pk)
                                          .select_related("partner").order_by("code"))
        self.fields["source"].label_from_instance = (
            lambda other: f"{other.code} · {other.partner.name} · {other.get_type_display()}")


class CopyFromTemplateForm(forms.Form):
    mode = forms.ChoiceField(label="KPIs this agreement already has", widget=forms.RadioSelect,
                             initial="keep", template_name="forms/field_radios.html",
                             choices=CopyFromAgreementForm.base_fields["mode"].choices)

    def __init__(self, *args, **kwargs):
        # Shown on the same page as the agreement form, whose field has the same name.
        super().__init__(*args, auto_id="template-%s", **kwargs)


# ---- Objectives ----------------------------------------------------------------------------


class ObjectiveForm(forms.ModelForm):
    default_renderer = LiveFeedbackRenderer  # messages beside each field, checked as typed

    target_value = FiniteFloatField(
        label="Target value", widget=number_input(),
        help_text="In the unit of the success metric (of the linked KPI, if any).")

    class Meta:
        model = Objective
        fields = ["success_metric", "goal_type", "kpi", "target_value", "set_on", "deadline",
                  "priority"]
        widgets = {"set_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                   "deadline": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}
        labels = {"success_metric": "Objective and success metric"}
        help_texts = {
            "success_metric": "Specific and measurable, e.g. “Partner-sourced revenue of "
                              "50,000 USD a month by year end”.",
            "kpi": "Only KPIs of this agreement. With a linked KPI, progress is measured "
                   "from its scored values.",
            "set_on": "The day both sides agreed on it (today for a new one). Progress is "
                      "judged against the share of the time from this day to the deadline.",
        }

    def __init__(self, *args, agreement, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreement = agreement
        field = self.fields["kpi"]
        field.queryset = (KPIDefinition.objects
                          .filter(agreement_kpis__agreement=agreement).order_by("name"))
        field.empty_label = "— none: progress not measured —"
        field.label_from_instance = lambda kpi: f"{kpi.name} ({kpi.code})"
        field.error_messages["invalid_choice"] = "Choose one of this agreement's KPIs."
        # The date picker sends ISO dates; typed text is read the same way, never as d/m or m/d.
        for name in ("set_on", "deadline"):
            self.fields[name].input_formats = ["%Y-%m-%d"]
            self.fields[name].error_messages["invalid"] = "Enter the date as YYYY-MM-DD."
        # Left empty (a client without the date picker): today for a new objective, the day
        # it has for an existing one.
        self.fields["set_on"].required = False

    def clean_set_on(self):
        set_on = self.cleaned_data.get("set_on")
        if set_on is None:
            return self.instance.set_on if self.instance.pk else timezone.localdate()
        return set_on

    def clean(self):
        cleaned = super().clean()
        set_on, deadline = cleaned.get("set_on"), cleaned.get("deadline")
        if set_on and deadline and deadline < set_on:
            self.add_error("deadline", f"The deadline comes before the day the objective was "
                                       f"set ({set_on:%Y-%m-%d}): choose a later one.")
        return cleaned


# ---- Incentive plan ------------------------------------------------------------------------


class IncentivePlanForm(forms.ModelForm):
    default_renderer = LiveFeedbackRenderer  # messages beside each field, checked as typed

    baseline_score = FiniteFloatField(
        label="Baseline rolling score B", min_value=0, max_value=120, initial=60,
        widget=number_input(min="0", max="120"),
        help_text="No payout for a month whose rolling score is below B (0–120).")

    class Meta:
        model = IncentivePlan
        fields = ["base_amount", "currency", "baseline_score", "multiplier_transactional",
                  "multiplier_growth", "multiplier_strategic"]
        widgets = {
            "currency": forms.TextInput(attrs={"maxlength": 3, "autocomplete": "off",
                                               "spellcheck": "false", "size": 4}),
            "base_amount": number_input(min="0"),
            "multiplier_transactional": number_input(min="0"),
            "multiplier_growth": number_input(min="0"),
            "multiplier_strategic": number_input(min="0"),
        }
        help_texts = {
            "base_amount": "Paid for a month on target (overall 100) at multiplier 1.",
            "currency": "Three-letter ISO code, e.g. USD, EUR.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("base_amount", "multiplier_transactional", "multiplier_growth",
                     "multiplier_strategic"):
            self.fields[name].validators.append(_not_negative)
            self.fields[name].error_messages["invalid"] = NUMBER_ERROR
        self.fields["currency"].error_messages["max_length"] = (
            "Enter a three-letter currency code, e.g. USD.")

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise forms.ValidationError("Enter a three-letter currency code, e.g. USD.")
        return currency


def _not_negative(value) -> None:
    if value is not None and value < 0:
        raise forms.ValidationError("Must be 0 or more.")
