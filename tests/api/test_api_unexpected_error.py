"""A bug while handling a request is a 500 problem and one log line, never a traceback per request.

Starlette's handler for ``Exception`` re-raises after answering so that the server logs the
traceback; a RecursionError made that ~265 KB per request. problems.install answers instead.
"""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from medledger.api import problems


def _recurse(n: int) -> int:
    return _recurse(n + 1) + 1


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/v1/boom/{item}")
    def boom(item: str) -> int:
        return _recurse(0)

    @app.get("/fhir/Boom/{item}")
    def fhir_boom(item: str) -> int:
        raise KeyError(item)

    return app


@pytest.mark.parametrize(
    ("path", "media", "exc_name"),
    [("/v1/boom/110101199003077777", "application/problem+json", "RecursionError"),
     ("/fhir/Boom/110101199003077777", "application/fhir+json", "KeyError")],
)
def test_an_unexpected_exception_is_a_500_and_one_log_line(
    caplog: pytest.LogCaptureFixture, path: str, media: str, exc_name: str
) -> None:
    with TestClient(_app()) as client, caplog.at_level(logging.DEBUG, logger="medledger"):
        caplog.clear()
        r = client.get(path)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(media)
    assert "internal-error" in r.text
    lines = [rec.getMessage() for rec in caplog.records if rec.name.startswith("medledger")]
    assert len(caplog.text.splitlines()) <= 2, caplog.text[:2000]
    assert len(lines) == 1 and exc_name in lines[0] and "{item}" in lines[0], lines
    assert "110101199003077777" not in caplog.text  # the route template is logged, not the path
