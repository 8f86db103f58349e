"""Fixtures of the tests of vol_plugins (a directory named vol_plugins here would shadow the
package: pytest puts tests/ on sys.path, and a namespace package wins over the editable install)."""

from __future__ import annotations

from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "vol_plugins"


@pytest.fixture(scope="session", autouse=True)
def iumdump_plugins(volatility):
    """Make ``volatility.run(dump, "windows.secureprocs.SecureProcs")`` find the plugins.

    ``volatility3.plugins.windows`` computes its ``__path__`` from ``volatility3.plugins.__path__``
    when first imported, and anything importing Volatility's Windows symbols imports it early,
    so a plugin directory added to ``volatility3.plugins.__path__`` later is not searched for
    ``windows/`` modules. Extending the package's own path, as ``vol -p`` effectively does,
    registers them.
    """
    import volatility3.plugins
    import volatility3.plugins.windows
    from volatility3 import framework

    windows = str(PLUGIN_DIR / "windows")
    if windows not in volatility3.plugins.windows.__path__:
        volatility3.plugins.windows.__path__.append(windows)
    framework.import_files(volatility3.plugins, True)
    volatility.plugins.update(framework.list_plugins())
    return volatility


@pytest.fixture(scope="session")
def plugin_classes(iumdump_plugins):
    """The plugin classes as Volatility registered them (``volatility3.plugins.windows.…``)."""
    plugins = iumdump_plugins.plugins
    return {
        "secureprocs": plugins["windows.secureprocs.SecureProcs"],
        "extbasicinfo": plugins["windows.extbasicinfo.ExtBasicInfo"],
        "trustletpages": plugins["windows.trustletpages.TrustletPages"],
    }


@pytest.fixture(scope="session")
def plugin_session(volatility, iumdump_plugins):
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
