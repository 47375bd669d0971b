import pytest

from partnerships.models import MetricObservation, ObservationChange
from tests.conftest import write_observations

pytestmark = pytest.mark.django_db


def test_first_write_inserts_every_row(acme_agreement, kpis):
    _, counts = write_observations([
        (acme_agreement, kpis["revenue"], "host", "2025-01-15", 40),
        (acme_agreement, kpis["revenue"], "host", "2025-01-20", 10),
    ])
    assert (counts.inserted, counts.updated, counts.unchanged) == (2, 0, 0)
    assert MetricObservation.objects.count() == 2


def test_second_write_of_same_rows_changes_nothing(acme_agreement, kpis):
    rows = [(acme_agreement, kpis["revenue"], "host", "2025-01-15", 40)]
    first_batch, _ = write_observations(rows)
    _, counts = write_observations(rows)
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 1)
    assert MetricObservation.objects.get().batch == first_batch
    assert not ObservationChange.objects.exists()


def test_changed_value_replaces_old_and_records_it(acme_agreement, kpis, host_manager):
    first_batch, _ = write_observations(
        [(acme_agreement, kpis["revenue"], "host", "2025-01-15", 40)]
    )
    second_batch, counts = write_observations(
        [(acme_agreement, kpis["revenue"], "host", "2025-01-15", 55.5)], user=host_manager
    )
    assert (counts.inserted, counts.updated, counts.unchanged) == (0, 1, 0)
    observation = MetricObservation.objects.get()
    assert observation.value == 55.5
    assert observation.batch == second_batch
    change = ObservationChange.objects.get()
    assert (change.old_value, change.new_value) == (40, 55.5)
    assert change.old_batch == first_batch
    assert (change.batch, change.changed_by) == (second_batch, host_manager)
    assert change.observation == observation


def test_same_date_other_side_is_a_separate_observation(acme_agreement, kpis):
    write_observations([
        (acme_agreement, kpis["revenue"], "host", "2025-01-15", 40),
        (acme_agreement, kpis["revenue"], "partner", "2025-01-15", 42),
    ])
    assert MetricObservation.objects.count() == 2
