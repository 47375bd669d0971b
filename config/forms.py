"""The one form renderer of the project: every form and field is drawn by templates/forms/."""

from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Forms as `{{ form }}` (non-field errors once, then each field's group) and fields as
    `{{ field.as_field_group }}`: label, widget, help text and errors with the ids the widget's
    aria-describedby names."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"


class LiveFeedbackRenderer(FormRenderer):
    """Forms checked as they are filled in: each field's messages sit in a live region that the
    inline validation replaces out of band, so nothing being typed is swapped."""

    field_template_name = "forms/field_feedback.html"
