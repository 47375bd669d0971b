from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("scoring/runs/", views.scoring_runs, name="scoring_runs"),
    path("scoring/runs/start/", views.scoring_run_start, name="scoring_run_start"),
    path("scoring/runs/<int:run_id>/panel/", views.scoring_run_panel, name="scoring_run_panel"),
]
