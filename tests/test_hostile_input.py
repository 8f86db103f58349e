"""Hostile input, end to end (issue 9): ``iumdump analyze`` and the plugins on damaged dumps,
damaged symbol tables and hostile file names.

For every class of damage the answer is one line on stderr with exit status 2, or a result
marked partial with its reason — never a traceback, a hang, or a clean-looking wrong answer —
and the inputs are left exactly as they were: every dump and symbol file is fingerprinted
(sha256, size, mtime) before and after, and a refused run leaves no report behind. Each
``iumdump analyze`` or ``vol`` run has 60 seconds (``deadline``).

``analyze`` and ``vol`` run as separate processes, as an analyst runs them, with a private HOME
and Volatility cache. The plugins run in-process (``plugin_session``) where only their rows and
warnings matter, and as ``vol -p "$(iumdump plugins)"`` wherever a symbol table is damaged (the
in-process Volatility of the tests shares one symbols directory per table name) or the exit
status of ``vol`` is the point. Damaged dumps are patched copies (``patch``), damaged tables
edited copies (``table_copy``), all in the test's temporary directory (tests/hostile.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile import ADDRESS_MASK, TIME_LIMIT, deadline, fingerprint, table_copy
from markers import SLOW

from iumdump.analysis import processes
from iumdump.analysis.derive import PARTIAL_SUFFIX
from iumdump.analysis.plugin_support import DumpFileTruncated
from iumdump.commands.plugins import plugin_directory

pytestmark = SLOW  # `vol` and `iumdump analyze` run as commands on each damaged dump

VOL = Path(sys.executable).with_name("vol")
KUSER_SHARED_DATA_USER = 0x7FFE0000  # its user-space alias, mapped in every process (DESIGN §4)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    out: Path

    @property
    def report(self) -> dict:
        return json.loads((self.out / "report.json").read_text())


def environment(tmp_path: Path) -> dict[str, str]:
    """A private HOME: nothing of the machine's Volatility cache is read or written."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))


def analyze(tmp_path: Path, dump, *symbol_dirs, offline: bool = True, out: str = "out") -> Run:
    command = [sys.executable, "-m", "iumdump.cli", "analyze", os.fsencode(dump), "-o",
               os.fsencode(tmp_path / out), "-q"]
    command += [item for directory in symbol_dirs for item in ("-s", os.fsencode(directory))]
    command += ["--offline"] if offline else []
    with deadline():
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                              env=environment(tmp_path), timeout=TIME_LIMIT)
    return Run(done.returncode, done.stdout, done.stderr, tmp_path / out)


def vol(tmp_path: Path, dump, symbols, plugin: str, *options: str
        ) -> subprocess.CompletedProcess:
    """``vol -p "$(iumdump plugins)" -f DUMP -s SYMBOLS windows.<plugin>``, the README's way."""
    command = [str(VOL), "-q", "--offline", "--cache-path", str(tmp_path / "vol-cache"),
               "-p", str(plugin_directory()), "-f", str(dump), "-s", str(symbols),
               f"windows.{plugin}", *options]
    with deadline():
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path,
                              env=environment(tmp_path), timeout=TIME_LIMIT)


def refused(run: Run, *expected: str) -> str:
    """Exit 2, exactly one line on stderr holding each of ``expected``, nothing on stdout, no
    traceback, no report (not even its directory)."""
    assert run.code == 2, run.stderr
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.endswith("\n"), run.stderr
    assert run.stderr.startswith("iumdump analyze: ") and "Traceback" not in run.stderr
    for text in expected:
        assert text in run.stderr, run.stderr
    assert not run.out.exists()
    return run.stderr


def partial(run: Run, reason: str) -> dict:
    """Exit 0 and a report marked partial whose notes give ``reason``."""
    assert run.code == 0, run.stderr
    report = run.report
    assert report["analysis"]["partial"] is True
    assert any(reason in note for note in report["analysis"]["notes"]), \
        report["analysis"]["notes"]
    return report


