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



def dashboards_modules_imported(path: Path) -> set[str]:
    """The dashboards modules `path` imports (relative imports resolved), dotted."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            base = (node.module or "").split(".") if node.level == 0 else [
                *package[:len(package) - node.level + 1], *(node.module or "").split(".")]
            base = [part for part in base if part]
            names.add(".".join(base))
            names.update(".".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("dashboards")}


def test_the_warm_up_and_the_selectors_import_no_view():
    paths = [ROOT / "dashboards" / "warm.py", ROOT / "dashboards" / "cache.py",
             *(ROOT / "dashboards" / "selectors").glob("*.py")]
    views = {
        str(path.relative_to(ROOT)): sorted(
            name for name in dashboards_modules_imported(path)
            if name.rsplit(".", 1)[-1].endswith("views") or name.rsplit(".", 1)[-1] == "api")
        for path in paths
    }
    assert {path: names for path, names in views.items() if names} == {}


def test_the_selectors_package_reexports_nothing():
    tree = ast.parse((ROOT / "dashboards" / "selectors" / "__init__.py").read_text())
    assert [node for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom | ast.Assign)] == []


def test_one_spreadsheet_escaper():
    """Every CSV writer escapes text with partnerships.spreadsheets: no module spells out the
    formula characters again."""
    spelled = {
        str(path.relative_to(ROOT))
        for app in ORDER
        for path in (ROOT / app).rglob("*.py")
        if '("=", "+", "-", "@"' in path.read_text()
    }
    assert spelled == {"partnerships/spreadsheets.py"}
