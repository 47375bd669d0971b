from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from partnerships import security

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/security/", security.account_security, name="account_security"),
    path("account/two-factor/setup/", security.two_factor_setup, name="two_factor_setup"),
    path("account/two-factor/verify/", security.two_factor_verify, name="two_factor_verify"),
    path("account/two-factor/remove/", security.two_factor_remove, name="two_factor_remove"),
    path("admin/", admin.site.urls),
    path("", include("dashboards.urls")),
]