@pytest.fixture
def untouched():
    """``untouched(*paths)`` fingerprints the files under ``paths`` now; the test fails at its end
    if any of them changed, vanished or was added to."""
    watched = []

    def watch(*paths):
        watched.append((paths, fingerprint(*paths)))

    yield watch
    for paths, before in watched:
        assert fingerprint(*paths) == before, f"inputs changed under {paths}"


def vol_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- 1. symbol tables: never deleted, never rewritten ------------------------------------------

def _corrupt_table_directory(dump, directory: Path) -> Path:
    """The dump's table cut to 1000 bytes (an xz stream that ends early), under its right name,
    beside an unrelated file of the analyst's."""
    table_copy(dump, directory)
    table = next(directory.rglob("*.json.xz"))
    table.write_bytes(table.read_bytes()[:1000])
    (directory / "case-notes.txt").write_text("the analyst's own file\n")
    return table


def test_a_corrupt_table_in_a_writable_symbol_directory_is_left_alone(tmp_path, synth_dump,
                                                                      untouched):
    """Regression: Volatility opened the table's path in the first -s directory for writing
    and deleted it when the (offline, refused) download failed, for analyze and the plugins."""
    dump = synth_dump("credential-guard", "raw")
    symbols = tmp_path / "symbols"
    table = _corrupt_table_directory(dump, symbols)
    untouched(symbols, dump.dump_path)
    refused(analyze(tmp_path, dump.dump_path, symbols), f"{table}: unusable symbol table",
            "replace it with a good copy")
    for plugin in ("secureprocs", "trustletpages"):
        done = vol(tmp_path, dump.dump_path, symbols, plugin)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert table.stat().st_size == 1000


def test_a_corrupt_table_survives_a_failed_download(tmp_path, synth_dump, untouched,
                                                    monkeypatch):
    """Without --offline Volatility really tries to fetch the table (here from a port where no
    server listens) and deletes what it wrote when that fails: only in analyze's private
    directory, never in the -s directory."""
    from volatility3.framework import constants

    from iumdump.commands.analyze import analyze as run_analysis
    from iumdump.errors import SymbolError

    dump = synth_dump("credential-guard", "raw")
    symbols = tmp_path / "symbols"
    table = _corrupt_table_directory(dump, symbols)
    untouched(symbols, dump.dump_path)
    monkeypatch.setattr(constants, "SYMBOL_SERVER_URL", "http://127.0.0.1:9/symbols")
    monkeypatch.setattr(constants, "OFFLINE", False)
    monkeypatch.setattr(constants, "CACHE_PATH", str(tmp_path / "volatility-cache"))
    with deadline(), pytest.raises(SymbolError, match="unusable symbol table") as caught:
        run_analysis(str(dump.dump_path), symbol_dirs=[str(symbols)], offline=False, quiet=True)
    assert caught.value.path == str(table)
    assert not (tmp_path / "volatility-cache").exists()  # Volatility's cache is not written


def test_a_downloaded_table_is_saved_beside_the_report(tmp_path, synth_dump, monkeypatch):
    """Online, Volatility writes what it downloads into the run's private directory, which is
    removed afterwards: the table is kept as OUTDIR/symbols/… for the next run's -s. The symbol
    server is stood in for (its answer is the dump's own table); Volatility's writing is real."""
    from volatility3.framework import constants
    from volatility3.framework.symbols.windows import pdbconv

    from iumdump.commands.analyze import analyze as run_analysis
    from iumdump.commands.analyze import report_paths, write
    from iumdump.isf import SymbolTable

    dump = synth_dump("credential-guard", "raw")
    table = SymbolTable.load(dump.isf_path).data
    fetched = tmp_path / "fetched.pdb"

    class Converted:  # what pdbconv.PdbReader makes of the downloaded PDB
        def __init__(self, *_args, **_kwargs):
            pass

        def get_json(self):
            return table

    def retrieve(_self, guid, file_name, progress_callback=None):
        fetched.write_bytes(b"a PDB")  # Volatility deletes it after converting
        return str(fetched)

    monkeypatch.setattr(constants, "OFFLINE", False)
    monkeypatch.setattr(pdbconv.PdbRetreiver, "retreive_pdb", retrieve)
    monkeypatch.setattr(pdbconv, "PdbReader", Converted)
    with deadline():
        report = run_analysis(str(dump.dump_path), symbol_dirs=[], offline=False, quiet=True)
    name = f"symbols/{dump.isf_path.relative_to(dump.symbols_dir).as_posix()}"
    assert list(report.files) == [name] and report.kernel["symbols"] == name
    assert report.summary["processes"] == 19
    written = write(report, report_paths(tmp_path / "out", ("json",)), force=False)
    assert tmp_path / "out" / name in written
    assert SymbolTable.load(tmp_path / "out" / name).data == table


