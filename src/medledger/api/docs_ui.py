"""The interactive API documentation at ``/docs``, served entirely from this package.

FastAPI's default page loads Swagger UI from a public CDN, so on a hospital
intranet without internet access it is a blank page. The Swagger UI files are
vendored under ``static/swagger-ui/`` (npm ``swagger-ui-dist`` 5.35.0, Apache-2.0:
its LICENSE and NOTICE are beside them) and served by the node itself; the
page references nothing but same-origin URLs. ReDoc, which would need another
CDN script, is not offered.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Path
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

from medledger.errors import NotFoundError

DOCS_PATH = "/docs"
ASSETS_PATH = DOCS_PATH + "/assets"
#: what may be fetched under ASSETS_PATH, with its media type; nothing else in the package is reachable
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain; charset=utf-8",
    "NOTICE": "text/plain; charset=utf-8",
    "swagger-ui-bundle.js.LICENSE.txt": "text/plain; charset=utf-8",
}
#: the assets never change within one installed version; browsers may keep them a day
ASSET_CACHE = "public, max-age=86400"


@cache
def _asset(name: str) -> bytes:
    return resources.files("medledger.api").joinpath("static", "swagger-ui", name).read_bytes()


def install_docs(app: FastAPI) -> None:
    """Add ``GET /docs`` and its assets (the app must be created with ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=None,
            # Swagger UI's default validator badge is fetched from a public host
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    def docs_asset(name: Annotated[str, Path(max_length=64)]) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundError(f"there is no documentation asset {name[:64]!r}")
        return Response(_asset(name), media_type=media_type, headers={"Cache-Control": ASSET_CACHE})
