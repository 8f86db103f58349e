"""iumdump's Volatility 3 plugins: pass this directory to ``vol -p`` (``iumdump plugins`` prints
it). Installed inside iumdump as ``iumdump._vol_plugins`` (see setup.py), never as a top-level
``vol_plugins`` package."""