def test_offline_analysis_writes_only_in_its_private_directory(synth_dump, tmp_path,
                                                                monkeypatch):
    """The settings every analysis runs under: a private symbol output first on the path,
    iumdump's own Volatility cache (the identifier cache of this symbol path, linked from the
    private cache directory), offline, and all of it restored (the output removed) afterwards."""
    import volatility3.symbols
    from volatility3 import schemas
    from volatility3.framework import constants

    from iumdump.analysis.volatility_env import volatility_settings

    monkeypatch.setattr(constants, "CACHE_PATH", str(tmp_path / "cache" / "volatility3"))
    before = (list(volatility3.symbols.__path__), constants.CACHE_PATH, constants.OFFLINE,
              schemas.cached_validation_filepath)
    with volatility_settings([str(tmp_path)], offline=True) as settings:
        private = settings.private.path
        assert volatility3.symbols.__path__[:2] == [str(private / "symbols"), str(tmp_path)]
        own = Path(before[1]).parent / "iumdump" / "volatility3"
        assert constants.CACHE_PATH == str(private / "cache") and constants.OFFLINE is True
        identifiers = Path(constants.CACHE_PATH, "identifier.cache")
        assert identifiers.is_symlink() and identifiers.resolve().parent.parent == own / "paths"
        assert schemas.cached_validation_filepath == str(private / "cache" / "valid_isf.hashcache")
    assert (list(volatility3.symbols.__path__), constants.CACHE_PATH, constants.OFFLINE,
            schemas.cached_validation_filepath) == before
    assert not private.exists()


def test_the_plugins_keep_downloads_out_of_the_symbol_directories():
    """Under ``vol`` the plugins are imported after -s took effect and before automagic: they
    put Volatility's own download directory first (tests above run it as ``vol``)."""
    import volatility3.symbols
    from volatility3.framework import constants

    from iumdump.analysis.volatility_env import protect_symbol_directories

    saved = list(volatility3.symbols.__path__)
    try:
        volatility3.symbols.__path__ = ["/evidence/symbols"] + list(constants.SYMBOL_BASEPATHS)
        first = protect_symbol_directories()
        assert volatility3.symbols.__path__[0] == first != "/evidence/symbols"
        assert volatility3.symbols.__path__.count(first) == 1
        assert "/evidence/symbols" in volatility3.symbols.__path__
    finally:
        volatility3.symbols.__path__ = saved


# -- 2. a symbol table that does not fit the kernel ---------------------------------------------

def _with_table(tmp_path: Path, dump, change, untouched, plugin: str = "secureprocs"
                ) -> tuple[Run, subprocess.CompletedProcess, Path]:
    """analyze and ``vol windows.<plugin>`` on ``dump`` with its table edited by ``change``;
    the table and the dump must come out untouched. Returns both runs and the table's path."""
    symbols = table_copy(dump, tmp_path / "symbols", change)
    untouched(symbols, dump.dump_path)
    table = next(symbols.rglob("*.json.xz"))
    return (analyze(tmp_path, dump.dump_path, symbols), vol(tmp_path, dump.dump_path, symbols,
                                                            plugin), table)


def _eprocess(data: dict) -> dict:
    return data["user_types"]["_EPROCESS"]["fields"]


