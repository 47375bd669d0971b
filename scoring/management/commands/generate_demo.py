"""`generate_demo`: the demo program (partnerships.demo), scored, with its months closed.

A command of `scoring` rather than of `partnerships`, because after writing the program it scores
it and closes every month but the last two (scoring.demo), so that a newcomer sees closed and
approved, closed and awaiting approval, and open months (DOMAIN.md § Closing months).
"""

import argparse

from django.core.management.base import BaseCommand, CommandError

from partnerships.demo import (
    DEMO_PASSWORD,
    DEMO_SEED,
    DEMO_URL,
    MAX_OBSERVATIONS_PER_MONTH,
    DemoDataExists,
    demo_data_exists,
    demo_generate,
)
from partnerships.demo_disputes import demo_disputes_create
from scoring.closing import ClosingRefused
from scoring.demo import demo_closing_reset, demo_months_close, demo_months_summary
from scoring.services import scoring_run_inline


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


class Command(BaseCommand):
    help = (
        "Generate a realistic synthetic program (partners, KPIs, agreements, observations) and "
        "demo users, score it, close every month but the last two and approve all the closed "
        "months' statements but the last. The same --seed gives the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--partners", type=_at_least_one, default=12,
                            help="Partners (default 12).")
        parser.add_argument("--agreements", type=_at_least_one, default=30,
                            help="Agreements, spread over the partners (default 30).")
        parser.add_argument(
            "--months", type=_at_least_one, default=24,
            help="Months of observations, ending with the last complete month (default 24).",
        )
        parser.add_argument("--kpis-per-agreement", type=_at_least_one, default=6,
                            help="KPIs measured per agreement (default 6).")
        parser.add_argument(
            "--observations-per-month", type=_at_least_one, default=4,
            help=f"Observations per KPI and month, 1 to {MAX_OBSERVATIONS_PER_MONTH} (default 4).",
        )
        parser.add_argument("--seed", type=int, default=DEMO_SEED,
                            help=f"Random seed (default {DEMO_SEED}).")
        parser.add_argument(
            "--reset", action="store_true",
            help="Delete all partners, KPIs, agreements, imports and observations first.",
        )
        parser.add_argument(
            "--if-empty", action="store_true",
            help="Do nothing (and succeed) when the database already holds partnership data.",
        )
        parser.add_argument(
            "--no-next-steps", action="store_true",
            help="Leave out the closing hint on scoring, serving and logging in (for `make "
                 "demo`, which does all three itself).",
        )
        parser.add_argument(
            "--no-close", action="store_true",
            help="Only write the program and its metrics: no scoring run, no month closed "
                 "(the benchmarks measure those themselves).",
        )
        parser.add_argument("--password", default=DEMO_PASSWORD,
                            help=f"Password of the demo users (default {DEMO_PASSWORD!r}).")

    def handle(self, *args, **options):
        if options["if_empty"] and not options["reset"] and demo_data_exists():
            self.stdout.write("Partnership data already present; kept (--reset replaces it).")
            return
        reported = False

        def progress(done: int, total: int) -> None:
            nonlocal reported
            # Only demos written in several chunks report progress.
            if done < total or reported:
                reported = True
                self.stdout.write(f"  {done:,}/{total:,} agreements")

        if options["reset"]:
            # Closed months, statements and approvals go first: statement lines keep the
            # agreements they pay from being deleted.
            demo_closing_reset()
        try:
            summary = demo_generate(
                partners=options["partners"],
                agreements=options["agreements"],
                months=options["months"],
                kpis_per_agreement=options["kpis_per_agreement"],
                observations_per_month=options["observations_per_month"],
                seed=options["seed"],
                password=options["password"],
                reset=options["reset"],
                progress=progress,
            )
        except DemoDataExists:
            raise CommandError(
                "The database already holds partnership data. Run again with --reset to "
                "delete it (partners, KPIs, agreements, imports, observations) and generate "
                "the demo."
            ) from None
        except ValueError as invalid:
            raise CommandError(str(invalid)) from None
        password = options["password"]
        self.stdout.write(
            f"Generated {summary.partners:,} partners, {summary.agreements:,} agreements, "
            f"{summary.kpi_definitions} KPIs ({summary.agreement_kpis:,} agreement KPIs), "
            f"{summary.observations:,} observations in {summary.batches:,} import batches, "
            f"{summary.months} months ({summary.first_month:%Y-%m} to "
            f"{summary.last_month:%Y-%m}), in {summary.seconds:.1f} s."
        )
        if not options["no_close"]:
            self._score_and_close()
        if not options["no_next_steps"]:
            self.stdout.write(self.style.SUCCESS(
                f"\nNext: `python manage.py runserver` serves it at {DEMO_URL}, and "
                "`python manage.py demo_logins` lists the users to log in as (password "
                f"{password!r})."
            ))

    def _score_and_close(self) -> None:
        # Before the run, so that the resolved dispute's value is scored.
        self.stdout.write(demo_disputes_create())
        summary = scoring_run_inline(trigger="command")
        self.stdout.write(f"Scored {summary.scorecards:,} scorecards in "
                          f"{summary.seconds:.1f} s.")
        try:
            closing = demo_months_close()
        except ClosingRefused as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(demo_months_summary(closing))
