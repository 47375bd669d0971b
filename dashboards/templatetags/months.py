"""The state of a month, the same words on every month selector of both sides:
`{% month_states as states %}` once per page (one query), then `{{ month|month_label:states }}`
("2026-09 · closed", "2026-11 · open", "2026-12 · in progress") or `{{ month|month_state:states }}`
(closed, open, in_progress) for a class or a test; `templates/_month_state.html` draws the badge."""

from django import template

from ..selectors.months import STATE_WORDS, MonthStates, month_states

register = template.Library()


@register.simple_tag(name="month_states")
def month_states_tag() -> MonthStates:
    return month_states()


@register.filter
def month_label(month: str, states: MonthStates) -> str:
    return states.label(month) if month and states else month or ""


@register.filter
def month_state(month: str, states: MonthStates) -> str:
    return states.state(month) if month and states else ""


@register.filter
def month_state_words(month: str, states: MonthStates) -> str:
    return STATE_WORDS[states.state(month)] if month and states else ""
