"""Scoring under faults: from a fault to a published (or failed) run, and the starts refused.

    python bench/scoring_faults.py [--agreements 400] [--chunk-size 20] [--slow-ms 1000]
                                   [--keep] [--database pp_bench_faults] [--port 6391]
                                   [--only NAME ...]

Creates its own PostgreSQL database (127.0.0.1, user postgres) filled by generate_demo, and runs
its own redis-server (no persistence) on --port, so that it can stop and restart the broker.
Each scenario starts a Celery worker (2 processes) and a beat process with the default
settings, queues a run of 400 agreements in 20 chunks slowed by --slow-ms per chunk (after the
chunk's commit, or inside its transaction when the fault must land mid-chunk), causes the
fault, then every second tries to start another run as a manager would, until the run ends.
Printed per scenario: seconds from the fault to the run's end (goal: under 60), its status,
the starts refused meanwhile, and whether the next run went through.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def psql(sql: str, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-tAqc", sql],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


class Redis:
    def __init__(self, port: int):
        self.port, self.process = port, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Celery:
    """A worker (2 pool processes) or beat, as in docker-compose.yml."""

    def __init__(self, command: str, env: dict, workdir: Path):
        self.log = workdir / f"{command}-{time.monotonic_ns()}.log"
        arguments = (["--concurrency", "2", "--without-mingle", "--without-gossip"]
                     if command == "worker" else ["--schedule", str(self.log) + ".schedule"])
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", command, "--loglevel", "INFO",
                 *arguments],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if command == "worker":
            deadline = time.monotonic() + 60
            while "ready." not in self.log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"worker not ready; see {self.log}")
                time.sleep(0.1)

    def children(self) -> list[int]:
        listing = subprocess.run(["ps", "--ppid", str(self.process.pid), "-o", "pid="],
                                 capture_output=True, text=True).stdout
        return [int(pid) for pid in listing.split()]

    def kill_main(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def kill_all(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=400)
    parser.add_argument("--chunk-size", type=int, default=20)
    parser.add_argument("--slow-ms", type=int, default=1000)
    parser.add_argument("--database", default="pp_bench_faults")
    parser.add_argument("--port", type=int, default=6391)
    parser.add_argument("--keep", action="store_true",
                        help="Reuse the database if it exists (skip generating data).")
    parser.add_argument("--only", nargs="*", default=None, help="Scenario names to run.")
    args = parser.parse_args()

    url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    broker = f"redis://127.0.0.1:{args.port}/0"
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "SECRET_KEY": "bench",
           "ALLOWED_HOSTS": "localhost", "REDIS_URL": broker,
           "REDIS_CACHE_URL": f"redis://127.0.0.1:{args.port}/1",
           "SCORING_CHUNK_SIZE": str(args.chunk_size)}
    for name in [key for key in env if key.startswith(("SCORING_", "CELERY_"))]:
        if name != "SCORING_CHUNK_SIZE":
            env.pop(name)
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{args.database}'") == "1"
    if not (args.keep and exists):
        psql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        psql(f"CREATE DATABASE {args.database}")
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
        subprocess.run(
            [*manage, "generate_demo", "--no-close",
             "--partners", str(max(args.agreements // 10, 1)),
             "--agreements", str(args.agreements), "--months", "12",
             "--observations-per-month", "2"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )

    redis = Redis(args.port)
    redis.start()
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from config.celery import app
    from scoring import services
    from scoring.models import ScoringRun

    app.conf.task_always_eager = False
    for run_id in ScoringRun.objects.filter(active=True).values_list("pk", flat=True):
        services.scoring_run_fail(run_id=run_id, error="Left by an interrupted benchmark.")
    workdir = Path(tempfile.mkdtemp(prefix="scoring-faults-"))
    scenarios = {
        "pool child killed after its chunk committed": dict(
            slow="PAUSE", when=5, fault=lambda ctx: os.kill(ctx["worker"].children()[0],
                                                            signal.SIGKILL)),
        "pool children killed after the last chunk committed": dict(
            slow="PAUSE", when="all", fault=lambda ctx: [
                os.kill(pid, signal.SIGKILL) for pid in ctx["worker"].children()]),
        "worker main process killed, new worker": dict(
            slow="PAUSE", when=5, fault=lambda ctx: replace_worker(ctx, main_only=True)),
        "worker and its pool killed mid-chunk, new worker": dict(
            slow="WORK", when=5, fault=lambda ctx: replace_worker(ctx, main_only=False)),
        "database connections terminated mid-chunk": dict(
            slow="WORK", when=5, fault=lambda ctx: terminate_other_backends()),
        "Redis restarted (queue lost) mid-run": dict(
            slow="PAUSE", when=5, fault=lambda ctx: (redis.stop(), redis.start())),
    }
    results = []
    try:
        for name, scenario in scenarios.items():
            if args.only and not any(word in name for word in args.only):
                continue
            results.append(run_scenario(name, scenario, args, env, workdir, redis))
        if not args.only or any("broker" in word for word in args.only):
            results += broker_down_at_start(redis, args)
    finally:
        redis.stop()
    print(f"\n{args.agreements} agreements in chunks of {args.chunk_size}, "
          f"{args.slow_ms} ms per chunk; default supervisor settings; logs in {workdir}")
    print(f"{'fault':58} {'to end':>8} {'status':>10} {'refused':>8} {'next run':>10}")
    for row in results:
        print(f"{row['name']:58} {row['seconds']:>7.1f}s {row['status']:>10} "
              f"{row['refused']:>8} {row['next']:>10}")
    assert ScoringRun.objects.filter(active=True).count() == 0


def terminate_other_backends() -> None:
    """pg_terminate_backend of every connection to the database but this script's own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def replace_worker(ctx: dict, *, main_only: bool) -> None:
    worker = ctx["worker"]
    if main_only:
        worker.kill_main()
    else:
        worker.kill_all()
    ctx["worker"] = Celery("worker", ctx["env"], ctx["workdir"])
    ctx["old_workers"].append(worker)


