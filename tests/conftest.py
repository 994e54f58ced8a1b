"""Shared fixtures. Tests that read the real WBC data skip when it is absent, unless
WBCBENCH_REQUIRE_DATA=1 (set by .ci/run, which has the data) turns that skip into a failure."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from wbcbench.core.errors import WbcError
from wbcbench.core.paths import data_root as _data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    try:
        return _data_root()
    except WbcError as e:
        if os.environ.get("WBCBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"WBCBENCH_REQUIRE_DATA=1 but the data is missing: {e}")
        pytest.skip(f"WBC data not found: {e}")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests share one cache dir per session, never the user's ~/.cache."""
    if "WBCBENCH_CACHE" not in os.environ:
        os.environ["WBCBENCH_CACHE"] = str(tmp_path_factory.mktemp("wbc-cache"))
    yield


def pytest_collection_modifyitems(config, items):
    """A test that reads the real data (asks for `data_root`, directly or through another fixture) is marked
    needs_data, so `pytest -m "not slow and not needs_data"` is the contributors' fast lane."""
    for item in items:
        if "data_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_data)
