"""Where setuptools finds iumdump's packages (the rest of the project is in pyproject.toml).

The Volatility 3 plugins live at the repository's top level, ``vol_plugins/`` (what ``vol -p
vol_plugins`` loads from a checkout), but they install inside iumdump as
``iumdump._vol_plugins``: a generic top-level package named ``vol_plugins`` could be overwritten
by another project's, or overwrite it. pyproject.toml cannot map a folder to a subpackage while
also discovering packages, hence this file.
"""

from setuptools import find_namespace_packages, find_packages, setup

PLUGIN_FOLDER = "vol_plugins"
PLUGIN_PACKAGE = "iumdump._vol_plugins"  # iumdump.volplugins.PLUGIN_PACKAGE

setup(
    packages=(find_namespace_packages(include=["iumdump", "iumdump.*"])
              + [PLUGIN_PACKAGE]
              + [f"{PLUGIN_PACKAGE}.{name}" for name in find_packages(PLUGIN_FOLDER)]),
    package_dir={PLUGIN_PACKAGE: PLUGIN_FOLDER},
)
