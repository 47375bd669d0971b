"""Data flows one way: partnerships → scoring → dashboards. An app never imports a later one."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["partnerships", "scoring", "dashboards"]


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def imported_apps(path: Path) -> set[str]:
    return top_level_imports(path) & set(ORDER)


@pytest.mark.parametrize("app", ORDER)
def test_app_does_not_import_a_later_app(app):
    later = set(ORDER[ORDER.index(app) + 1 :])
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_apps(path) & later)
        for path in (ROOT / app).rglob("*.py")
        if imported_apps(path) & later
    }
    assert offenders == {}


def test_scoring_rules_do_not_touch_the_database():
    source = (ROOT / "scoring" / "rules.py").read_text()
    assert "django" not in source


def test_only_dashboards_use_plotly():
    users = {
        str(path.relative_to(ROOT))
        for app in ("partnerships", "scoring", "config")
        for path in (ROOT / app).rglob("*.py")
        if "plotly" in top_level_imports(path)
    }
    assert users == set()

