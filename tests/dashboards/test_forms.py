"""Forms render through the project's one form renderer (templates/forms/), never through
fields written out by hand in a page."""

import re
from pathlib import Path

import pytest
from django import forms
from django.conf import settings

from dashboards.program.forms import PartnerForm
from dashboards.program.kpi_forms import CopyFromAgreementForm, CopyFromTemplateForm
from dashboards.program.review_forms import ReviewForm
from partnerships.models import Agreement

TEMPLATES = Path(settings.BASE_DIR) / "templates"
FORM_TEMPLATES = TEMPLATES / "forms"
HAND_WRITTEN = ("field.errors", "{% for field in form %}")


class ContactForm(forms.Form):
    email = forms.EmailField(label="E-mail address", help_text="Where the report goes.")
    note = forms.CharField(label="Note", required=False)

    def clean(self):
        raise forms.ValidationError("The report cannot be sent today.")


def attribute_of(html: str, element_id: str, name: str) -> str | None:
    tag = re.search(rf'<[^>]*\bid="{element_id}"[^>]*>', html)
    assert tag, f"no element with id {element_id}"
    value = re.search(rf'\b{name}="([^"]*)"', tag.group(0))
    return value.group(1) if value else None


def test_no_page_template_writes_a_field_by_hand():
    offenders = sorted(
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if FORM_TEMPLATES not in path.parents
        and any(marker in path.read_text() for marker in HAND_WRITTEN)
    )
    assert offenders == []


def test_a_field_names_its_help_text_and_errors_for_assistive_technology():
    html = str(ContactForm(data={"email": "not an address"}))
    assert '<label for="id_email">E-mail address</label>' in html
    assert 'id="id_email_helptext">Where the report goes.</p>' in html
    assert re.search(r'<ul class="field-errors" id="id_email_error"><li>Enter a valid email', html)
    assert attribute_of(html, "id_email", "aria-describedby") == "id_email_helptext id_email_error"
    assert attribute_of(html, "id_email", "aria-invalid") == "true"
    assert '<div class="field field--invalid">' in html


def test_a_valid_field_without_help_text_is_described_by_nothing():
    html = str(ContactForm(data={"email": "ann@acme.example", "note": "hi"}))
    assert attribute_of(html, "id_note", "aria-describedby") is None
    assert 'id="id_note_error"' not in html and 'id="id_note_helptext"' not in html


def test_errors_of_the_whole_form_are_written_once_in_one_alert():
    html = str(ContactForm(data={"email": "ann@acme.example"}))
    assert html.count("The report cannot be sent today.") == 1
    assert ('<div class="form-errors" role="alert"><p>The report cannot be sent today.</p></div>'
            in html)


@pytest.mark.django_db
def test_a_form_with_an_error_summary_says_how_many_fields_to_correct():
    html = str(PartnerForm(data={"name": "", "slug": ""}))
    assert "<p>Please correct the marked fields.</p>" in html


@pytest.mark.django_db
def test_review_labels_say_which_fields_are_required(acme_agreement: Agreement):
    html = str(ReviewForm(agreement=acme_agreement))
    assert re.search(r'<label for="id_held_on">[^<]*<span class="muted">\(required\)</span>', html)
    assert not re.search(r'<label for="id_notes">[^<]*<span class="muted">\(required\)', html)


@pytest.mark.django_db
def test_live_validated_fields_keep_a_feedback_region_for_their_messages(
        acme_agreement: Agreement):
    form = CopyFromAgreementForm(data={}, agreements=Agreement.objects.all(),
                                 agreement=acme_agreement)
    html = form["source"].as_field_group()
    assert 'id="field-id_source"' in html
    assert re.search(r'<div class="field-feedback" id="id_source_feedback" aria-live="polite">'
                     r'<ul class="field-errors" id="id_source_error">', html)


@pytest.mark.django_db
def test_the_two_copy_forms_of_one_page_never_share_an_id(acme_agreement: Agreement):
    from_agreement = CopyFromAgreementForm(agreements=Agreement.objects.all(),
                                           agreement=acme_agreement)
    from_template = CopyFromTemplateForm()
    ids = re.findall(r'\bid="([^"]+)"', from_agreement["mode"].as_field_group()
                     + from_template["mode"].as_field_group())
    assert len(ids) == 4 and len(set(ids)) == 4
