"""Swagger UI at ``/docs``, served entirely from assets shipped inside the package.

The assets are swagger-ui-dist 5.35.0 from npm (Swagger UI 4.x, as on PyPI, cannot render
OpenAPI 3.1): ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``favicon-32x32.png`` with their
``LICENSE`` and ``NOTICE``, under ``static/swagger-ui/``. The page loads nothing from another
host, and the online validator badge is switched off, so opening it sends no request off the
machine.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PATH: Final = "/static"
SWAGGER_DIR: Final = f"{STATIC_PATH}/swagger-ui"
SWAGGER_UI_VERSION: Final = "5.35.0"


def install_docs(app: FastAPI) -> None:
    """Mount the packaged static files and add ``GET /docs`` (not part of the schema)."""
    app.mount(STATIC_PATH, StaticFiles(packages=[("hookline.api", "static")]), name="static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{SWAGGER_DIR}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_DIR}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_DIR}/favicon-32x32.png",
            swagger_ui_parameters={
                "validatorUrl": None,
                "persistAuthorization": False,
                "displayRequestDuration": True,
            },
        )
