"""What the pages keep of the program's rows (dashboards/cache.py): kept under the program's
change counter, which the write services move on; a kept empty value is a value."""

import datetime as dt

from dashboards.cache import program_cached
from dashboards.program.overdue import portfolio_review_figures
from partnerships import governance_services
from partnerships.models import ActionItem, Agreement


def overdue_action(index: int) -> dict:
    return {"description": f"Task {index}", "owner_name": "Ann", "owner_side": "partner",
            "raci": "responsible", "due_date": dt.date(2025, 3, 1)}


def test_the_portfolio_keeps_its_overdue_counts_until_a_service_changes_the_program(
        acme_agreement, host_manager):
    assert portfolio_review_figures(agreements=Agreement.objects.all())["overdue_actions"] == 0
    # Written behind the services' back: the kept figure is read (nothing in the project
    # writes so; it shows the figure is kept and what moves it on).
    ActionItem.objects.create(agreement=acme_agreement, **overdue_action(1))
    assert portfolio_review_figures(agreements=Agreement.objects.all())["overdue_actions"] == 0

    governance_services.action_item_create(agreement=acme_agreement, user=host_manager,
                                           **overdue_action(2))
    assert portfolio_review_figures(agreements=Agreement.objects.all())["overdue_actions"] == 2


def test_a_kept_empty_value_is_not_computed_again(db):
    computed = []

    def compute():
        computed.append(1)
        return None

    for _ in range(3):
        assert program_cached(name="nothing", compute=compute) is None
    assert len(computed) == 1
