"""Peak memory and time of reading the largest metric files the limits allow.

    python bench/import_memory.py [--database pp_bench_memory] [--workdir DIR] [--keep]
                                  [--before COMMIT] [--skip-write]

Creates its own PostgreSQL database (127.0.0.1, user postgres) with a program of 500
agreements x 10 KPIs, and builds two workbooks:

- `largest.xlsx`: the largest XLSX within the limits: METRIC_FILE_MAX_ROWS rows of the six
  columns (codes and sides as shared strings, date cells, numbers, a note written inline),
  the note sized so the workbook unpacks to just under METRIC_FILE_MAX_UNPACKED_BYTES; highly
  compressible, yet under the per-part ratio limit. Every row is valid.
- `bomb.xlsx`: the file of the issue: the same rows with notes long enough to unpack to about
  1 GB, which the limits before this change accepted (under 50 MB x 20 unpacked and 250:1).

Each measurement runs in a fresh process and prints its time and peak RSS (VmHWM):

1. `preview`: what the read task does on upload (read, the import's validation of every row
   and, for a valid file, the per-KPI counts of new, changed and unchanged values);
2. `validate`: what the import does before writing (read + validate every row);
3. `import`: the whole import, written to PostgreSQL (skipped with --skip-write).

With --before COMMIT (e.g. 1c1b6d6) the preview and validate steps also run on that commit's
code, extracted with `git archive` (no change to the working tree). Target: peak < 1 GiB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGREEMENTS = 500
KPIS = 10
FIRST_DAY = "2025-01-01"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
from import_metrics import bench_program, psql  # noqa: E402  (beside this script)

FILLER = "checked against the partner portal export; see the monthly review notes. "


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def django_setup(root: Path) -> None:
    sys.path.insert(0, str(root))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


# --- the program and the workbooks -----------------------------------------------------------


def setup_program() -> None:
    django_setup(ROOT)
    bench_program(start=FIRST_DAY)


def write_workbook(path: Path, rows: int, note_chars: int) -> dict:
    """A valid metric workbook of `rows` rows, written as a stream (constant memory)."""
    import numpy as np

    codes = [f"AGR-{number:04d}" for number in range(AGREEMENTS)]
    kpis = [f"kpi_{number:02d}" for number in range(KPIS)]
    strings = ["agreement", "kpi", "side", "date", "value", "note", *codes, *kpis,
               "host", "partner"]
    index = {text: position for position, text in enumerate(strings)}
    rng = np.random.default_rng(20261206)
    first = (np.datetime64(FIRST_DAY) - np.datetime64("1899-12-30")).astype(int)
    combos = AGREEMENTS * KPIS * 2
    filler = (FILLER * (note_chars // len(FILLER) + 2))[:max(note_chars - 9, 0)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PACKAGE}">'
            f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"))
        archive.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}">'
            '<sheets><sheet name="Metrics" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PACKAGE}">'
            f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{REL}/styles" Target="styles.xml"/>'
            f'<Relationship Id="rId3" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>"))
        archive.writestr("xl/styles.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="{MAIN}">'
            '<fonts count="1"><font/></fonts><fills count="1"><fill/></fills>'
            '<borders count="1"><border/></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0"/></cellStyleXfs>'
            '<cellXfs count="2"><xf numFmtId="0" xfId="0"/>'
            '<xf numFmtId="14" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>'))
        archive.writestr("xl/sharedStrings.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}" count="{len(strings)}" '
            f'uniqueCount="{len(strings)}">'
            + "".join(f"<si><t>{text}</t></si>" for text in strings) + "</sst>"))
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write((
                f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet '
                f'xmlns="{MAIN}"><dimension ref="A1:F{rows + 1}"/><sheetData><row r="1">'
                + "".join(f'<c r="{letter}1" t="s"><v>{position}</v></c>'
                          for position, letter in enumerate("ABCDEF")) + "</row>"
            ).encode())
            for start in range(0, rows, 20_000):
                numbers = range(start, min(start + 20_000, rows))
                values = np.round(rng.gamma(2.0, 500.0, len(numbers)), 2)
                lines = []
                for number, value in zip(numbers, values, strict=True):
                    combo, day = number % combos, number // combos
                    agreement, rest = divmod(combo, KPIS * 2)
                    kpi, side = divmod(rest, 2)
                    lines.append(row_xml(
                        number + 2, index[codes[agreement]], index[kpis[kpi]],
                        index["host" if side == 0 else "partner"], first + day, value,
                        f"{number:08d} {filler}",
                    ))
                sheet.write("".join(lines).encode())
            sheet.write(b"</sheetData></worksheet>")
    with zipfile.ZipFile(path) as archive:
        parts = archive.infolist()
    sheet_part = next(part for part in parts if part.filename.endswith("sheet1.xml"))
    return {"rows": rows, "note_chars": note_chars, "bytes": path.stat().st_size,
            "unpacked": sum(part.file_size for part in parts),
            "sheet_ratio": round(sheet_part.file_size / sheet_part.compress_size, 1)}


def row_xml(line: int, agreement: int, kpi: int, side: int, serial: int, value: float,
            note: str) -> str:
    return (f'<row r="{line}"><c r="A{line}" t="s"><v>{agreement}</v></c>'
            f'<c r="B{line}" t="s"><v>{kpi}</v></c><c r="C{line}" t="s"><v>{side}</v></c>'
            f'<c r="D{line}" s="1"><v>{serial}</v></c><c r="E{line}"><v>{value}</v></c>'
            f'<c r="F{line}" t="inlineStr"><is><t>{note}</t></is></c></row>')


def note_chars_for(unpacked_limit: int, rows: int) -> int:
    """The note length that brings the workbook just under the unpacked limit (at most the
    500 characters a note may have)."""
    widest = len(row_xml(rows + 1, 511, 511, 511, 45_000, 1234.56, ""))
    return max(10, min(int(unpacked_limit * 0.99) // rows - widest, 500))


# --- the measured steps, each in a fresh process ----------------------------------------------


def step_measure(root: Path, path: Path, step: str) -> dict:
    django_setup(root)
    from partnerships import importers

    started = time.perf_counter()
    outcome: dict = {}
    if step == "preview":
        from partnerships import services

        if hasattr(services, "metric_file_check"):
            # The upload's check: read, the import's validation, the per-KPI counts.
            preview = services.metric_file_check(
                path=path, file_name=path.name, uploader=importers.Uploader(side="host"),
                default_side="host")
        else:  # a commit from before the check (--before)
            preview = importers.metric_file_preview(path=path, file_name=path.name)
        outcome = {"rows": preview.total_rows, "errors": [str(error) for error in
                                                          preview.errors[:2]]}
    elif step == "validate":
        try:
            table = importers.metric_file_read(path=path, file_name=path.name)
        except importers.MetricFileRejected as rejected:
            outcome = {"refused": [str(error) for error in rejected.errors[:2]]}
        else:
            read = time.perf_counter() - started
            validated = importers.metric_rows_validate(
                table=table, uploader=importers.Uploader(side="host"), default_side="host")
            outcome = {"read_seconds": round(read, 2), "rows": validated.rows_total,
                       "errors": validated.error_count}
    elif step == "import":
        from partnerships.services import import_batch_create, observations_import

        batch = import_batch_create(user=None, path=path, file_name=path.name,
                                    source="command")
        result = observations_import(batch_id=batch.pk)
        outcome = {"status": result.status, "inserted": result.inserted,
                   "errors": [str(error) for error in result.errors[:2]]}
    return {"seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mib": round(peak_rss_mib()), **outcome}


def run_step(*args: str, env: dict, cwd: Path = ROOT) -> dict:
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--step", *args],
        check=True, capture_output=True, text=True, env=env, cwd=cwd,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="pp_bench_memory")
    parser.add_argument("--workdir")
    parser.add_argument("--keep", action="store_true", help="keep the database and files")
    parser.add_argument("--before", help="also measure this commit's reader (e.g. 1c1b6d6)")
    parser.add_argument("--skip-write", action="store_true")
    parser.add_argument("--step", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.step:
        step, root, path = options.step
        if step == "setup":
            setup_program()
            print(json.dumps({}))
        else:
            print(json.dumps(step_measure(Path(root), Path(path), step)))
        return

    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="pp-bench-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL":
           f"postgres://postgres@127.0.0.1:5432/{options.database}",
           "MEDIA_ROOT": str(workdir / "media"), "DEBUG": "true"}
    env.pop("REDIS_URL", None)
    psql(f"DROP DATABASE IF EXISTS {options.database}")
    psql(f"CREATE DATABASE {options.database}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, env=env,
                   cwd=ROOT)
    run_step("setup", str(ROOT), "-", env=env)

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    rows, unpacked = settings.METRIC_FILE_MAX_ROWS, settings.METRIC_FILE_MAX_UNPACKED_BYTES
    files = {}
    for name, note in (("largest", note_chars_for(unpacked, rows)), ("bomb", 790)):
        started = time.perf_counter()
        files[name] = write_workbook(workdir / f"{name}.xlsx", rows, note)
        files[name]["build_seconds"] = round(time.perf_counter() - started, 1)
        print(f"{name}.xlsx: {json.dumps(files[name])}", flush=True)

    before_root = None
    if options.before:
        before_root = workdir / f"code-{options.before}"
        before_root.mkdir(exist_ok=True)
        archive = subprocess.run(["git", "archive", options.before], check=True, cwd=ROOT,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before_root)], input=archive, check=True)

    for name in files:
        path = str(workdir / f"{name}.xlsx")
        steps = ["preview", "validate"] + ([] if options.skip_write or name == "bomb"
                                           else ["import"])
        for step in steps:
            print(f"{name} {step} (now): {json.dumps(run_step(step, str(ROOT), path, env=env))}",
                  flush=True)
        if before_root is not None:
            for step in ("preview", "validate"):
                figures = run_step(step, str(before_root), path, env=env, cwd=before_root)
                print(f"{name} {step} ({options.before}): {json.dumps(figures)}", flush=True)
    if not options.keep:
        psql(f"DROP DATABASE IF EXISTS {options.database}")
        for name in files:
            (workdir / f"{name}.xlsx").unlink()


if __name__ == "__main__":
    main()