def test_another_builds_table_under_this_kernels_name(tmp_path, synth_dump, real_isf,
                                                      untouched):
    """Regression: the 1607 (14393) table relabelled as the 2004 (19041) kernel's gave a clean
    report of 0 processes, VBS off, partial false."""
    from iumdump.isf import SymbolTable

    dump = synth_dump("credential-guard", "crash-bitmap", "19041")
    other = SymbolTable.load(real_isf("14393")).data
    other["metadata"]["windows"]["pdb"].update(GUID=dump.truth["kernel"]["pdb_guid"].upper(),
                                               age=dump.truth["kernel"]["pdb_age"])
    run, done, table = _with_table(tmp_path, dump, lambda data: (data.clear(),
                                                                 data.update(other)), untouched)
    refused(run, f"{table}: symbol table does not fit the kernel in this dump: no process found")
    assert done.returncode == 1 and "does not fit the kernel in this dump" in done.stderr


def test_eprocess_offsets_of_another_build(tmp_path, synth_dump, untouched):
    """ActiveProcessLinks where this kernel does not keep it: the list is a closed ring of
    objects with no process id, which no process of the pool scan matches."""
    links = lambda data: _eprocess(data)["ActiveProcessLinks"]  # noqa: E731
    run, done, table = _with_table(tmp_path, synth_dump("credential-guard", "raw"),
                                   lambda data: links(data).update(offset=links(data)["offset"]
                                                                   + 0x100), untouched)
    refused(run, f"{table}: symbol table does not fit the kernel",
            "none of the 19 processes of the active process list has a process id")
    assert done.returncode == 1 and "has a process id Windows issues" in done.stderr


def test_a_list_head_the_table_misplaces(tmp_path, synth_dump, untouched):
    """PsActiveProcessHead 1 MiB off: the list gives nothing. analyze still has the pool scan,
    and says the report is partial and why; the plugins without --scan refuse.

    Regression: analyze's reason did not name the symbol table, and it raised one medium
    unlinked-process finding (suggesting DKOM) per process, when the list could not be read at
    all: the scan's processes are neither in it nor shown missing from it. Their ``linked`` is
    null, the summary counts them apart, and ``--scan`` rows show Linked unreadable."""
    head = lambda data: data["symbols"]["PsActiveProcessHead"]  # noqa: E731
    dump = synth_dump("credential-guard", "raw")
    run, done, table = _with_table(tmp_path, dump,
                                   lambda data: head(data).update(address=head(data)["address"]
                                                                  + 0x10_0000), untouched)
    report = partial(run, "PsActiveProcessHead at ")
    assert report["summary"]["processes"] == 19 and report["summary"]["linked"] == 0
    assert done.returncode == 1
    assert "no process found in the active process list" in done.stderr

    fits = f"{table}: symbol table does not fit the kernel in this dump: no process found in " \
        "the active process list (PsActiveProcessHead at "
    (note,) = report["analysis"]["notes"]
    assert note.startswith(fits) and "the 19 processes found by pool scanning cannot be " \
        "called unlinked" in note
    assert fits in done.stderr  # the plugin's refusal says the same of the same table
    assert not _findings(report, "unlinked-process")
    assert {p["linked"] for p in report["processes"]} == {None}
    assert (report["summary"]["unlinked"], report["summary"]["linked_unknown"]) == (0, 19)
    assert "19 found by pool scanning where the active list could not be read" in \
        (run.out / "report.md").read_text()
    assert _findings(report, "vbs-active")[0]["message"].startswith("Secure System (PID")

    scanned = vol(tmp_path, dump.dump_path, table.parents[3], "secureprocs", "--scan")
    assert scanned.returncode == 0, scanned.stderr
    rows = [line.split("\t") for line in scanned.stdout.splitlines() if line[:1].isdigit()]
    assert len(rows) == 19 and {row[4] for row in rows} == {"-"}  # Linked: unreadable
    assert fits in scanned.stderr and "cannot be called unlinked" in scanned.stderr


