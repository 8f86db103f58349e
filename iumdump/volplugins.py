"""Where iumdump's Volatility 3 plugins are: the directory to give ``vol -p``.

The plugins are the repository's top-level ``vol_plugins/`` folder, installed inside iumdump as
the package ``iumdump._vol_plugins`` (setup.py maps the folder), so that no top-level
``vol_plugins`` package is installed. Volatility imports the files in the directory itself, as
``volatility3.plugins.windows.*``; the package is only how the directory travels with iumdump.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import Error

PLUGIN_PACKAGE = "iumdump._vol_plugins"


def plugin_directory() -> Path:
    """The directory to give ``vol -p``: it holds ``windows/secureprocs.py`` and its siblings.
    Found without importing the plugins: an editable install maps the package to the checkout's
    ``vol_plugins/``, a regular one holds a copy inside the installed iumdump."""
    spec = importlib.util.find_spec(PLUGIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise Error(f"{PLUGIN_PACKAGE} is not installed; reinstall iumdump (pip install .)")
    return Path(next(iter(spec.submodule_search_locations))).resolve()
