"""``vol -p vol_plugins -f DUMP -s SYMBOLS windows.<plugin> -r json`` run as a subprocess gives
the same rows as the plugin run through Volatility's Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from markers import SLOW

from iumdump.commands.plugins import plugin_directory
from volatility_harness import json_value

pytestmark = SLOW  # `vol` run as a command, a few seconds a run

VOL = Path(sys.executable).with_name("vol")
# What a timeline line calls a process of each verdict: only a secure one is a "Secure process".
TIMELINE_LABELS = {"secure": "Secure process", "masquerade": "Masquerading process",
                   "enclave-host": "Enclave host"}

# One real symbol table (14393: TrustletId has values); each costs vol seconds to index and
# load, and the in-process tests already cover every profile.
CASES = [
    ("credential-guard", "crash-bitmap", "builtin", "secureprocs", {}),
    ("adversarial", "raw", "builtin", "secureprocs", {"scan": True}),
    ("adversarial", "crash-full", "14393", "secureprocs", {"scan": True}),
    ("adversarial", "host", "builtin", "extbasicinfo", {}),
    ("adversarial", "crash-bitmap", "builtin", "trustletpages", {"scan": True}),
    ("credential-guard", "crash-live", "builtin", "trustletpages", {}),
    ("credential-guard", "crash-live", "builtin", "secureprocs", {}),
]


def vol_json(dump, cache_dir: Path, plugin: str, options: dict, *, plugins: bool = True
             ) -> list[dict]:
    arguments = []
    for name, value in options.items():
        if value is True:
            arguments.append(f"--{name}")
        else:
            arguments += [f"--{name}", *map(str, value)]
    command = [str(VOL), "-q", "--offline", "--cache-path", str(cache_dir),
               *(["-p", str(plugin_directory())] if plugins else []), "-f", str(dump.dump_path),
               "-s", str(dump.symbols_dir), "-r", "json", f"windows.{plugin}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    for row in rows:
        assert row.pop("__children") == []
    return rows


@pytest.mark.parametrize("scenario, fmt, profile, plugin, options", CASES,
                         ids=[f"{c[3]}-{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_vol_json_equals_python_api(scenario, fmt, profile, plugin, options, synth_dump,
                                    plugin_session, plugin_classes, vol_cache_dir):
    dump = synth_dump(scenario, fmt, profile)
    cli = vol_json(dump, vol_cache_dir, plugin, options)
    api = [{column: json_value(value) for column, value in row.items()}
           for row in plugin_session(dump).rows(plugin_classes[plugin], **options)]
    assert cli == api
    assert cli  # each case has rows to compare


def test_secureprocs_pid_option_from_the_command_line(synth_dump, vol_cache_dir):
    dump = synth_dump("credential-guard", "raw", "builtin")
    rows = vol_json(dump, vol_cache_dir, "secureprocs", {"pid": [712, 724]})
    assert [(row["PID"], row["Verdict"]) for row in rows] == [(712, "secure"), (724, "normal")]


def test_plugin_directory_is_the_package_under_pytest():
    """Regression: these tests once lived in tests/vol_plugins, which (tests/ being on sys.path
    under pytest) made ``vol_plugins`` a namespace package without ``__file__``, and
    ``iumdump plugins`` failed in every test process."""
    directory = plugin_directory()
    assert (directory / "windows" / "secureprocs.py").is_file()
    assert (directory / "__init__.py").is_file()


@pytest.mark.parametrize("fmt", ["crash-live", "crash-kernel"])
def test_stock_pslist_reads_a_live_kernel_dump_with_the_plugins_loaded(synth_dump, vol_cache_dir,
                                                                        fmt):
    """DumpType 6 (a live dump, or a kernel memory dump written at a bug check): Volatility 3
    alone refuses it; with ``-p "$(iumdump plugins)"`` its own windows.pslist lists every linked
    process the truth holds."""
    dump = synth_dump("credential-guard", fmt, "builtin")
    command = [str(VOL), "-q", "--offline", "--cache-path", str(vol_cache_dir), "-f",
               str(dump.dump_path), "-s", str(dump.symbols_dir), "-r", "json", "windows.pslist"]
    alone = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert alone.returncode != 0
    rows = vol_json(dump, vol_cache_dir, "pslist", {})
    assert sorted((row["PID"], row["ImageFileName"]) for row in rows) == sorted(
        (p["pid"], p["name"]) for p in dump.truth["processes"] if p["linked"])


@pytest.mark.parametrize("fmt", ["crash-live", "crash-kernel"])
def test_trustletpages_on_a_live_kernel_dump_says_not_captured(synth_dump, vol_cache_dir, fmt):
    dump = synth_dump("credential-guard", fmt, "builtin")
    rows = vol_json(dump, vol_cache_dir, "trustletpages", {})
    verdicts = {row["Verdict"] for row in rows}
    assert verdicts == {"not-captured", "shared-user-data"}
    (shared,) = [row for row in rows if row["Verdict"] == "shared-user-data"]
    assert (shared["Start"], shared["Pages"], shared["Readable"]) == (0x7FFE0000, 1, 1)
    assert all(row["Readable"] == 0 for row in rows if row is not shared)


def test_timeliner_places_the_secure_processes(synth_dump, vol_cache_dir, tmp_path):
    """``vol … timeliner`` runs windows.secureprocs as a TimeLinerInterface: each secure,
    masquerading and enclave-host process is one line, created and (where it exited) modified
    at its CreateTime and ExitTime.

    The times are read from timeliner's own body file: in Volatility 2.28.2 the rows of the
    timeliner's table carry the times of another item of the same plugin (timeliner.py builds
    each row from the ``times`` left over from the loop before), while the body file is written
    from each item's own times."""
    dump = synth_dump("adversarial", "crash-bitmap", "builtin")
    command = [str(VOL), "-q", "--offline", "--cache-path", str(vol_cache_dir),
               "-o", str(tmp_path), "-p", str(plugin_directory()), "-f", str(dump.dump_path),
               "-s", str(dump.symbols_dir), "-r", "json", "timeliner",
               "--plugin-filter", "SecureProcs", "--create-bodyfile"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    listed = {row["Description"] for row in json.loads(done.stdout)
              if row["Plugin"] == "SecureProcs"}
    body = {}
    for line in (tmp_path / "volatility.body").read_text().splitlines():
        fields = line.split("|")
        assert len(fields) == 11, line
        body[fields[1].removeprefix("SecureProcs - ")] = (int(fields[8]), int(fields[10]))
    expected = [p for p in dump.truth["processes"]
                if p["verdict"] in ("secure", "masquerade", "enclave-host")]
    assert len(listed) == len(body) == len(expected)
    assert listed == set(body)
    for process in expected:
        description = next(d for d in listed if d.startswith(
            f"{TIMELINE_LABELS[process['verdict']]}: {process['pid']} {process['name']} ("))
        assert f"verdict {process['verdict']}" in description
        modified, created = body[description]
        assert created == _unix(process["create_time"])
        assert modified == (_unix(process["exit_time"]) if process["exit_time"] else 0)


def _unix(iso: str) -> int:
    import datetime

    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
