"""Metric import benchmark: the import pipeline against a plain PostgreSQL COPY of the same rows.

    python bench/import_metrics.py [--rows 1000000] [--sample 100000] [--database pp_bench_import]
                                   [--keep] [--skip-import-export]

Creates its own PostgreSQL database (127.0.0.1, user postgres) with a program of 500
agreements x 10 KPIs, writes a metric CSV of --rows rows, and prints, each step in a fresh
process (so peak RSS is the step's own):

1. the first import through the pipeline (import_batch_create + observations_import): time,
   phases and peak RSS;
2. a plain `COPY` of the same rows (ids resolved) into a table with the same columns and the
   same unique index, and the ratio (target: import <= 3 x COPY);
3. a second import of the same file (all unchanged; target: no slower than the first);
4. django-import-export on a --sample row sample against the pipeline on the same sample, both
   into an empty table (install it for the benchmark only: pip install django-import-export).

Targets: import <= 3 x COPY, peak memory < 1.5 GiB.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AGREEMENTS = 500
KPIS = 10
FIRST_DAY = "2023-01-01"
DAYS = 731
SEED = 20261123


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qtAc", sql],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def django_setup() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def bench_program(*, start: str) -> tuple[list, list]:
    """AGREEMENTS agreements of AGREEMENTS/10 partners, each with the same KPIS KPIs (sum, host
    side, target 100, floor 0), starting on `start`; returns the agreements and the KPIs."""
    from partnerships.models import Agreement, AgreementKPI, KPIDefinition, Partner

    partners = Partner.objects.bulk_create(
        Partner(slug=f"partner-{number:03d}", name=f"Partner {number:03d}")
        for number in range(AGREEMENTS // 10)
    )
    kpis = KPIDefinition.objects.bulk_create(
        KPIDefinition(code=f"kpi_{number:02d}", name=f"KPI {number}", category=category,
                      aggregation="sum", source="host")
        for number, category in zip(
            range(KPIS), ["financial", "strategic", "operational", "relationship"] * 3,
            strict=False,
        )
    )
    agreements = Agreement.objects.bulk_create(
        Agreement(partner=partners[number % len(partners)], code=f"AGR-{number:04d}",
                  type="referral", stage="active", start_date=start)
        for number in range(AGREEMENTS)
    )
    AgreementKPI.objects.bulk_create(
        AgreementKPI(agreement=agreement, kpi=kpi, target=100, floor=0)
        for agreement in agreements for kpi in kpis
    )
    return agreements, kpis


# --- steps, each run in its own process ----------------------------------------------------


def step_setup(workdir: Path, rows: int, sample: int) -> dict:
    """The program (partners, agreements, KPIs) and the metric CSV files."""
    django_setup()
    import numpy as np
    import pandas as pd

    agreements, kpis = bench_program(start=FIRST_DAY)
    rng = np.random.default_rng(SEED)
    keys = rng.choice(AGREEMENTS * KPIS * 2 * DAYS, size=rows, replace=False)
    agreement_index, rest = np.divmod(keys, KPIS * 2 * DAYS)
    kpi_index, rest = np.divmod(rest, 2 * DAYS)
    side_index, day_index = np.divmod(rest, DAYS)
    days = np.datetime64(FIRST_DAY) + day_index.astype("timedelta64[D]")
    values = np.round(rng.gamma(2.0, 500.0, rows), 2)
    notes = np.where(rng.random(rows) < 0.02, "checked by finance; see ticket", "")
    codes = np.array([agreement.code for agreement in agreements], dtype=object)
    kpi_codes = np.array([kpi.code for kpi in kpis], dtype=object)
    sides = np.array(["host", "partner"], dtype=object)
    frame = pd.DataFrame({
        "agreement": codes[agreement_index], "kpi": kpi_codes[kpi_index],
        "date": np.datetime_as_string(days), "value": values, "side": sides[side_index],
        "note": notes,
    })
    frame.to_csv(workdir / "metrics.csv", index=False)
    frame.head(sample).to_csv(workdir / "sample.csv", index=False)
    ids = pd.DataFrame({
        "agreement_id": np.array([agreement.id for agreement in agreements])[agreement_index],
        "kpi_id": np.array([kpi.id for kpi in kpis])[kpi_index],
        "side": sides[side_index], "date": frame["date"], "value": values, "note": notes,
    })
    ids.to_csv(workdir / "copy.csv", index=False, header=False)
    return {"csv_bytes": (workdir / "metrics.csv").stat().st_size,
            "sample_rows": min(sample, rows)}


def step_import(workdir: Path, name: str) -> dict:
    """One import of a file through the pipeline, as the command runs it."""
    django_setup()
    from partnerships.services import import_batch_create, observations_import

    marks: dict[int, float] = {}
    started = time.perf_counter()
    batch = import_batch_create(user=None, path=workdir / name, file_name=name,
                                source="command")
    result = observations_import(
        batch_id=batch.pk, progress=lambda percent: marks.setdefault(percent, time.perf_counter())
    )
    total = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"import failed: {result.errors[:5]}")

    def mark(percent: int) -> float:
        return min((at for done, at in marks.items() if done >= percent), default=started)

    # Progress in the write phase (PostgreSQL): staging COPY up to 69 %, unchanged rows dropped
    # at 75 %, audit rows at 81 %, the upsert done at 99 %, then the commit.
    return {
        "seconds": total, "read": mark(25) - started, "validate": mark(40) - mark(25),
        "write": total - (mark(40) - started), "staging": mark(69) - mark(40),
        "compare": mark(81) - mark(69), "upsert": mark(99) - mark(81),
        "commit": total - (mark(99) - started), "inserted": result.inserted,
        "updated": result.updated, "unchanged": result.unchanged, "rss_mib": peak_rss_mib(),
    }


def step_copy(workdir: Path, database: str) -> dict:
    """Plain COPY of the same rows into a table with the same columns and unique index; then
    COPY into a clone of the observation table (all its indexes and foreign keys)."""
    import psycopg

    payload = (workdir / "copy.csv").read_bytes()

    def timed_copy(connection, table: str, columns: str, data: bytes) -> tuple[float, float]:
        started = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(
            f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, FORCE_NOT_NULL (note))"
        ) as copy:
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start:start + (1 << 20)])
        copied = time.perf_counter()
        connection.commit()  # the deferred foreign-key checks run here
        return copied - started, time.perf_counter() - copied

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as connection:
        connection.execute("DROP TABLE IF EXISTS bench_copy")
        connection.execute(
            "CREATE TABLE bench_copy (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
            " agreement_id bigint NOT NULL, kpi_id bigint NOT NULL, side varchar(8) NOT NULL,"
            " date date NOT NULL, value double precision NOT NULL, note varchar(500) NOT NULL"
            " DEFAULT '', batch_id bigint, recorded_by_id integer,"
            " recorded_at timestamptz NOT NULL DEFAULT now())"
        )
        connection.execute(
            "CREATE UNIQUE INDEX bench_copy_key ON bench_copy (agreement_id, kpi_id, side, date)"
        )
        connection.commit()
        connection.execute("CHECKPOINT")
        plain, _ = timed_copy(connection, "bench_copy",
                              "agreement_id, kpi_id, side, date, value, note", payload)
        rows = connection.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
        connection.execute("DROP TABLE bench_copy")
        batch = connection.execute(
            "INSERT INTO partnerships_importbatch (source, status, side, file_name, file, sha256,"
            " rows_total, inserted, updated, unchanged, error_count, errors, notes, progress,"
            " created_at) VALUES ('command', 'succeeded', 'host', 'bench', '', '', 0, 0, 0, 0,"
            " 0, '[]', '[]', 100, now()) RETURNING id"
        ).fetchone()[0]
        connection.commit()
        suffix = f",{batch},2026-01-01 00:00:00+00\n".encode()
        full_payload = suffix.join(payload.splitlines()) + suffix
        full_columns = "agreement_id, kpi_id, side, date, value, note, batch_id, recorded_at"
        # The floor: what PostgreSQL itself needs to store these rows in the real table (all
        # its indexes). Then the same with database foreign keys on the four id columns, which
        # the table does not have (see MetricObservation), to show what they would cost.
        timings = {}
        for label, keys in (("full", False), ("with_keys", True)):
            connection.execute("CREATE TABLE bench_full (LIKE partnerships_metricobservation "
                               "INCLUDING ALL)")
            if keys:
                for column, target in (("agreement_id", "partnerships_agreement"),
                                       ("kpi_id", "partnerships_kpidefinition"),
                                       ("batch_id", "partnerships_importbatch"),
                                       ("recorded_by_id", "auth_user")):
                    connection.execute(f"ALTER TABLE bench_full ADD FOREIGN KEY ({column}) "
                                       f"REFERENCES {target} DEFERRABLE INITIALLY DEFERRED")
            connection.commit()
            connection.execute("CHECKPOINT")
            timings[label] = timed_copy(connection, "bench_full", full_columns, full_payload)
            connection.execute("DROP TABLE bench_full")
            connection.commit()
        connection.execute(f"DELETE FROM partnerships_importbatch WHERE id = {batch}")
        connection.commit()
        indexes = int(connection.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'partnerships_metricobservation'"
        ).fetchone()[0])
    return {"seconds": plain, "rows": rows, "full_seconds": sum(timings["full"]),
            "keys_copy": timings["with_keys"][0], "keys_checks": timings["with_keys"][1],
            "indexes": indexes, "rss_mib": peak_rss_mib()}


def step_empty(workdir: Path) -> dict:
    """Remove every observation (and its history), for the sample comparison."""
    django_setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE partnerships_observationchange, partnerships_metricobservation")
    return {}


def step_import_export(workdir: Path) -> dict:
    """django-import-export on the sample, upserting by the natural key, into an empty table."""
    django_setup()
    try:
        import import_export
        import tablib
        from import_export import fields, resources, widgets
    except ImportError as error:
        return {"error": f"django-import-export is not installed ({error})"}
    from django.utils import timezone

    from partnerships.models import (
        Agreement,
        ImportBatch,
        KPIDefinition,
        MetricObservation,
    )

    batch = ImportBatch.objects.create(source="command", side="host", status="running")
    now = timezone.now()

    class CachedForeignKeyWidget(widgets.ForeignKeyWidget):
        """Looks each code up once: the tuning anyone would give the peer a fair chance."""

        def __init__(self, model, field):
            super().__init__(model, field)
            self.cache = {getattr(item, field): item for item in model.objects.all()}

        def clean(self, value, row=None, **kwargs):
            return self.cache.get(value) or super().clean(value, row, **kwargs)

    class ObservationResource(resources.ModelResource):
        agreement = fields.Field(attribute="agreement", column_name="agreement",
                                 widget=CachedForeignKeyWidget(Agreement, "code"))
        kpi = fields.Field(attribute="kpi", column_name="kpi",
                           widget=CachedForeignKeyWidget(KPIDefinition, "code"))

        class Meta:
            model = MetricObservation
            fields = ("agreement", "kpi", "side", "date", "value", "note")
            # Upsert by the natural key, as the pipeline does.
            import_id_fields = ("agreement", "kpi", "side", "date")
            skip_unchanged = True
            skip_diff = True
            use_bulk = True
            batch_size = 5000

        def before_save_instance(self, instance, row, **kwargs):
            instance.batch, instance.recorded_at = batch, now

    dataset = tablib.Dataset().load((workdir / "sample.csv").read_text(), format="csv")
    started = time.perf_counter()
    try:
        result = ObservationResource().import_data(dataset, dry_run=False,
                                                   use_transactions=True, raise_errors=True)
    except Exception as error:  # report incompatibilities instead of crashing the benchmark
        return {"error": f"{type(error).__name__}: {error}"[:300],
                "version": import_export.__version__}
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(dataset), "totals": dict(result.totals),
            "stored": MetricObservation.objects.count(), "version": import_export.__version__,
            "rss_mib": peak_rss_mib()}


STEPS = {"setup", "import", "copy", "empty", "import_export"}


def run_step(step: str, workdir: Path, env: dict, *extra: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--step", step, "--workdir", str(workdir), *extra],
        env=env, capture_output=True, text=True,
    )
    if completed.returncode:
        raise SystemExit(f"step {step} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--database", default="pp_bench_import")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--skip-import-export", action="store_true")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--file", default="metrics.csv", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step:
        workdir = Path(args.workdir)
        if args.step == "setup":
            outcome = step_setup(workdir, args.rows, args.sample)
        elif args.step == "import":
            outcome = step_import(workdir, args.file)
        elif args.step == "copy":
            outcome = step_copy(workdir, args.database)
        elif args.step == "empty":
            outcome = step_empty(workdir)
        else:
            outcome = step_import_export(workdir)
        print(json.dumps(outcome))
        return

    url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    workdir = Path(tempfile.mkdtemp(prefix="pp-bench-import-"))
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "SECRET_KEY": "bench",
           "ALLOWED_HOSTS": "localhost", "MEDIA_ROOT": str(workdir / "media"),
           "METRIC_FILE_MAX_BYTES": str(500 * 1024 * 1024), "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    psql(f"CREATE DATABASE {args.database}")
    try:
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"],
                       env=env, check=True)
        print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"{psql('SHOW server_version')} PostgreSQL; {time.strftime('%Y-%m-%d')}")
        setup = run_step("setup", workdir, env, "--rows", str(args.rows),
                         "--sample", str(args.sample))
        print(f"metric file: {args.rows:,} rows, {setup['csv_bytes'] / 1e6:.1f} MB CSV")

        first = run_step("import", workdir, env)
        psql("VACUUM ANALYZE partnerships_metricobservation", args.database)
        second = run_step("import", workdir, env)
        copy = run_step("copy", workdir, env, "--database", args.database)
        rows_per_second = args.rows / first["seconds"]
        print(
            f"first import:  {first['seconds']:6.2f} s ({rows_per_second:,.0f} rows/s), "
            f"{first['inserted']:,} inserted, peak RSS {first['rss_mib']:,.0f} MiB"
        )
        for label, run in (("first", first), ("second", second)):
            print(
                f"  {label}: read {run['read']:.2f} s, validate {run['validate']:.2f} s, "
                f"staging COPY {run['staging']:.2f} s, compare/audit {run['compare']:.2f} s, "
                f"insert/update {run['upsert']:.2f} s, commit {run['commit']:.2f} s"
            )
        print(f"plain COPY:    {copy['seconds']:6.2f} s ({copy['rows']:,} rows, unique index)")
        print(f"ratio import / COPY: {first['seconds'] / copy['seconds']:.2f} (target <= 3)")
        floor = copy["full_seconds"]
        print(
            f"COPY into a clone of the observation table ({copy['indexes']} indexes): "
            f"{floor:.2f} s; import / that: {first['seconds'] / floor:.2f}"
        )
        keyed = copy["keys_copy"] + copy["keys_checks"]
        print(
            f"  the same clone with 4 database foreign keys: {keyed:.2f} s "
            f"({copy['keys_copy']:.2f} s COPY + {copy['keys_checks']:.2f} s foreign-key checks "
            f"at commit)"
        )
        print(
            f"second import: {second['seconds']:6.2f} s ({second['unchanged']:,} unchanged, "
            f"{second['inserted'] + second['updated']} written), peak RSS "
            f"{second['rss_mib']:,.0f} MiB; second / first "
            f"{second['seconds'] / first['seconds']:.2f} (target <= 1)"
        )
        peak = max(first["rss_mib"], second["rss_mib"])
        print(f"peak memory:   {peak:,.0f} MiB (target < 1,536 MiB)")

        if not args.skip_import_export:
            run_step("empty", workdir, env)
            other = run_step("import_export", workdir, env)
            run_step("empty", workdir, env)
            ours = run_step("import", workdir, env, "--file", "sample.csv")
            sample = setup["sample_rows"]
            print(f"sample of {sample:,} rows into an empty table:")
            print(f"  pipeline:             {ours['seconds']:6.2f} s "
                  f"({sample / ours['seconds']:,.0f} rows/s)")
            if "error" in other:
                print(f"  django-import-export: does not work here: {other['error']}")
            else:
                print(f"  django-import-export {other['version']}: {other['seconds']:6.2f} s "
                      f"({sample / other['seconds']:,.0f} rows/s, {other['stored']:,} stored)")
                print(f"  speed-up: {other['seconds'] / ours['seconds']:.0f}x")
    finally:
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept database {args.database} and files in {workdir}")


if __name__ == "__main__":
    main()