@pytest.mark.parametrize("damage, expected", [
    (lambda data: _eprocess(data).pop("ActiveProcessLinks"),
     "its _EPROCESS lacks ActiveProcessLinks"),
    (lambda data: _eprocess(data)["ImageFileName"].update(type={"kind": "struct",
                                                               "name": "_NO_SUCH_TYPE"}),
     "_EPROCESS.ImageFileName has a type the table does not define"),
    (lambda data: _eprocess(data)["Protection"].update(type={"kind": "struct",
                                                            "name": "_NO_SUCH_TYPE"}),
     "_EPROCESS.Protection.Level has a type the table does not define"),
], ids=["core-field-missing", "core-type-undefined", "type-undefined"])
def test_eprocess_without_its_fields(tmp_path, synth_dump, untouched, damage, expected):
    """Regression: a table whose _EPROCESS fields have undefined types raised SymbolError from
    the reader's member lookup as a traceback."""
    run, done, table = _with_table(tmp_path, synth_dump("credential-guard", "raw"), damage,
                                   untouched, "extbasicinfo")
    refused(run, f"{table}: symbol table does not fit", expected)
    assert done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr


def test_a_list_that_stops_at_its_first_entry(patch, run_plugin, tmp_path, untouched, caplog):
    """The first process's Flink points nowhere: Volatility's walk goes backwards instead and
    lists everything, but the ring is broken, and the report says so."""
    dump = patch()
    first = dump.original.truth["processes"][0]
    dump.write_field(first["pid"], "ActiveProcessLinks.Flink", 0xFFFF_F6FB_0000_0000)
    untouched(dump.path, dump.original.symbols_dir)
    report = partial(analyze(tmp_path, dump.path, dump.original.symbols_dir),
                     "The active process list is cut after 1 entry")
    assert report["summary"]["processes"] == 19
    caplog.set_level(logging.WARNING, logger="volatility3")
    caplog.set_level(logging.WARNING, logger="iumdump")
    assert len(run_plugin(dump.result, "secureprocs")) == 19
    assert any("cut after 1 entry" in warning for warning in vol_warnings(caplog))


# -- 3. file names -------------------------------------------------------------------------------

def test_a_dump_name_that_is_not_utf8(tmp_path, synth_dump, untouched):
    """Regression: UnicodeEncodeError from open_kernel (Volatility's file URLs are UTF-8)."""
    dump = synth_dump("credential-guard", "crash-bitmap")
    name = tmp_path / os.fsdecode(b"memory-\xff\xfe.dmp")
    name.write_bytes(dump.dump_path.read_bytes())
    untouched(name, dump.symbols_dir)
    run = analyze(tmp_path, name, dump.symbols_dir)
    assert run.code == 0, run.stderr
    report = run.report
    assert report["dump"]["path"] == str(name)
    assert report["summary"]["processes"] == 19
    assert run.stdout.splitlines()[0] == str(tmp_path / "out" / "report.json")


@pytest.mark.parametrize("raw, shown", [
    (b"evil\nname.dmp", "evil\\x0aname.dmp"),
    (b"evil\x1b[2Jname\xff.dmp", "evil\\x1b[2Jname\\udcff.dmp"),
], ids=["newline", "escape-and-invalid-utf8"])
def test_control_characters_in_a_file_name_are_escaped(tmp_path, untouched, raw, shown):
    """Regression: a file name with a newline was printed raw, splitting the one-line error."""
    name = tmp_path / os.fsdecode(raw)
    name.write_bytes(b"")
    untouched(name)
    refused(analyze(tmp_path, name), shown, "is empty (0 bytes)")


def test_a_symbol_directory_name_with_control_characters(tmp_path, synth_dump):
    dump = synth_dump("credential-guard", "raw")
    refused(analyze(tmp_path, dump.dump_path, tmp_path / os.fsdecode(b"sym\rbols\xff")),
            "sym\\x0dbols\\udcff: symbol directory does not exist")


