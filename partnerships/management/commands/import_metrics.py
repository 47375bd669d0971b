from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from partnerships.audit import audit_record
from partnerships.models import AuditAction, ImportSource, Side
from partnerships.services import import_batch_create, observations_import


class Command(BaseCommand):
    help = (
        "Import metric observations from a CSV or XLSX metric file (DOMAIN.md § Files). All or "
        "nothing: any bad row imports nothing and every problem is listed. Without --user the "
        "host imports (both sides allowed); with --user that user's side and rights apply."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The metric file: .csv (UTF-8) or .xlsx.")
        parser.add_argument(
            "--side", choices=Side.values,
            help="Side of rows without a side column value (default: the importer's side).",
        )
        parser.add_argument("--user", help="Import as this user (their side and rights apply).")

    def handle(self, *args, file: str, side: str | None, user: str | None, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        uploader = None
        if user is not None:
            uploader = get_user_model().objects.filter(username=user).first()
            if uploader is None:
                raise CommandError(f"no user named {user!r}")
        try:
            batch = import_batch_create(
                user=uploader, path=path, file_name=path.name, source=ImportSource.COMMAND,
                side=side,
            )
        except PermissionDenied as refused:
            raise CommandError(f"{file}: {refused}") from None
        except ValueError as error:
            raise CommandError(f"{file}: {error}") from None
        result = observations_import(batch_id=batch.pk)
        audit_record(
            action=AuditAction.IMPORT, user=uploader,
            username="" if uploader else "manage.py import_metrics", partner=batch.partner,
            target=f"import batch {batch.pk}",
            detail={"file": path.name, "status": result.status, "rows": result.rows_total,
                    "inserted": result.inserted, "updated": result.updated,
                    "errors": result.error_count},
        )
        for note in result.notes:
            self.stdout.write(f"{file}: {note}")
        if not result.ok:
            for error in result.errors:
                self.stderr.write(f"{file}: {_printable(str(error))}")
            hidden = result.error_count - len(result.errors)
            if hidden > 0:
                self.stderr.write(f"{file}: ... and {hidden:,} more errors")
            count = result.error_count
            raise CommandError(
                f"{file}: {count:,} error{'s' if count != 1 else ''}; nothing was imported "
                f"(import batch {batch.pk})"
            )
        self.stdout.write(
            f"Imported {file} (batch {batch.pk}): {result.rows_total:,} rows, "
            f"{result.inserted:,} inserted, {result.updated:,} updated, "
            f"{result.unchanged:,} unchanged"
        )


def _printable(text: str) -> str:
    # Values are already shown with control characters escaped; this guards the messages too.
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
