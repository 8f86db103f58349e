"""iumdump's Windows plugins for Volatility 3: ``vol -p "$(iumdump plugins)" windows.secureprocs``.

With ``-p``, Volatility puts this directory ahead of its own on ``volatility3.plugins.__path__``, so
this file is imported as ``volatility3.plugins.windows``. Like Volatility's own
``plugins/windows/__init__.py`` (whose docstring asks overriding directories to carry the same
lines), it spans every ``windows`` directory on the plugin path, so Volatility's built-in Windows
plugins stay importable beside these.
"""

import os
import sys

if __name__.startswith("volatility3."):
    parent_module, module_name = __name__.rsplit(".", 1)
    __path__ = [os.path.join(x, module_name) for x in sys.modules[parent_module].__path__]
