"""The what-if form: the scope (the program or one agreement) and the changes to simulate.

A number field of a KPI or an incentive plan takes a new value ("120") or a change in percent
of each row's own value ("+10%", "-5 %"); an empty field changes nothing. The form is sent by
GET (a simulation writes nothing), so the page, its CSV and its Save carry the same fields.
"""

import math
import re

from django import forms

from partnerships.access import agreements_for
from partnerships.models import CATEGORY_WEIGHT_FIELDS, Agreement, KPIDefinition, TierPolicy
from scoring import rules
from scoring.whatif import Change, WhatIf

CHANGE_PATTERN = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(%?)\s*$")
CHANGE_ERROR = ("Enter a new value (e.g. 120) or a change in percent (e.g. +10% or -5%), with "
                "a dot as decimal point.")
SORTS = {
    "agreement": "agreement code",
    "overall": "change of overall",
    "rolling": "change of rolling",
    "payout": "change of payout",
}


class ChangeField(forms.CharField):
    """A new value or a change in percent (Change); empty: no change."""

    def __init__(self, *, percent_only: bool = False, **kwargs):
        self.percent_only = percent_only
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 24)
        super().__init__(**kwargs)
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off",
                                  "spellcheck": "false", "size": 10})

    def clean(self, value):
        text = super().clean(value)
        if not text:
            return None
        match = CHANGE_PATTERN.match(text.replace(",", ""))
        if not match:
            raise forms.ValidationError(CHANGE_ERROR, code="invalid")
        number, percent = float(match.group(1)), bool(match.group(2))
        if not math.isfinite(number):
            raise forms.ValidationError(CHANGE_ERROR, code="invalid")
        if percent and number <= -100:
            raise forms.ValidationError("A change of −100 % or less leaves nothing.",
                                        code="invalid")
        if self.percent_only and not percent:
            raise forms.ValidationError(
                "For every KPI at once give a change in percent (e.g. +10%): KPIs have "
                "different units.", code="percent")
        return Change(value=number, percent=percent)


