"""Closed-months benchmark: the nightly run that scores only the open months, and closing one.

    python bench/closing.py [--agreements 1000] [--kpis 12] [--months 36] [--per-month 4]
                            [--open-months 2] [--repeat 3] [--keep]
                            [--database pp_bench_closing]

Creates its own PostgreSQL database (127.0.0.1, user postgres), fills it with generate_demo,
then times, each step in a fresh process (its peak RSS is the step's own):

- one `GROUP BY agreement, kpi, month` over the whole observation table, groups fetched, and
  the same inside PostgreSQL only;
- a full scoring run, nothing closed;
- closing every month but the last `--open-months` (once, from the full run);
- the nightly run with those months closed: it computes the open months only;
- closing one more month for every agreement (then reopened and scored again, for the next
  repetition).

Targets: nightly run ≤ 0.5 × the GROUP BY; closing a month ≤ 5 s; each below 1 GiB.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUP_BY = (
    "SELECT agreement_id, kpi_id, date_trunc('month', date) AS month, count(*), sum(value), "
    "avg(value), max(date) FROM partnerships_metricobservation GROUP BY agreement_id, kpi_id, "
    "month"
)


def psql(sql: str, database: str = "postgres", *, tuples: bool = False) -> str:
    command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", sql]
    if tuples:
        command[-2:-1] = ["-tAc"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def bench_env(database: str) -> dict:
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
           "DEBUG": "false", "SECRET_KEY": "bench", "ALLOWED_HOSTS": "localhost"}
    env.pop("REDIS_URL", None)
    return env


def prepare(args, env: dict) -> None:
    """A fresh database with generate_demo's program, unless --keep finds one."""
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{args.database}'",
                  tuples=True) == "1"
    if args.keep and exists:
        return
    psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    psql(f"CREATE DATABASE {args.database}")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
    started = time.perf_counter()
    subprocess.run(
        [*manage, "generate_demo", "--partners", str(max(args.agreements // 10, 1)),
         "--agreements", str(args.agreements), "--kpis-per-agreement", str(args.kpis),
         "--months", str(args.months), "--observations-per-month", str(args.per_month)],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    print(f"generated data in {time.perf_counter() - started:.1f} s")
    psql("VACUUM ANALYZE partnerships_metricobservation", args.database)


# ---- Steps, each run in a process of its own -----------------------------------------------


def step_group_by() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(GROUP_BY)
        groups = len(cursor.fetchall())
        fetched = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute(f"SELECT count(*) FROM ({GROUP_BY}) groups")
        cursor.fetchone()
        server = time.perf_counter() - started
    return {"seconds": fetched, "server_seconds": server, "groups": groups}


def step_run() -> dict:
    from scoring.services import scoring_run_inline

    summary = scoring_run_inline()
    if summary.status != "succeeded":
        raise SystemExit(f"run {summary.run_id} {summary.status}")
    from scoring.models import ScoringRun

    run = ScoringRun.objects.get(pk=summary.run_id)
    return {"seconds": summary.seconds, "cleanup_seconds": summary.cleanup_seconds,
            "open_from": run.open_from, "months": len(run.periods),
            "computed": len([month for month in run.periods
                             if not run.open_from or month >= run.open_from])}


def step_close(through: str) -> dict:
    from scoring.closing import months_close

    started = time.perf_counter()
    months = months_close(through=through, user=None)
    return {"seconds": time.perf_counter() - started, "months": len(months)}


def step_reopen(month: str) -> dict:
    from scoring.closing import month_reopen

    month_reopen(month=month, reason="benchmark: close it again", user=None)
    return {}


def run_step(name: str, argument: str | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    steps = {"group-by": step_group_by, "run": step_run, "close": step_close,
             "reopen": step_reopen}
    result = steps[name](argument) if argument else steps[name]()
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def child(env: dict, name: str, argument: str | None = None) -> dict:
    command = [sys.executable, __file__, "--step", name]
    if argument:
        command += ["--argument", argument]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- The measurement ------------------------------------------------------------------------


def months_of_program(database: str) -> list[str]:
    first, last = psql("SELECT to_char(min(date), 'YYYY-MM') || ' ' || to_char(max(date), "
                       "'YYYY-MM') FROM partnerships_metricobservation", database,
                       tuples=True).split()
    months, year, month = [], int(first[:4]), int(first[5:])
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return months


def median(results: list[dict], key: str = "seconds") -> float:
    return statistics.median(result[key] for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--kpis", type=int, default=12)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--per-month", type=int, default=4)
    parser.add_argument("--open-months", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default="pp_bench_closing")
    parser.add_argument("--keep", action="store_true",
                        help="Reuse the database if it exists (skip generating data).")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--argument", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        run_step(args.step, args.argument)
        return

    env = bench_env(args.database)
    prepare(args, env)
    # Start from nothing closed, whatever a kept database holds.
    psql("TRUNCATE scoring_statementapproval, scoring_statementline, "
         "partnerships_monthevent, partnerships_programmonth CASCADE", args.database)
    psql("UPDATE scoring_scorecard SET frozen = false WHERE frozen; "
         "UPDATE scoring_kpiscore SET frozen = false WHERE frozen", args.database)
    months = months_of_program(args.database)
    closed_through = months[-args.open_months - 1]
    observations = int(psql("SELECT count(*) FROM partnerships_metricobservation",
                            args.database, tuples=True))

    group_by = [child(env, "group-by") for _ in range(args.repeat)]
    full = [child(env, "run") for _ in range(args.repeat)]
    close_all = child(env, "close", closed_through)
    nightly = [child(env, "run") for _ in range(args.repeat)]
    next_month = months[-args.open_months]
    close_one = []
    for repetition in range(args.repeat):
        close_one.append(child(env, "close", next_month))
        if repetition < args.repeat - 1:
            child(env, "reopen", next_month)
            child(env, "run")

    base, server = median(group_by), median(group_by, "server_seconds")
    full_run, nightly_run = median(full), median(nightly)
    print(f"observations: {observations:,}, months {months[0]} to {months[-1]}; closed "
          f"through {closed_through}: the nightly run computes {nightly[0]['computed']} of "
          f"{nightly[0]['months']} months")
    print(f"GROUP BY, groups fetched (median of {args.repeat}): {base:.3f} s "
          f"({group_by[0]['groups']:,} groups); inside PostgreSQL only: {server:.3f} s")
    print(f"full run, nothing closed (median): {full_run:.3f} s  "
          f"[{', '.join(f'{r['seconds']:.2f}' for r in full)}]; "
          f"peak {max(r['peak_mib'] for r in full):.0f} MiB")
    print(f"closing {close_all['months']} months at once: {close_all['seconds']:.3f} s; "
          f"peak {close_all['peak_mib']:.0f} MiB")
    print(f"nightly run, {args.open_months} open months (median): {nightly_run:.3f} s  "
          f"[{', '.join(f'{r['seconds']:.2f}' for r in nightly)}]; "
          f"peak {max(r['peak_mib'] for r in nightly):.0f} MiB")
    print(f"closing one month for {args.agreements:,} agreements (median): "
          f"{median(close_one):.3f} s  [{', '.join(f'{r['seconds']:.2f}' for r in close_one)}]; "
          f"peak {max(r['peak_mib'] for r in close_one):.0f} MiB  (target ≤ 5 s)")
    print(f"ratio nightly / GROUP BY fetched: {nightly_run / base:.2f} (target ≤ 0.5); "
          f"/ GROUP BY inside PostgreSQL: {nightly_run / server:.2f}; "
          f"/ full run: {nightly_run / full_run:.2f}")


if __name__ == "__main__":
    main()
