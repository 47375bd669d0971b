from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from partnerships.program_export import program_export


class Command(BaseCommand):
    help = (
        "Write the whole program (scoring settings, partners, KPI definitions and templates, "
        "agreements with their terms, KPIs, objectives and incentive plans) as a program file "
        "that import_program reads back (docs/program-file.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args, output: str | None, **options):
        text = program_export()
        if output is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise CommandError(f"{output}: cannot be written ({error.strerror})") from None
        self.stderr.write(f"Wrote the program to {output}")