def run_scenario(name: str, scenario: dict, args, env: dict, workdir: Path, redis: Redis) -> dict:
    from django.db.models import F

    from config.celery import app
    from scoring import services, tasks
    from scoring.models import ScoringRun

    app.control.purge()
    run_env = {**env, f"SCORING_CHUNK_{scenario['slow']}_MS": str(args.slow_ms)}
    ctx = {"env": run_env, "workdir": workdir, "old_workers": []}
    ctx["worker"] = Celery("worker", run_env, workdir)
    beat = Celery("beat", run_env, workdir)
    try:
        run = tasks.scoring_enqueue(trigger=ScoringRun.Trigger.COMMAND)
        runs = ScoringRun.objects.filter(pk=run.id)
        deadline = time.monotonic() + 120
        while not (runs.filter(chunks_total__gt=0, chunks_done=F("chunks_total")).exists()
                   if scenario["when"] == "all"
                   else runs.filter(chunks_done__gte=scenario["when"]).exists()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: the run did not get going")
            time.sleep(0.1)
        fault_at = time.monotonic()
        scenario["fault"](ctx)
        refused, next_run = 0, None
        while True:
            run.refresh_from_db()
            if run.status in ("succeeded", "failed"):
                seconds = time.monotonic() - fault_at
                break
            if time.monotonic() - fault_at > 900:
                seconds = float("nan")
                break
            try:
                next_run = tasks.scoring_enqueue(trigger=ScoringRun.Trigger.USER)
            except services.ScoringAlreadyRunning:
                refused += 1
            except tasks.TaskQueueUnavailable:
                refused += 1
            time.sleep(1)
        if next_run is None:
            next_run = tasks.scoring_enqueue(trigger=ScoringRun.Trigger.USER)
        deadline = time.monotonic() + 120
        while next_run.status not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            next_run.refresh_from_db()
        row = {"name": name, "seconds": seconds, "status": run.status, "refused": refused,
               "next": next_run.status}
        if run.status == "failed":
            row["name"] += f" ({run.error[:60]})"
        print(row, flush=True)
        return row
    finally:
        for process in [ctx["worker"], beat, *ctx["old_workers"]]:
            process.kill_all()


def broker_down_at_start(redis: Redis, args) -> list[dict]:
    """Starting a run with the broker stopped (connection refused) and unreachable (a port
    that never answers): time to the answer, and runs left behind."""
    from config.celery import app
    from scoring import tasks
    from scoring.models import ScoringRun

    rows = []
    redis.stop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    # The accept queue filled: further connection attempts get no answer at all.
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    try:
        for label, url in [("stopped", f"redis://127.0.0.1:{args.port}/0"),
                           ("unreachable", f"redis://127.0.0.1:{listener.getsockname()[1]}/0")]:
            app._pool = None
            app.amqp._producer_pool = None
            app.conf.broker_url = url
            before = ScoringRun.objects.count()
            started = time.monotonic()
            try:
                tasks.scoring_enqueue(trigger=ScoringRun.Trigger.USER)
                status = "queued?"
            except tasks.TaskQueueUnavailable:
                status = "refused"
            seconds = time.monotonic() - started
            left = ScoringRun.objects.count() - before
            rows.append({"name": f"broker {label} at start (runs left behind: {left})",
                         "seconds": seconds, "status": status, "refused": 0, "next": "-"})
            print(rows[-1], flush=True)
    finally:
        listener.close()
        for filler in fillers:
            filler.close()
        redis.start()
    return rows


if __name__ == "__main__":
    main()
