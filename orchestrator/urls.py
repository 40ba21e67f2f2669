"""URL map: the REST API under /api/, its schema and docs, the admin and the live pages under /ui/."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from apps.core.api import views as core_views

api_patterns = [
    path("", core_views.index, name="api-index"),
    path("health/", core_views.health, name="health"),
    path("version/", core_views.version, name="version"),
    # Imported on first use: the schema generator is a large module tree that other requests never need.
    path("schema/", core_views.lazy_view("apps.core.api.schema.SchemaView"), name="schema"),
    path("docs/", core_views.lazy_view("drf_spectacular.views.SpectacularSwaggerView", url_name="schema"), name="docs"),
    path("", include("apps.flows.api.urls")),
    path("", include("apps.runs.api.urls")),
    path("", include("apps.logs.api.urls")),
    path("", include("apps.concurrency.api")),
    path("", include("apps.deployments.api.urls")),
    path("", include("apps.work_pools.api.urls")),
    path("", include("apps.blocks.api.urls")),
    path("", include("apps.notifications.api.urls")),
    path("", include("apps.accounts.api.urls")),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("ui/", include("apps.ui.urls")),
    path("", RedirectView.as_view(url="/ui/", permanent=False)),
]

handler400 = "apps.core.api.exceptions.bad_request"
handler404 = "apps.core.api.exceptions.not_found"
handler500 = "apps.core.api.exceptions.server_error"
