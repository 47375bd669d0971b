import hashlib
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from partnerships.program import ProgramError, program_load, program_parse


class Command(BaseCommand):
    help = (
        "Load partners, KPI definitions and agreements from a YAML or JSON program file "
        "(docs/program-file.md). All or nothing: any problem loads nothing. Every change is "
        "recorded in the program's history under --user (or the system), and the load in the "
        "audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The program file: .yaml/.yml, or .json.")
        parser.add_argument("--user", help="Load as this host user (named in the history).")

    def handle(self, *args, file: str, user: str | None, **options):
        path = Path(file)
        loader = None
        if user is not None:
            loader = get_user_model().objects.filter(username=user).first()
            if loader is None:
                raise CommandError(f"no user named {user!r}")
        try:
            content = path.read_bytes()
            # utf-8-sig: a byte-order mark written by some Windows editors is not content.
            text = content.decode("utf-8-sig")
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file") from None
        except IsADirectoryError:
            raise CommandError(f"{file}: is a directory, not a program file") from None
        except UnicodeDecodeError as error:
            raise CommandError(
                f"{file}: not UTF-8 text (undecodable byte at offset {error.start}); "
                "save the file as UTF-8"
            ) from None
        except OSError as error:
            raise CommandError(f"{file}: cannot be read ({error.strerror})") from None
        try:
            document = program_parse(text=text, json_format=path.suffix.lower() == ".json")
            result = program_load(document=document, user=loader, file_name=path.name,
                                  sha256=hashlib.sha256(content).hexdigest())
        except ProgramError as error:
            for problem in error.problems:
                self.stderr.write(f"{file}: {problem}")
            count = len(error.problems)
            raise CommandError(
                f"{file}: {count} problem{'s' if count != 1 else ''}; nothing was loaded"
            ) from None
        self.stdout.write(f"Loaded {file}" if result.changed else f"Loaded {file}: no changes")
        for line in result.summary_lines():
            self.stdout.write(f"  {line}")
