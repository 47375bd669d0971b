"""What the agreement dashboard's breakdown and path to the next tier cost: the page with and
without the section, taking turns request by request in one process.

    python bench/explain.py [--database pp_bench_pages] [--rounds 40]
                            [--redis-url redis://127.0.0.1:6379/13]

Reads the database `bench/pages.py` generates and scores (run it first, `--keep` reuses it).
The section is left out by making its selector answer None. Two measures, medians of the
rounds: the page as users find it (what it keeps read from the cache), and its first view after
the program changed (the change counter moved on before each request, so the section, and
whatever else is kept under the counter, is computed again for both versions alike). Prints
wall and CPU time of this process and the query count of each.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="pp_bench_pages")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    os.environ.update({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}",
        "DEBUG": "false", "SECRET_KEY": "bench", "ALLOWED_HOSTS": "localhost,testserver",
        "SECURE_SSL_REDIRECT": "false", "TWO_FACTOR_REQUIRED_FOR_HOST": "false",
        "REDIS_URL": args.redis_url, "REDIS_CACHE_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    })
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from dashboards import agreement_views
    from partnerships.changes import program_changed
    from scoring.models import Scorecard, ScoringRun

    settings.STORAGES["staticfiles"] = {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with_section = agreement_views.agreement_explanation

    def without_section(**_kwargs):
        return None

    run = ScoringRun.objects.current()
    # The agreement bench/pages.py measures.
    code = (Scorecard.objects.of_run(run).filter(period=run.last_period, has_scorecard=True,
                                                 agreement__stage="active",
                                                 agreement__incentive_plan__isnull=False)
            .order_by("agreement__code").values_list("agreement__code", flat=True).first())
    client = Client()
    client.force_login(get_user_model().objects.get(username="manager"))
    url = f"/agreements/{code}/"
    cache.clear()
    print(f"agreement dashboard {code}, {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    for label, changed in (("as users find it", False), ("first view after a change", True)):
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(3):
            client.get(url)
        for _ in range(args.rounds):
            for shown in (True, False):
                agreement_views.agreement_explanation = (
                    with_section if shown else without_section)
                if changed:
                    program_changed()
                wall, cpu = time.perf_counter(), time.process_time()
                response = client.get(url)
                times[shown].append((time.perf_counter() - wall, time.process_time() - cpu))
                assert response.status_code == 200
        for shown in (False, True):
            agreement_views.agreement_explanation = with_section if shown else without_section
            if changed:
                program_changed()
            with CaptureQueriesContext(connection) as queries:
                client.get(url)
            wall = statistics.median(wall for wall, _ in times[shown]) * 1000
            cpu = statistics.median(cpu for _, cpu in times[shown]) * 1000
            print(f"{label:<28} {'with' if shown else 'without':<8} wall {wall:6.1f} ms  "
                  f"CPU {cpu:6.1f} ms  queries {len(queries)}")


if __name__ == "__main__":
    main()
