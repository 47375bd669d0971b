"""Rules for the codes that pages name in their URLs, shared by the models, forms and files."""

from django.core.validators import RegexValidator

# `agreements/<str:code>/` carries any character but "/"; a code also travels in file names,
# import rows and the API, so it is kept to what all of them carry unescaped.
AGREEMENT_CODE_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z"
AGREEMENT_CODE_RULE = "letters, digits, “-”, “_” and “.” only, starting with a letter or digit"

agreement_code_validator = RegexValidator(
    AGREEMENT_CODE_REGEX, message=f"Use {AGREEMENT_CODE_RULE}.", code="invalid_code",
)
