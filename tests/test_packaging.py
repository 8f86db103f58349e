"""How iumdump installs. The Volatility plugins (the repository's ``vol_plugins/``) travel inside
iumdump as ``iumdump._vol_plugins``, never as a top-level ``vol_plugins`` package another project
could overwrite; the report templates are package data. ``iumdump plugins`` prints a directory
Volatility can load both from the installation the tests run in (editable, as the README sets
up) and from a regular one: a wheel built from this checkout."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Prints whether a top-level vol_plugins package is importable, then runs `iumdump plugins` with
# `import vol_plugins` made to fail, so the directory cannot come from such a package.
PROBE = """
import importlib.util, sys
print(importlib.util.find_spec("vol_plugins") is not None)
sys.modules["vol_plugins"] = None
import iumdump
from iumdump.report.templating import html_environment, markdown_environment
for environment, name in ((html_environment(), "report.html.j2"),
                          (markdown_environment(), "report.md.j2")):
    environment.get_template(name)
print(iumdump.__file__)
from iumdump.cli import main
sys.exit(main(["plugins"]))
"""


def probe(cwd: Path, pythonpath: Path | None = None) -> tuple[bool, Path, Path]:
    """(top-level vol_plugins importable, iumdump's __init__.py, plugin directory) as a fresh
    interpreter outside the checkout sees them."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    importable, package, directory = done.stdout.splitlines()
    return importable == "True", Path(package), Path(directory)


def test_plugins_directory_of_this_installation(tmp_path):
    importable, _, directory = probe(tmp_path)
    assert not importable, "a top-level vol_plugins package is installed"
    assert (directory / "windows" / "secureprocs.py").is_file()
    assert (directory / "windows" / "livedump.py").is_file()


def _setuptools_builds_wheels() -> bool:
    # bdist_wheel is part of setuptools from 70.1; before, it needed the wheel package.
    return (importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
            or importlib.util.find_spec("wheel") is not None)


@pytest.mark.skipif(not _setuptools_builds_wheels(),
                    reason="this setuptools cannot build a wheel offline (pip install "
                           "'setuptools>=70.1', the test extra)")
def test_wheel_holds_the_plugins_inside_iumdump_and_the_templates(tmp_path):
    """A regular (non-editable) install: the wheel, built offline from a copy of the checkout
    and unpacked as pip would, prints its own copy of the plugins and renders from its own
    templates."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for folder in ("iumdump", "vol_plugins"):
        shutil.copytree(REPO_ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("iumdump-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["iumdump"]
        site = tmp_path / "site"
        archive.extractall(site)
    assert not any(name.startswith("vol_plugins/") for name in names)
    for plugin in ("__init__.py", "windows/__init__.py", "windows/secureprocs.py",
                   "windows/extbasicinfo.py", "windows/trustletpages.py", "windows/livedump.py"):
        assert f"iumdump/_vol_plugins/{plugin}" in names
    for template in ("report.html.j2", "report.md.j2", "strip.svg.j2", "report.css"):
        assert f"iumdump/report/templates/{template}" in names

    importable, package, directory = probe(tmp_path, pythonpath=site)
    assert not importable
    assert package == site / "iumdump" / "__init__.py"
    assert directory == site / "iumdump" / "_vol_plugins"
    assert (directory / "windows" / "secureprocs.py").is_file()
