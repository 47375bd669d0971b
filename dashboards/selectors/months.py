"""Calendar months as the pages count them ("YYYY-MM")."""

# How many months, up to the selected one, a trend covers: a row's sparkline on the portfolio,
# the small trends of KPIs and categories on the agreement dashboard.
TREND_MONTHS = 12


def month_shift(period: str, months: int) -> str:
    year, month = (int(part) for part in period.split("-"))
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_range(*, last: str, count: int) -> list[str]:
    """`count` calendar months ending with `last`, oldest first."""
    return [month_shift(last, offset) for offset in range(1 - count, 1)]


def trend_window(month: str) -> list[str]:
    """The TREND_MONTHS calendar months up to `month`, oldest first; none without a month."""
    return month_range(last=month, count=TREND_MONTHS) if month else []
