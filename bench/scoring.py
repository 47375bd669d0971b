"""Scoring benchmark: a full run against one PostgreSQL GROUP BY over the same observations.

    python bench/scoring.py [--agreements 1000] [--kpis 12] [--months 36] [--per-month 4]
                            [--keep] [--database pp_bench_scoring]

Creates its own PostgreSQL database (127.0.0.1, user postgres), fills it with generate_demo,
then prints the time of `GROUP BY agreement, kpi, month` over all observations, the time and
peak memory of a full scoring run, and their ratio (target: run < 3 × GROUP BY, < 1 GiB).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                   check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--kpis", type=int, default=12)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--per-month", type=int, default=4)
    parser.add_argument("--database", default="pp_bench_scoring")
    parser.add_argument("--keep", action="store_true",
                        help="Reuse the database if it exists (skip generating data).")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--celery-workers", type=int, default=2,
                        help="Also time runs through a real Celery worker with this many "
                        "processes on the local Redis (0: skip).")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "SECRET_KEY": "bench",
           "ALLOWED_HOSTS": "localhost"}
    env.pop("REDIS_URL", None)
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{args.database}'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip() == "1"
    if not (args.keep and exists):
        psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        psql(f"CREATE DATABASE {args.database}")
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
        started = time.perf_counter()
        subprocess.run(
            [*manage, "generate_demo", "--no-close",
             "--partners", str(max(args.agreements // 10, 1)),
             "--agreements", str(args.agreements), "--kpis-per-agreement", str(args.kpis),
             "--months", str(args.months), "--observations-per-month", str(args.per_month)],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )
        print(f"generated data in {time.perf_counter() - started:.1f} s")

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.db import connection

    from scoring.services import scoring_run_inline

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE partnerships_metricobservation")
        cursor.execute("SELECT count(*) FROM partnerships_metricobservation")
        observations = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM partnerships_agreement")
        agreements = cursor.fetchone()[0]
    group_by = []
    for _ in range(args.repeat):
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(
                "SELECT agreement_id, kpi_id, date_trunc('month', date) AS month, count(*), "
                "sum(value), avg(value), max(date) FROM partnerships_metricobservation "
                "GROUP BY agreement_id, kpi_id, month"
            )
            groups = len(cursor.fetchall())
            group_by.append(time.perf_counter() - started)
    server_only = []
    for _ in range(args.repeat):
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(
                "SELECT count(*) FROM (SELECT agreement_id, kpi_id, date_trunc('month', date) "
                "AS month, count(*), sum(value), avg(value), max(date) "
                "FROM partnerships_metricobservation GROUP BY agreement_id, kpi_id, month) groups"
            )
            cursor.fetchone()
            server_only.append(time.perf_counter() - started)
    runs, cleanups = [], []
    for _ in range(args.repeat):
        summary = scoring_run_inline(chunk_size=args.chunk_size)
        runs.append(summary.seconds)
        cleanups.append(summary.cleanup_seconds)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base = statistics.median(group_by)
    run = statistics.median(runs)
    celery_runs, worker_peak_mib = (
        celery_timings(args, env) if args.celery_workers else ([], 0.0)
    )
    print(f"observations:          {observations:,} ({agreements:,} agreements)")
    print(f"GROUP BY (median of {args.repeat}): {base:.3f} s ({groups:,} groups)")
    server = statistics.median(server_only)
    print(f"GROUP BY inside PostgreSQL only (groups counted, not fetched): {server:.3f} s")
    print(f"scoring run, in-process (median, request to published): {run:.3f} s  "
          f"runs: {', '.join(f'{r:.2f}' for r in runs)}")
    print(f"then removing the previous results (median): {statistics.median(cleanups):.3f} s")
    print(f"scorecards:            {summary.scorecards:,} over {summary.months} months")
    print(f"ratio in-process run / GROUP BY: {run / base:.2f}  (target < 3); "
          f"/ GROUP BY inside PostgreSQL only: {run / server:.2f}")
    print(f"peak memory (RSS):     {peak_mib:.0f} MiB  (target < 1024)")
    if celery_runs:
        celery = statistics.median(celery_runs)
        print(f"Celery, {args.celery_workers} worker processes (median): {celery:.3f} s  "
              f"runs: {', '.join(f'{r:.2f}' for r in celery_runs)}")
        print(f"ratio Celery run / GROUP BY: {celery / base:.2f}  (target < 3); "
              f"/ GROUP BY inside PostgreSQL only: {celery / server:.2f}")
        print(f"peak memory of a worker process: {worker_peak_mib:.0f} MiB")


def celery_timings(args, env) -> tuple[list[float], float]:
    """Time whole runs queued to a real worker: from the request to the published run."""
    from config.celery import app
    from scoring.models import ScoringRun
    from scoring.tasks import scoring_enqueue

    app.conf.task_always_eager = False
    app.conf.broker_url = args.redis_url
    app.conf.result_backend = args.redis_url
    app.control.purge()
    worker_env = {**env, "REDIS_URL": args.redis_url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency",
         str(args.celery_workers), "--loglevel", "WARNING", "--without-mingle",
         "--without-gossip"],
        cwd=ROOT, env=worker_env, start_new_session=True,
    )
    timings = []
    try:
        time.sleep(3)
        for _ in range(args.repeat):
            wait_for_cleanup()
            started = time.perf_counter()
            run = scoring_enqueue(trigger=ScoringRun.Trigger.COMMAND)
            while True:
                run.refresh_from_db()
                if run.status in (ScoringRun.Status.SUCCEEDED, ScoringRun.Status.FAILED):
                    break
                time.sleep(0.05)
            if run.status != ScoringRun.Status.SUCCEEDED:
                raise SystemExit(f"Celery run failed: {run.error}")
            timings.append(time.perf_counter() - started)
        wait_for_cleanup()
        peak = worker_peak_rss_mib(worker.pid)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
    return timings, peak


def wait_for_cleanup() -> None:
    """Runs are measured on an idle system: the previous run's old results are gone."""
    from scoring.models import Scorecard

    # Frozen rows of closed months stay with the runs that wrote them.
    while Scorecard.objects.filter(frozen=False).values("run_id").distinct().count() > 1:
        time.sleep(0.1)


def worker_peak_rss_mib(pid: int) -> float:
    """The largest VmHWM (peak resident set) among the worker's processes."""
    peaks = []
    for status in Path("/proc").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(pid) or status.parent.name == str(pid):
            peaks.append(int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
    return max(peaks, default=0.0)


if __name__ == "__main__":
    main()
