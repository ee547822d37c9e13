"""CSV cells that a spreadsheet will not run: values from uploads, feeds and users go through here."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value) -> str:
    """The cell's text, with a leading quote where a spreadsheet would read it as a formula (= + - @)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in FORMULA_STARTS else text
