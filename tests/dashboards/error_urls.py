"""The site's URLs plus one that fails, to show the server-error page."""

from django.urls import path

from config.urls import urlpatterns as site


def fail(request):
    raise RuntimeError("a failure for the test")


urlpatterns = [*site, path("test-failure/", fail)]
