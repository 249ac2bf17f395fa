"""Swagger UI at /docs is served from the package alone: no URL of another host, every asset
answered with its content type, and the vendored files are the swagger-ui-dist 5.x ones."""

from __future__ import annotations

import re
from importlib import resources

from tests.integration.api.helpers import Api

ASSETS = {
    "/static/swagger-ui/swagger-ui-bundle.js": "javascript",
    "/static/swagger-ui/swagger-ui.css": "text/css",
    "/static/swagger-ui/favicon-32x32.png": "image/png",
}


async def test_docs_page_references_only_local_assets(sqlite_api: Api) -> None:
    response = await sqlite_api.client.get("/docs", headers={"Authorization": ""})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?://", html), "the docs page must not load anything remote"
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert referenced == set(ASSETS)
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html  # no badge request to validator.swagger.io


async def test_every_asset_is_served_with_its_content_type(sqlite_api: Api) -> None:
    for path, content_type in ASSETS.items():
        response = await sqlite_api.client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200, path
        assert content_type in response.headers["content-type"], path
        assert len(response.content) > 500, path
    missing = await sqlite_api.client.get("/static/swagger-ui/index.html")
    assert missing.status_code == 404


async def test_openapi_json_is_served_without_a_token(sqlite_api: Api) -> None:
    response = await sqlite_api.client.get("/openapi.json", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


def test_vendored_swagger_ui_is_5x_with_its_license() -> None:
    folder = resources.files("hookline.api") / "static" / "swagger-ui"
    names = {entry.name for entry in folder.iterdir()}
    assert names == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon-32x32.png",
        "LICENSE",
        "NOTICE",
    }
    assert "Apache License" in (folder / "LICENSE").read_text()
    bundle = (folder / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert "SwaggerUIBundle" in bundle
    assert re.search(r'"5\.35\.0"|version:"5\.35\.0"|5\.35\.0', bundle)
