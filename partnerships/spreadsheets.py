"""Text cells of every CSV the project writes, made safe for spreadsheet programs.

The lowest app that writes such files holds the one rule, so that the scoring export, the
pages' downloads and the import error report escape alike.
"""

# A cell starting with one of these is run as a formula by Excel, LibreOffice or Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_escape(text: str) -> str:
    """Text starting with `=`, `+`, `-`, `@`, tab or CR gets a leading apostrophe, whatever
    follows (numbers are written by the number formatters, never through here)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