# -- 4. plausibility before belief ---------------------------------------------------------------

def _process(report: dict, pid: int) -> dict:
    return next(p for p in report["processes"] if p["pid"] == pid)


def _findings(report: dict, kind: str, pid: int | None = None) -> list[dict]:
    return [f for f in report["findings"] if f["kind"] == kind and pid in (None, f["pid"])]


def test_an_eprocess_in_user_space(patch, run_plugin, tmp_path, untouched, caplog):
    """Regression: a Flink into the user alias of KUSER_SHARED_DATA gave a "process" at a
    user-space address (PID 0, no name) that the report believed."""
    dump = patch()
    victim = dump.original.truth["processes"][-3]
    links = dump.symbols.member("_EPROCESS", "ActiveProcessLinks").offset
    dump.write_field(victim["pid"], "ActiveProcessLinks.Flink", KUSER_SHARED_DATA_USER + links)
    untouched(dump.path, dump.original.symbols_dir)
    report = partial(analyze(tmp_path, dump.path, dump.original.symbols_dir),
                     "active process list")
    fake = next(p for p in report["processes"] if p["offset"] == KUSER_SHARED_DATA_USER)
    assert fake["partial"] is True and "lies in user space" in fake["problems"][0]
    assert any("lies in user space" in f["message"]
               for f in _findings(report, "partial-analysis"))
    assert fake["verdict"] == "normal"
    (line,) = [line for line in (tmp_path / "out" / "report.md").read_text().splitlines()
               if line.count("|") > 12 and line.split("|")[4].strip() == "0x7ffe0000"]
    assert line.endswith("| normal (partial) |")
    caplog.set_level(logging.WARNING, logger="volatility3")
    rows = run_plugin(dump.result, "secureprocs")
    assert KUSER_SHARED_DATA_USER in {row["Offset(V)"] for row in rows}
    (row,) = [row for row in rows if row["Offset(V)"] == KUSER_SHARED_DATA_USER]
    assert row["Verdict"] == "normal" + PARTIAL_SUFFIX  # marked as the report marks it
    assert any(f"Process at {KUSER_SHARED_DATA_USER:#x}: EPROCESS at" in warning
               and "lies in user space" in warning for warning in vol_warnings(caplog))


def test_a_secure_state_word_of_all_ones(patch, run_plugin, tmp_path, untouched, caplog):
    """Regression: notepad.exe with SecureState all ones was reported as a trustlet with secure
    handle 0xFFFFFFFFFFFFFFFC and no word of doubt."""
    dump = patch()
    notepad = next(p for p in dump.original.truth["processes"] if p["name"] == "notepad.exe")
    _, size = dump.field(notepad["pid"], "Pcb.SecureState")
    dump.write_field(notepad["pid"], "Pcb.SecureState", b"\xff" * size)
    untouched(dump.path, dump.original.symbols_dir)
    run = analyze(tmp_path, dump.path, dump.original.symbols_dir)
    assert run.code == 0, run.stderr
    report = run.report
    bit, handle = _findings(report, "implausible-value", notepad["pid"])
    assert {bit["severity"], handle["severity"]} == {"medium"}
    assert "SecureState 0xffffffffffffffff sets bit 1, which this build's symbols name " \
        "Unused" in bit["message"]
    assert "holds secure handle 0xfffffffffffffffc, which no Windows handle table issues" \
        in handle["message"]
    assert "It is not counted as a secure process." in handle["message"]
    assert notepad["pid"] not in {p["pid"] for p in report["summary"]["secure_processes"]}
    assert not _findings(report, "trustlet", notepad["pid"])
    assert notepad["pid"] not in {p["pid"] for p in report["pages"]}
    assert (_process(report, notepad["pid"])["verdict"], len(_process(report, notepad["pid"])[
        "doubts"])) == ("secure", 2)
    assert "| secure (implausible) |" in (run.out / "report.md").read_text()
    caplog.set_level(logging.WARNING, logger="volatility3")
    rows = {row["PID"]: row for row in run_plugin(dump.result, "secureprocs")}
    assert any("sets bit 1" in w for w in vol_warnings(caplog))
    assert rows[notepad["pid"]]["Verdict"] == "secure (implausible)"  # as the reports say it
    run_plugin(dump.result, "trustletpages")
    assert any(f"PID {notepad['pid']}" in w and "not walked" in w for w in vol_warnings(caplog))


