"""Every response, whatever produced it, tells browsers not to sniff its type and caches not to keep it.

(A 500 from an unexpected failure carries them too: ``test_api_params.test_an_unexpected_failure_is_a_500_problem``.)
"""

from __future__ import annotations

import pytest
from api_support import ApiLedger, assert_guarded


@pytest.mark.parametrize(
    ("what", "method", "url", "headers", "status"),
    [
        ("member data", "GET", "/v1/alerts", None, 200),
        ("a proof source", "GET", "/v1/tree-head", None, 200),
        ("metrics", "GET", "/metrics", None, 200),
        ("FHIR", "GET", "/fhir/metadata", None, 200),
        ("a problem", "GET", "/v1/blocks/abc", None, 400),
        ("an unknown route", "GET", "/nope", None, 404),
        ("a refused credential", "GET", "/v1/alerts", {"authorization": "Bearer nope"}, 401),
        ("a FHIR outcome", "GET", "/fhir/Patient/x", {"authorization": "Bearer nope"}, 401),
        ("a refused submission", "POST", "/v1/transactions", {"content-type": "text/plain"}, 415),
        ("the docs page", "GET", "/docs", None, 200),
    ],
)
def test_every_response_carries_nosniff_and_no_store(
    api: ApiLedger, what: str, method: str, url: str, headers: dict[str, str] | None, status: int
) -> None:
    r = api.http.request(method, url, headers=headers)
    assert r.status_code == status, (what, r.text)
    assert_guarded(r, what)


def test_static_docs_assets_may_be_cached_but_not_sniffed(api: ApiLedger) -> None:
    """They hold no member data, and re-sending 1.7 MB of Swagger UI on every page view helps nobody."""
    r = api.http.get("/docs/assets/swagger-ui-bundle.js")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"].startswith("public")