class WhatIfForm(forms.Form):
    scope = forms.CharField(
        label="Agreement", required=False, max_length=64,
        help_text="An agreement's code: changes of KPIs, category weights and incentive plans "
                  "reach it only. Empty: every agreement. Tier settings always apply to the "
                  "whole program, and a percentile tier moves with the other agreements.",
        widget=forms.TextInput(attrs={"list": "whatif-agreements", "autocomplete": "off",
                                      "spellcheck": "false"}))
    kpi = forms.ModelChoiceField(
        label="KPI", queryset=KPIDefinition.objects.none(), to_field_name="code",
        required=False, empty_label="Every KPI of the scope",
        error_messages={"invalid_choice": "There is no such KPI."})
    target = ChangeField(label="Target", help_text="e.g. 120, or +10%")
    floor = ChangeField(label="Floor", help_text="e.g. 0, or -5%")
    weight = ChangeField(label="Weight within its category", help_text="e.g. 2, or +50%")
    weight_financial = forms.IntegerField(label="Financial", required=False, min_value=0,
                                          max_value=100)
    weight_strategic = forms.IntegerField(label="Strategic", required=False, min_value=0,
                                          max_value=100)
    weight_operational = forms.IntegerField(label="Operational", required=False, min_value=0,
                                            max_value=100)
    weight_relationship = forms.IntegerField(label="Relationship", required=False, min_value=0,
                                             max_value=100)
    tier_policy = forms.ChoiceField(label="Tier policy", required=False)
    strategic_threshold = forms.FloatField(label="Strategic threshold", required=False,
                                           min_value=0, max_value=120)
    growth_threshold = forms.FloatField(label="Growth threshold", required=False, min_value=0,
                                        max_value=120)
    hysteresis = forms.IntegerField(label="Hysteresis (months)", required=False, min_value=1,
                                    max_value=12)
    multiplier_transactional = ChangeField(label="Transactional multiplier",
                                           help_text="e.g. 1, or +10%")
    multiplier_growth = ChangeField(label="Growth multiplier", help_text="e.g. 1.25")
    multiplier_strategic = ChangeField(label="Strategic multiplier", help_text="e.g. 1.5")
    baseline = ChangeField(label="Baseline rolling score", help_text="e.g. 60")
    month = forms.ChoiceField(label="Month compared", required=False,
                              help_text="The month of the table and the tier moves.")
    sort = forms.ChoiceField(choices=list(SORTS.items()), required=False,
                             widget=forms.HiddenInput)

    def __init__(self, *args, user, months: list[str], settings, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreements = agreements_for(user=user)
        self.fields["kpi"].queryset = KPIDefinition.objects.order_by("name")
        policies = dict(TierPolicy.choices)
        self.fields["tier_policy"].choices = [
            ("", f"As now: {policies.get(settings.tier_policy, settings.tier_policy)}"),
            *TierPolicy.choices]
        self.fields["strategic_threshold"].help_text = f"Now {settings.strategic_threshold:g}"
        self.fields["growth_threshold"].help_text = f"Now {settings.growth_threshold:g}"
        self.fields["hysteresis"].help_text = f"Now {settings.hysteresis}"
        self.fields["month"].choices = [(month, month) for month in reversed(months)]
        for name in ("strategic_threshold", "growth_threshold"):
            self.fields[name].widget.attrs.update({"step": "any", "inputmode": "decimal"})

    @property
    def kpi_fields(self):
        return [self[name] for name in ("kpi", "target", "floor", "weight")]

    @property
    def weight_fields(self):
        return [self[name] for name in CATEGORY_WEIGHT_FIELDS.values()]

    @property
    def settings_fields(self):
        return [self[name] for name in ("tier_policy", "strategic_threshold", "growth_threshold",
                                        "hysteresis")]

    @property
    def plan_fields(self):
        return [self[name] for name in ("multiplier_transactional", "multiplier_growth",
                                        "multiplier_strategic", "baseline")]

    def clean_scope(self) -> Agreement | None:
        code = self.cleaned_data.get("scope", "").strip()
        if not code:
            return None
        agreement = self.agreements.filter(code=code).first()
        if agreement is None:
            raise forms.ValidationError("There is no agreement with that code.", code="missing")
        return agreement

    def agreement_codes(self) -> list[str]:
        """The codes the agreement field suggests."""
        return list(self.agreements.order_by("code").values_list("code", flat=True))

    def clean(self):
        data = super().clean()
        weights = [data.get(name) for name in CATEGORY_WEIGHT_FIELDS.values()]
        given = [weight for weight in weights if weight is not None]
        if given and len(given) < len(weights):
            self.add_error(None, "Give all four category weights, or none.")
        if data.get("kpi") is None:
            for name in ("target", "floor"):
                change = data.get(name)
                if change is not None and not change.percent:
                    self.add_error(name, "For every KPI at once give a change in percent "
                                         "(e.g. +10%): KPIs have different units.")
        return data

    def whatif(self) -> WhatIf:
        """The changes asked for (call after is_valid())."""
        data = self.cleaned_data
        weights = tuple(data.get(name) for name in CATEGORY_WEIGHT_FIELDS.values())
        scope = data.get("scope")
        kpi = data.get("kpi")
        return WhatIf(
            agreement_id=scope.pk if scope else None,
            kpi_id=kpi.pk if kpi else None,
            target=data.get("target"), floor=data.get("floor"), weight=data.get("weight"),
            category_weights=weights if None not in weights else None,
            tier_policy=data.get("tier_policy") or None,
            strategic_threshold=data.get("strategic_threshold"),
            growth_threshold=data.get("growth_threshold"),
            hysteresis=data.get("hysteresis"),
            multipliers={tier: data[f"multiplier_{tier}"] for tier in rules.TIERS
                         if data.get(f"multiplier_{tier}") is not None},
            baseline=data.get("baseline"),
        )
