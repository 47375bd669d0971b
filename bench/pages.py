"""Page benchmark: the portfolio and an agreement dashboard against a trivial logged-in view.

    python bench/pages.py [--agreements 1000] [--kpis 12] [--months 36] [--per-month 2]
                          [--repeat 15] [--keep] [--analyze] [--database pp_bench_pages]
                          [--redis-url redis://127.0.0.1:6379/13]

Creates its own PostgreSQL database (127.0.0.1, user postgres), fills it with generate_demo and
scores it once, then renders pages in-process with Django's test client (force_login, the whole
middleware stack and template rendering, no network) and prints the median time of each page,
its ratio to the trivial view (target: at most 4 ×) and its number of SQL queries.

The trivial view is defined here, not in the project: `login_required`, one `render` of a
template that extends base.html (so it pays for the session, the user, the membership, the
navigation, the CSP nonce and the freshness footer like every page does) and shows nothing else.

The pages keep what they compute from a published run (which never changes) in the cache, as
in production: Redis at --redis-url (its database is emptied first; '' for the in-process
cache). The pages are measured as a user finds them after their first visit since the nightly
run, and once more "first view": with the cache emptied before each request (not timed).
"""

import argparse
import os
import platform
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


def database_exists(name: str) -> bool:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip() == "1"


