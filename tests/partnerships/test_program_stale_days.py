"""The program file's `scoring.stale_after_days`: loaded, checked, exported, round trip."""

import pytest

from partnerships.models import ProgramSettings
from partnerships.program import ProgramError, program_load, program_parse
from partnerships.program_export import program_export

pytestmark = pytest.mark.django_db

REST = "partners: []\nkpis: []\nagreements: []\n"


def test_loaded_and_exported_byte_for_byte(acme_agreement):
    program_load(document="scoring:\n  stale_after_days: 30\n" + REST)
    assert ProgramSettings.current().stale_after_days == 30
    exported = program_export()
    assert program_parse(text=exported)["scoring"]["stale_after_days"] == 30
    ProgramSettings.objects.all().delete()
    program_load(document=exported)
    assert ProgramSettings.current().stale_after_days == 30
    assert program_export() == exported


def test_the_default_is_left_out_of_the_export(acme_agreement):
    program_load(document="scoring:\n  hysteresis: 2\n" + REST)
    assert ProgramSettings.current().stale_after_days == 45
    assert "stale_after_days" not in program_parse(text=program_export())["scoring"]


@pytest.mark.parametrize("value", ["0", "367", "1.5", "soon"])
def test_out_of_range_is_refused_with_its_place(db, value):
    with pytest.raises(ProgramError) as refused:
        program_load(document=f"scoring:\n  stale_after_days: {value}\n" + REST)
    assert [problem for problem in refused.value.problems
            if not problem.startswith("scoring.stale_after_days")] == []
    assert not ProgramSettings.objects.exists()