def test_an_undefined_protection_byte_is_a_finding(patch, run_plugin, tmp_path, untouched,
                                                   caplog):
    """Regression: analyze showed Protection 0xFF as Type7/Signer15+Audit with no finding where
    windows.secureprocs warned; both now say the same."""
    dump = patch()
    victim = next(p for p in dump.original.truth["processes"] if p["name"] == "svchost.exe")
    dump.write_field(victim["pid"], "Protection", 0xFF)
    untouched(dump.path, dump.original.symbols_dir)
    run = analyze(tmp_path, dump.path, dump.original.symbols_dir)
    assert run.code == 0, run.stderr
    (finding,) = _findings(run.report, "implausible-value", victim["pid"])
    text = "Protection 0xff has a type or signer Windows does not define (smear or tampering?)"
    assert text in finding["message"]
    caplog.set_level(logging.WARNING, logger="volatility3")
    run_plugin(dump.result, "secureprocs")
    assert any(w.endswith(text) for w in vol_warnings(caplog))


def _trustlet(truth: dict) -> dict:
    return next(p for p in truth["processes"] if p["secure"] and p["pages"] and p["linked"])


def _trustlet_pages(report: dict, pid: int) -> dict:
    return next(p for p in report["pages"] if p["pid"] == pid)


def _partial_pages(dump, trustlet: dict, tmp_path: Path, untouched, reason: str) -> dict:
    """analyze on the damaged copy: the trustlet's page accounting, partial for ``reason``."""
    untouched(dump.path, dump.original.symbols_dir)
    run = analyze(tmp_path, dump.path, dump.original.symbols_dir)
    assert run.code == 0, run.stderr
    pages = _trustlet_pages(run.report, trustlet["pid"])
    assert run.report["analysis"]["partial"] is True and pages["partial"] is True
    assert any(reason in problem for problem in pages["problems"]), pages["problems"]
    return pages


@pytest.mark.parametrize("dtb, reason", [
    (0, "DirectoryTableBase is 0x0"),
    (0x7F_FFFF_F000, "lies beyond the physical memory the dump describes"),
    (None, "does not point at a PML4"),
], ids=["zero", "beyond-memory", "not-a-pml4"])
def test_a_directory_table_base_that_cannot_be_one(patch, run_plugin, tmp_path, untouched,
                                                   dtb, reason):
    """Regression: a trustlet whose DirectoryTableBase is 0 lost all its pages without a partial
    mark. Not a PML4: the frame of the trustlet's first page table, which has no self-map."""
    dump = patch()
    trustlet = _trustlet(dump.original.truth)
    if dtb is None:
        first = trustlet["pages"]["regions"][0]["start"]
        (entry,) = struct.unpack("<Q", dump.read_physical(
            dump.entry_address(trustlet["dtb"], first, 2), 8))
        dtb = entry & ADDRESS_MASK
    dump.write_field(trustlet["pid"], "Pcb.DirectoryTableBase", dtb)
    assert _partial_pages(dump, trustlet, tmp_path, untouched, reason)["pages"] == 0
    (row,) = run_plugin(dump.result, "trustletpages", pid=[trustlet["pid"]])
    assert row["Verdict"] == "inaccessible" + PARTIAL_SUFFIX and row["Pages"] == 0


