"""Fixtures of the report tests; the builders live in report_fixtures."""

from __future__ import annotations

import pytest
from report_fixtures import credential_guard_machine, make_report

from iumdump.report.model import Report


@pytest.fixture
def cg_report() -> Report:
    """The report of the credential-guard machine, built from plain values."""
    return make_report(*credential_guard_machine())
