"""What a request costs the station's client: no search for a module on any of them.

httpcore asks sniffio which event loop is running, on every request; where sniffio is not
installed, Python searches sys.path for it each time (a failed import is not remembered): a fifth
to a third of a request's CPU on the client (encode/httpcore#1103). The station installs sniffio
(pyproject.toml), and this says if that is ever lost.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest

from kiosk.client import ExecutionClient


class _Searches(MetaPathFinder):
    """Notes each module that is looked for; finds none (the other finders then look)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.names.append(fullname)
        return None


@contextmanager
def module_searches() -> Iterator[list[str]]:
    searches = _Searches()
    sys.meta_path.insert(0, searches)
    try:
        yield searches.names
    finally:
        sys.meta_path.remove(searches)


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)  # the client's cost, not the store's
async def test_the_stations_requests_search_for_no_module(client: ExecutionClient) -> None:
    assert await client.healthy()  # what a first request loads, loaded
    await client.station()
    with module_searches() as searched:
        for _ in range(5):
            assert await client.healthy()
            await client.station()
    assert searched == []
