"""``/docs`` works on an intranet without internet: the page and everything it loads come from the node."""

from __future__ import annotations

import re

from api_support import ApiLedger

#: every URL the page names: attributes, and Swagger UI's `url:` option (the OpenAPI document)
_URLS = re.compile(r"""(?:src|href)=["']([^"']+)["']|\burl:\s*["']([^"']+)["']""")


def test_the_docs_page_references_only_its_own_origin(api: ApiLedger) -> None:
    page = api.http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = [a or b for a, b in _URLS.findall(page.text)]
    assert "/openapi.json" in urls and len(urls) >= 4, urls
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "://" not in page.text, "the page names another origin"


def test_each_asset_the_page_loads_is_served_with_its_type(api: ApiLedger) -> None:
    page = api.http.get("/docs").text
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for url in (a or b for a, b in _URLS.findall(page)):
        r = api.http.get(url)
        assert r.status_code == 200, url
        suffix = url[url.rindex("."):]
        assert r.headers["content-type"].split(";")[0] == expected[suffix], (url, r.headers["content-type"])
        assert len(r.content) > 100, url
    bundle = api.http.get("/docs/assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle


def test_the_vendored_licence_is_served_and_nothing_else_is(api: ApiLedger) -> None:
    licence = api.http.get("/docs/assets/LICENSE")
    assert licence.status_code == 200 and "Apache License" in licence.text
    for name in ("..%2F..%2Fapp.py", "swagger-ui.css.map", "index.html"):
        assert api.http.get(f"/docs/assets/{name}").status_code == 404, name
    assert api.http.get("/redoc").status_code == 404, "ReDoc would load its script from a CDN"
