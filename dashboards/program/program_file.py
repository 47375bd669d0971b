"""The whole program as a program file, downloaded by host managers (docs/program-file.md):
the same text as `manage.py export_program`, which `import_program` reads back."""

import hashlib

from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from partnerships.access import manager_required
from partnerships.program_export import program_export, program_export_filename

from ..exports_views import export_audit
from ..http import HtmxHttpRequest


@require_GET
@manager_required
def program_file_download(request: HtmxHttpRequest) -> HttpResponse:
    """The program file of the whole program as an attachment named with today's date."""
    text = program_export()
    filename = program_export_filename(today=timezone.localdate())
    content = text.encode("utf-8")
    export_audit(request, target="program file",
                 detail={"file": filename, "sha256": hashlib.sha256(content).hexdigest(),
                         "bytes": len(content)})
    response = HttpResponse(content, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
