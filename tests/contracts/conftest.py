"""One shared province per test module, a day later for every test.

Each area's tests share a module-scoped :func:`contracts_world.standard`
province (building one costs a few dozen signed transactions) and give every
test a fresh day, so per-day counts reset and ids never collide.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contracts_world import DAY, World, standard


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[World]:
    w = standard(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def w(province: World) -> World:
    """The shared province a day later: each test starts on a fresh local day (per-day counts reset)."""
    province.advance(DAY)
    return province
