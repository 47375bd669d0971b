from django.urls import path

from . import access_views, agreement_views, api, imports_views, openapi, portfolio_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("portfolio/", portfolio_views.portfolio, name="portfolio"),
    path("agreements/<str:code>/", agreement_views.agreement_dashboard,
         name="agreement_dashboard"),
    path("scoring/runs/", views.scoring_runs, name="scoring_runs"),
    path("scoring/runs/start/", views.scoring_run_start, name="scoring_run_start"),
    path("scoring/runs/<int:run_id>/panel/", views.scoring_run_panel, name="scoring_run_panel"),
    # Access management and the audit log (host admins); accepting an invitation (public).
    path("access/users/", access_views.users, name="access_users"),
    path("access/users/<int:user_id>/", access_views.user_detail, name="access_user"),
    path("access/users/<int:user_id>/role/", access_views.user_role, name="access_user_role"),
    path("access/users/<int:user_id>/deactivate/", access_views.user_deactivate_view,
         name="access_user_deactivate"),
    path("access/users/<int:user_id>/reactivate/", access_views.user_reactivate_view,
         name="access_user_reactivate"),
    path("access/invite/", access_views.invite, name="access_invite"),
    path("access/invitations/<int:invitation_id>/withdraw/",
         access_views.invitation_withdraw_view, name="access_invitation_withdraw"),
    path("access/audit/", access_views.audit_log, name="audit_log"),
    path("invitations/<str:token>/", access_views.invitation_accept_view,
         name="invitation_accept"),
    # Metric imports: upload → preview → confirm → progress → result; history; downloads.
    path("imports/", imports_views.import_history, name="import_history"),
    path("imports/upload/", imports_views.import_upload, name="import_upload"),
    path("imports/<int:batch_id>/", imports_views.import_batch, name="import_batch"),
    path("imports/<int:batch_id>/panel/", imports_views.import_panel, name="import_panel"),
    path("imports/<int:batch_id>/confirm/", imports_views.import_confirm,
         name="import_confirm"),
    path("imports/<int:batch_id>/cancel/", imports_views.import_cancel, name="import_cancel"),
    path("imports/<int:batch_id>/file/", imports_views.import_file, name="import_file"),
    path("imports/<int:batch_id>/errors.csv", imports_views.import_error_report,
         name="import_error_report"),
    # The metrics API (token auth, no cookies), its description, and users' own tokens.
    path("api/v1/observations", api.observations_api, name="api_observations"),
    path("api/openapi.json", openapi.openapi_json, name="api_openapi"),
    path("account/api-tokens/", api.api_tokens, name="api_tokens"),
    path("account/api-tokens/revoke/", api.api_token_revoke_view, name="api_token_revoke"),
]
