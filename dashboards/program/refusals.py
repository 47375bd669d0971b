"""A service's refusal shown on the form that was sent, so nothing typed is lost."""

from django import forms
from django.core.exceptions import ValidationError


def refusal_into_form(form: forms.BaseForm, error: ValidationError) -> None:
    """Each message of `error` beside its field, or above the form when it names no field of
    the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)
