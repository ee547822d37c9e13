from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core import api, views

handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("finance/", include("finance.urls")),
    path("education/", include("education.urls")),
    path("stories/", include("entertainment.urls")),
    path("models/", include("mlcore.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file, so the page keeps to the Content-Security-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/auth/token/", api.TokenView.as_view(), name="api-token"),
    path("api/v1/me/", api.me, name="api-me"),
    path("api/v1/models/", include("mlcore.api_urls")),
    path("api/v1/finance/", include("finance.api_urls")),
    path("api/v1/stories/", include("entertainment.api_urls")),
]
