"""The mirror pauses Python's cyclic garbage collector while it builds listings and plans,
and always gives the collector back in the state it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pos3lite.mirror.context import _gc_paused


@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_pause_nests_and_restores_the_collector(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with _gc_paused():
        assert not gc.isenabled()
        with _gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("collector")
def test_the_pause_ends_when_the_planner_raises() -> None:
    gc.enable()

    @_gc_paused()
    def planner() -> None:
        assert not gc.isenabled()
        raise RuntimeError("listing failed")

    with pytest.raises(RuntimeError):
        planner()
    assert gc.isenabled()
