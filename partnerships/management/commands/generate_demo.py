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


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


class Command(BaseCommand):
    help = (
        "Generate a realistic synthetic program (partners, KPIs, agreements, observations) and "
        "demo users. The same --seed gives the same data."
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
        if not options["no_next_steps"]:
            self.stdout.write(self.style.SUCCESS(
                "\nNext: `python manage.py score` scores it, `python manage.py close_demo_months` "
                "closes all its months but the last two, `python manage.py runserver` serves "
                f"it at {DEMO_URL}, and `python manage.py demo_logins` lists the users to log "
                f"in as (password {password!r})."
            ))