def prepare(args, env: dict) -> None:
    """A fresh database with generated data and one published scoring run."""
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
    subprocess.run([*manage, "score"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"generated and scored the data in {time.perf_counter() - started:.1f} s")


TRIVIAL_TEMPLATE = (
    '{% extends "base.html" %}{% block content %}<h1>Hello</h1>{% endblock %}'
)


def trivial(request):
    """The yardstick: logged in, one template that extends base.html, nothing else."""
    from django.http import HttpResponse
    from django.template import engines

    return HttpResponse(engines["django"].from_string(TRIVIAL_TEMPLATE).render({}, request))


def _urlpatterns():
    from django.contrib.auth.decorators import login_required
    from django.urls import include, path

    return [path("bench/trivial/", login_required(trivial)), path("", include("config.urls"))]


FIRST_VIEWS = ("cold", "warmed")


def prepare_cache(kwargs: dict) -> None:
    from django.core.cache import cache

    from dashboards.tasks import pages_warm

    if kwargs.get("cold") or kwargs.get("warmed"):
        cache.clear()
    if kwargs.get("warmed"):
        pages_warm()  # as beat runs it after each run


def timed(client, pages: list, *, repeat: int) -> list[tuple[float, float, int, int]]:
    """Per page: median wall seconds and median CPU seconds of this process over `repeat`
    rounds, its query count and response size. The pages take turns within each round, so a
    busy machine slows all of them alike rather than whichever happened to run then."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def request(url: str, kwargs: dict):
        """The page; a "first view" (cold) after emptying the cache, or after emptying it and
        the warm-up task that follows each run ("warmed"), neither of which is timed."""
        prepare_cache(kwargs)
        options = {key: value for key, value in kwargs.items() if key not in FIRST_VIEWS}
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.get(url, **options)
        return response, time.perf_counter() - wall, time.process_time() - cpu

    for _label, url, kwargs in pages:
        for _ in range(2):  # warm-up: template loading, first connections, the cache
            response, *_ = request(url, kwargs)
            assert response.status_code == 200, (url, response.status_code)
    walls: list[list[float]] = [[] for _ in pages]
    cpus: list[list[float]] = [[] for _ in pages]
    for _ in range(repeat):
        for index, (_label, url, kwargs) in enumerate(pages):
            _response, wall, cpu = request(url, kwargs)
            cpus[index].append(cpu)
            walls[index].append(wall)
    results = []
    for index, (_label, url, kwargs) in enumerate(pages):
        prepare_cache(kwargs)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, **{k: v for k, v in kwargs.items()
                                          if k not in FIRST_VIEWS})
        results.append((statistics.median(walls[index]), statistics.median(cpus[index]),
                        len(queries), len(response.content)))
    return results


def cache_memory(url: str) -> str:
    """How much the cache's Redis database holds (keys and the server's memory)."""
    import redis

    client = redis.Redis.from_url(url)
    return (f"{client.dbsize():,} keys, Redis using "
            f"{client.info('memory')['used_memory'] / 2**20:.0f} MiB")


def measure(args, env: dict) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from partnerships.models import Agreement
    from scoring.models import Scorecard, ScoringRun

    global urlpatterns
    urlpatterns = _urlpatterns()
    settings.ROOT_URLCONF = __name__
    # Hashed static names need `collectstatic`, a deploy step; either way a URL is one lookup.
    settings.STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM partnerships_metricobservation")
        observations = cursor.fetchone()[0]
    run = ScoringRun.objects.current()
    # A typical agreement: active, with an incentive plan, scored in the run's last month.
    code = (Scorecard.objects.of_run(run).filter(period=run.last_period, has_scorecard=True,
                                                 agreement__stage="active",
                                                 agreement__incentive_plan__isnull=False)
            .order_by("agreement__code").values_list("agreement__code", flat=True).first())
    agreement_kpis = Agreement.objects.get(code=code).agreement_kpis.count()
    # A KPI both sides report when there is one: its history has both sides' values.
    history_kpi = (Agreement.objects.get(code=code).agreement_kpis
                   .order_by("-kpi__source", "kpi__code").values_list("kpi__code", flat=True)
                   .first())
    manager = get_user_model().objects.get(username="manager")
    client = Client()
    client.force_login(manager)

    earlier = run.periods[-7]
    pages = [
        ("trivial logged-in view (bench/trivial/)", "/bench/trivial/", {}),
        ("portfolio, default (last month, page 1 of 50 rows)", "/portfolio/", {}),
        ("portfolio, filtered and sorted (active, -overall)", "/portfolio/",
         {"query_params": {"stage": "active", "sort": "-overall"}}),
        ("needs attention, everyone's (every agreement's reasons)", "/attention/",
         {"query_params": {"scope": "all"}}),
        (f"agreement dashboard {code}", f"/agreements/{code}/", {}),
        (f"agreement dashboard, htmx month change to {earlier}", f"/agreements/{code}/",
         {"query_params": {"month": earlier}, "headers": {"HX-Request": "true"}}),
        ("agreement print view", f"/agreements/{code}/print/", {}),
        (f"KPI history panel of {history_kpi} (htmx, 13 months)",
         f"/agreements/{code}/kpis/{history_kpi}/history/",
         {"query_params": {"month": run.last_period}, "headers": {"HX-Request": "true"}}),
        ("reconciliation, default (host: the program's month)", "/reconciliation/", {}),
        ("reconciliation, filtered and sorted (differs, -percent)", "/reconciliation/",
         {"query_params": {"kind": "differs", "sort": "-percent"}}),
        ("portfolio, first view (cache emptied)", "/portfolio/", {"cold": True}),
        ("portfolio, first view after the run's warm-up task", "/portfolio/",
         {"warmed": True}),
        ("agreement dashboard, first view (cache emptied)", f"/agreements/{code}/",
         {"cold": True}),
        ("agreement dashboard, first view after the warm-up task", f"/agreements/{code}/",
         {"warmed": True}),
        ("reconciliation, first view (cache emptied)", "/reconciliation/", {"cold": True}),
    ]
    # The first views empty the cache: measured after the others, not in turn with them.
    warm = [page for page in pages if not set(page[2]) & set(FIRST_VIEWS)]
    cold = [page for page in pages if set(page[2]) & set(FIRST_VIEWS)]
    pages = warm + cold
    results = timed(client, warm, repeat=args.repeat) + timed(client, cold, repeat=args.repeat)
    base_wall, base_cpu = results[0][0], results[0][1]
    scorecards = Scorecard.objects.of_run(run).count()
    print(f"data: {Agreement.objects.count():,} agreements, {observations:,} observations, "
          f"{scorecards:,} scorecard rows over {len(run.periods)} months"
          f"; the agreement has {agreement_kpis} KPIs")
    print(f"machine: {platform.platform()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    print(f"median of {args.repeat} rounds (pages in turn), in-process test client, DEBUG off;"
          " CPU = this process only (PostgreSQL works in its own)")
    print(f"{'page':<56} {'wall ms':>8} {'ratio':>6} {'CPU ms':>7} {'ratio':>6} "
          f"{'queries':>7} {'KiB':>4}")
    for (label, _url, _kwargs), (wall, cpu, queries, size) in zip(pages, results,
                                                                  strict=True):
        print(f"{label:<56} {wall * 1000:8.1f} {wall / base_wall:6.2f} {cpu * 1000:7.1f} "
              f"{cpu / base_cpu:6.2f} {queries:7d} {size / 1024:4.0f}")
    worst = max(wall for wall, *_ in results[1:len(warm)]) / base_wall
    firsts = ", ".join(f"{wall / base_wall:.2f}" for wall, *_ in results[len(warm):])
    print(f"worst wall-time ratio to the trivial view: {worst:.2f} (target ≤ 4; "
          f"first views {firsts})")
    from django.core.cache import cache

    from dashboards.warm import run_pages_warm

    cache.clear()
    started = time.perf_counter()
    kept = run_pages_warm(run=run)
    print(f"cache: {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}; the warm-up task "
          f"after a run kept {kept:,} agreements' pages in {time.perf_counter() - started:.2f} s"
          + (f", {cache_memory(args.redis_url)}" if args.redis_url else ""))


urlpatterns: list = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=1000)
    parser.add_argument("--kpis", type=int, default=12)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--per-month", type=int, default=2)
    parser.add_argument("--database", default="pp_bench_pages")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13",
                        help="The cache, as in production (emptied first); '' for the "
                             "in-process cache of the embedded set-up.")
    parser.add_argument("--keep", action="store_true",
                        help="Reuse the database if it exists (skip generating data).")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the database before measuring, as autovacuum would "
                             "(without statistics the planner guesses row counts).")
    args = parser.parse_args()

    url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    # Production settings (DEBUG off: cached templates), less what a test client cannot do:
    # HTTPS redirects and the host's second factor (tested elsewhere, not a rendering cost).
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "SECRET_KEY": "bench",
           "ALLOWED_HOSTS": "localhost,testserver", "SECURE_SSL_REDIRECT": "false",
           "TWO_FACTOR_REQUIRED_FOR_HOST": "false"}
    env.pop("REDIS_URL", None)
    env.pop("REDIS_CACHE_URL", None)
    if not (args.keep and database_exists(args.database)):
        prepare(args, env)  # scoring runs in-process, without Redis
    if args.redis_url:
        env["REDIS_URL"] = env["REDIS_CACHE_URL"] = args.redis_url
    if args.analyze:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", args.database,
                        "-qc", "ANALYZE"], check=True)
    measure(args, env)


if __name__ == "__main__":
    main()