def test_a_pte_that_maps_its_own_page_table(patch, run_plugin, tmp_path, untouched):
    """Regression: a PTE mapping the page table it sits in was counted as a readable trustlet
    page. Now it is left out of every count and the region says why."""
    dump = patch()
    trustlet = _trustlet(dump.original.truth)
    region = trustlet["pages"]["regions"][0]
    pte = dump.entry_address(trustlet["dtb"], region["start"], 1)
    dump.write_entry(pte, (pte & ADDRESS_MASK) | 0x67)
    untouched(dump.path, dump.original.symbols_dir)
    run = analyze(tmp_path, dump.path, dump.original.symbols_dir)
    assert run.code == 0, run.stderr
    pages = _trustlet_pages(run.report, trustlet["pid"])
    (row,) = [r for r in pages["regions"] if r["start"] == region["start"]]
    assert row["partial"] is True and row["readable"] == 0
    assert row["pages"] == region["pages"] - 1
    assert any("holds one of this process's own page tables" in p for p in row["problems"])
    rows = run_plugin(dump.result, "trustletpages", pid=[trustlet["pid"]])
    (plugin_row,) = [r for r in rows if r["Start"] == region["start"]]
    assert plugin_row["Verdict"].endswith(PARTIAL_SUFFIX) and plugin_row["Readable"] == 0


def _vad_root(dump, plugin_session, pid: int):
    session = plugin_session(dump.original)
    for proc, _linked in processes.iter_processes(session.context, session.kernel_module_name,
                                               pids=[pid]):
        return proc.get_vad_root()
    raise AssertionError(f"PID {pid} not found")


@pytest.mark.parametrize("damage", ["root-in-user-space", "child-loops-to-root"])
def test_a_vad_tree_that_cannot_be_walked(patch, plugin_session, run_plugin, tmp_path,
                                          untouched, damage):
    """Regression: a VAD tree whose root points into user space or loops lost its tags and
    protections without a partial mark."""
    dump = patch()
    trustlet = _trustlet(dump.original.truth)
    if damage == "root-in-user-space":
        dump.write_field(trustlet["pid"], "VadRoot", KUSER_SHARED_DATA_USER)
        reason = "lies in user space"
    else:
        root = _vad_root(dump, plugin_session, trustlet["pid"])
        child = root.get_left_child() if root.get_left_child() else root.get_right_child()
        dump.write_virtual(child.vol.offset, struct.pack("<Q", root.vol.offset | 0xFFFF << 48))
        reason = "VADs that VadCount records"
    pages = _partial_pages(dump, trustlet, tmp_path, untouched, reason)
    assert pages["pages"] == trustlet["pages"]["mapped"]  # the page tables still count them
    rows = run_plugin(dump.result, "trustletpages", pid=[trustlet["pid"]])
    assert rows and all(row["Verdict"].endswith(PARTIAL_SUFFIX) for row in rows)


# -- 5. the plugins check the dump as analyze does ----------------------------------------------

def test_a_bitmap_that_claims_more_pages_than_the_file_holds(tmp_path, synth_dump, run_plugin,
                                                            untouched):
    """Regression: the plugins printed zero rows and exit 0 for a bitmap dump whose file ends
    long before its bitmap's pages do; now they report it, as analyze does."""
    dump = synth_dump("credential-guard", "crash-bitmap")
    data = dump.dump_path.read_bytes()
    cut = tmp_path / "cut.dmp"
    cut.write_bytes(data[:len(data) * 3 // 4])
    untouched(cut, dump.symbols_dir)
    line = refused(analyze(tmp_path, cut, dump.symbols_dir), f"{cut}: truncated crash dump",
                   f"needs {len(data):,} bytes but the file has {len(data) * 3 // 4:,}")
    done = vol(tmp_path, cut, dump.symbols_dir, "secureprocs")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert line.split(": ", 1)[1].strip() in done.stderr
    assert "PID" not in done.stdout.split("\n", 2)[-1]  # no table of rows, not even a header
    with pytest.raises(DumpFileTruncated, match="truncated crash dump"):
        run_plugin(dataclasses.replace(dump, dump_path=cut), "secureprocs")


@pytest.fixture
def run_plugin(plugin_session, plugin_classes):
    def run(result, name, **options):
        with deadline():
            return plugin_session(result).rows(plugin_classes[name], **options)
    return run
