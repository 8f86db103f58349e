"""Fixtures of the fleet tests; the builders live in fleet_fixtures."""

from __future__ import annotations

import pytest
from fleet_fixtures import Estate, make_estate


@pytest.fixture(scope="module")
def estate(synth_dump, tmp_path_factory) -> Estate:
    return make_estate(tmp_path_factory.mktemp("estate"), synth_dump)
