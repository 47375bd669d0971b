"""Signals of the scoring app, for the apps that read its results (scoring never imports them)."""

from django.dispatch import Signal

# Sent once a run's results are committed and published: `run` (a ScoringRun).
run_published = Signal()
