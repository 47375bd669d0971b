from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from partnerships import password_reset, two_factor

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password-reset/", password_reset.PasswordResetView.as_view(),
         name="password_reset"),
    path("account/password-reset/sent/", auth_views.PasswordResetDoneView.as_view(
        template_name="registration/password_reset_done.html"), name="password_reset_done"),
    path("account/password-reset/<uidb64>/<token>/",
         password_reset.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("account/password-reset/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name="registration/password_reset_complete.html"),
         name="password_reset_complete"),
    path("account/security/", two_factor.account_security, name="account_security"),
    path("account/two-factor/setup/", two_factor.two_factor_setup, name="two_factor_setup"),
    path("account/two-factor/verify/", two_factor.two_factor_verify, name="two_factor_verify"),
    path("account/two-factor/remove/", two_factor.two_factor_remove, name="two_factor_remove"),
    path("admin/", admin.site.urls),
    path("", include("dashboards.urls")),
]
