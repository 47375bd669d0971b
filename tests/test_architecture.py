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


# ---- The views' shared helpers live in dashboards/http.py --------------------------------

SHARED_VIEW_HELPERS = {
    "HtmxHttpRequest", "agreement_visible", "month_asked", "month_neighbours",
    "redirect_after_change", "partial_or_page", "validating", "validation_response",
    "refusal_into_form", "imports_visible", "uploader_required",
}


def dashboards_modules() -> list[Path]:
    return sorted((ROOT / "dashboards").rglob("*.py"))


def test_the_shared_view_helpers_are_defined_once_in_dashboards_http():
    defined = {
        (str(path.relative_to(ROOT)), node.name)
        for path in dashboards_modules()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in SHARED_VIEW_HELPERS
    }
    assert defined == {("dashboards/http.py", name) for name in SHARED_VIEW_HELPERS}


def test_no_view_module_writes_its_own_htmx_plumbing():
    """Vary and the htmx response headers come from Django and django-htmx: no function of
    ours named for Vary, no htmx response header (HX-Redirect, HX-Push-Url, …) or Vary spelt
    out. Reading the HX-Request header (to vary on it) is what the decorators are given."""
    spelt = set()
    for path in dashboards_modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            name = str(path.relative_to(ROOT))
            if isinstance(node, ast.FunctionDef) and "vary" in node.name.lower():
                spelt.add((name, node.name))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value.lower() == "vary"
                    or (node.value.upper().startswith("HX-") and node.value != "HX-Request")):
                spelt.add((name, node.value))
    assert spelt == set()


# ---- Only services write ------------------------------------------------------------------

WRITE_METHODS = {"save", "delete", "create", "bulk_create", "bulk_update", "get_or_create",
                 "update_or_create"}
# What the dashboards may still write themselves, with the reason.
WRITES_ALLOWED: set[tuple[str, str]] = set()


QUERYSET_STEPS = {"filter()", "exclude()", "all()", "select_for_update()"}


def _receiver_chain(node: ast.expr) -> list[str]:
    """The names, attributes and calls a call's receiver is made of, innermost first:
    `ApiToken.objects.filter(pk=1)` → ['ApiToken', 'objects', 'filter()']."""
    chain = []
    while True:
        call = isinstance(node, ast.Call)
        if call:
            node = node.func
        if isinstance(node, ast.Attribute):
            chain.append(node.attr + ("()" if call else ""))
            node = node.value
            continue
        if isinstance(node, ast.Name):
            chain.append(node.id + ("()" if call else ""))
        return chain[::-1]


def _is_write(call: ast.Call) -> bool:
    if not isinstance(call.func, ast.Attribute):
        return False
    method, receiver = call.func.attr, _receiver_chain(call.func.value)
    if method == "update":  # a dict's update is no write; a queryset's is
        return "objects" in receiver or bool(QUERYSET_STEPS & set(receiver))
    if method not in WRITE_METHODS:
        return False
    if receiver[:1] in (["cache"], ["default_storage"]) or receiver == ["super()"]:
        # The page cache; media files (an archive of PDFs); a form's own save() handing on to
        # Django's (its caller is checked).
        return False
    unsaved = any(keyword.arg == "commit" and isinstance(keyword.value, ast.Constant)
                  and keyword.value.value is False for keyword in call.keywords)
    return not unsaved


def test_no_dashboards_module_writes_to_the_database_itself():
    """Views, forms and selectors call services (partnerships, scoring) to write."""
    writes = {
        (str(path.relative_to(ROOT)), node.func.attr)
        for path in dashboards_modules()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Call) and _is_write(node)
    }
    assert writes - WRITES_ALLOWED == set()
    assert WRITES_ALLOWED <= writes  # an allowance no longer needed is removed


def test_the_write_check_finds_the_writes_it_names():
    def writes(source: str) -> bool:
        return _is_write(ast.parse(source).body[0].value)

    assert writes("batch.delete()") and writes("Review.objects.create(kind='x')")
    assert writes("ImportBatch.objects.filter(pk=1).update(confirmed_at=None)")
    assert writes("batches.filter(pk=1).update(confirmed_at=None)")
    assert writes("form.save()") and writes("ActionItem.objects.bulk_create(rows)")
    assert not writes("context.update(run=run)") and not writes("cache.delete(key)")
    assert not writes("default_storage.save(name, content)")
    assert not writes("form.save(commit=False)") and not writes("super().save(commit=commit)")
