from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "dashboards"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from scoring.signals import run_published

        from .tasks import on_run_published

        # Keep what the pages show of a run as soon as it is published (dashboards/warm.py).
        run_published.connect(on_run_published, dispatch_uid="dashboards.pages_warm")
