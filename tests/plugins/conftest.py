"""Fixtures of the tests of vol_plugins (a directory named vol_plugins here would shadow the
package: pytest puts tests/ on sys.path, and a namespace package wins over the editable install)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def plugin_classes(volatility):
    """The plugin classes as Volatility registered them (``volatility3.plugins.windows.…``)."""
    plugins = volatility.plugins
    return {
        "secureprocs": plugins["windows.secureprocs.SecureProcs"],
        "extbasicinfo": plugins["windows.extbasicinfo.ExtBasicInfo"],
        "trustletpages": plugins["windows.trustletpages.TrustletPages"],
    }


@pytest.fixture(scope="session")
def plugin_session(volatility):
    """Factory: ``plugin_session(dump) -> VolatilitySession`` on the dump's shared context.

    The ``volatility`` fixture runs automagic for every plugin it runs; a VolatilitySession reuses
    the kernel the first run found, so each plugin run costs only the plugin itself.
    """
    from iumdump.analysis.reader import VolatilitySession

    sessions = {}

    def get(dump):
        key = Path(dump.dump_path)
        if key not in sessions:
            try:
                name = volatility.kernel_module(dump)
            except RuntimeError:  # no plugin ran on this dump yet: let one find the kernel
                volatility.run(dump, "windows.pslist.PsList")
                name = volatility.kernel_module(dump)
            sessions[key] = VolatilitySession.for_module(volatility.context(dump), name)
        return sessions[key]

    return get
