"""Bad input to ``iumdump analyze``: exit 2, exactly one line on stderr naming the file and the
problem, no traceback, and no report left behind. Run as a separate process, as an analyst
would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iumdump.analysis import preflight
from iumdump.errors import DumpFormatError, InvalidInputError, TruncatedDumpError


def analyze(tmp_path: Path, dump: str | Path, *extra: str) -> tuple[int, str, str, Path]:
    out = tmp_path / "out"
    # A private HOME: Volatility's identifier cache must not remember another run's symbols.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = subprocess.run([sys.executable, "-m", "iumdump.cli", "analyze", str(dump), "-o",
                           str(out), "--offline", *extra],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr, out


def assert_rejected(tmp_path, dump, *extra, problem: str) -> str:
    code, stdout, stderr, out = analyze(tmp_path, dump, *extra)
    assert code == 2, stderr
    assert stdout == ""
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert "Traceback" not in stderr
    assert stderr.startswith(f"iumdump analyze: {dump}: "), stderr
    assert problem in stderr
    assert not out.exists()  # no report, not even an empty directory
    return stderr


def test_missing_file(tmp_path):
    assert_rejected(tmp_path, tmp_path / "nope.dmp", problem="no such file")


def test_directory(tmp_path):
    (tmp_path / "dir.dmp").mkdir()
    assert_rejected(tmp_path, tmp_path / "dir.dmp", problem="is a directory, not a memory dump")


def test_empty_file(tmp_path):
    (tmp_path / "empty.dmp").write_bytes(b"")
    assert_rejected(tmp_path, tmp_path / "empty.dmp", problem="is empty (0 bytes)")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.raw"
    path.write_bytes(os.urandom(16 << 20))
    assert_rejected(tmp_path, path, problem="no Windows kernel found")


def test_truncated_crash_dump(tmp_path, synth_dump):
    source = Path(synth_dump("credential-guard", "crash-bitmap").dump_path)
    data = source.read_bytes()
    path = tmp_path / "truncated.dmp"
    path.write_bytes(data[:len(data) // 2])
    stderr = assert_rejected(tmp_path, path, problem="truncated crash dump")
    assert f"needs {len(data):,} bytes but the file has {len(data) // 2:,}" in stderr


def test_crash_dump_truncated_inside_its_header(tmp_path, synth_dump):
    source = Path(synth_dump("credential-guard", "crash-full").dump_path)
    path = tmp_path / "header.dmp"
    path.write_bytes(source.read_bytes()[:0x1800])
    assert_rejected(tmp_path, path, problem="truncated crash dump: the x64 crash dump header")


def test_wrong_signature(tmp_path, synth_dump):
    data = bytearray(Path(synth_dump("credential-guard", "crash-bitmap").dump_path).read_bytes())
    data[4:8] = b"DU65"
    path = tmp_path / "wrongsig.dmp"
    path.write_bytes(data)
    assert_rejected(tmp_path, path, problem="wrong crash dump signature b'PAGEDU65'")


def test_symbols_not_found(tmp_path, synth_dump):
    result = synth_dump("credential-guard", "raw")
    kernel = result.truth["kernel"]
    guid_age = f"{kernel['pdb_guid'].upper()}-{kernel['pdb_age']}"
    assert_rejected(tmp_path, result.dump_path, problem=f"no symbol table for kernel "
                    f"{guid_age}; pass -s DIR holding windows/ntkrnlmp.pdb/"
                    f"{guid_age}.json.xz, or run without --offline")


def test_no_windows_kernel(tmp_path, synth_dump):
    """Page tables but no kernel: the kernel image's debug record (RSDS, PDB name) is wiped."""
    result = synth_dump("credential-guard", "raw")
    data = bytearray(Path(result.dump_path).read_bytes())
    for marker in (b"RSDS", b"ntkrnlmp.pdb"):
        at = data.find(marker)
        assert at >= 0
        while at >= 0:
            data[at:at + len(marker)] = b"\0" * len(marker)
            at = data.find(marker, at + 1)
    path = tmp_path / "nokernel.raw"
    path.write_bytes(data)
    assert_rejected(tmp_path, path, "-s", str(result.symbols_dir),
                    problem="no Windows kernel found: page tables were found but no ntoskrnl")


def test_missing_symbol_directory(tmp_path, synth_dump):
    result = synth_dump("credential-guard", "crash-bitmap")
    code, _, stderr, out = analyze(tmp_path, result.dump_path, "-s", str(tmp_path / "nosyms"))
    assert code == 2 and stderr.count("\n") == 1
    assert f"{tmp_path / 'nosyms'}: symbol directory does not exist" in stderr
    assert not out.exists()


# -- the up-front checks, one by one -----------------------------------------------------------

def test_user_minidump_is_not_a_memory_dump(tmp_path):
    path = tmp_path / "app.dmp"
    path.write_bytes(b"MDMP" + bytes(8192))
    with pytest.raises(DumpFormatError, match="user-mode minidump"):
        preflight.inspect_dump(path)


def test_tiny_file(tmp_path):
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"x" * 100)
    with pytest.raises(DumpFormatError, match="100 bytes, too small"):
        preflight.inspect_dump(path)


def test_unsupported_crash_dump_type(tmp_path, synth_dump):
    data = bytearray(Path(synth_dump("credential-guard", "crash-full").dump_path).read_bytes())
    data[0xF98:0xF9C] = (2).to_bytes(4, "little")  # _DUMP_HEADER64.DumpType: a kernel dump
    path = tmp_path / "kernel.dmp"
    path.write_bytes(data)
    with pytest.raises(DumpFormatError, match="crash dump type 2 is not a memory dump"):
        preflight.inspect_dump(path)


@pytest.mark.parametrize("fmt", ["crash-full", "crash-bitmap", "raw"])
def test_intact_dumps_pass(fmt, synth_dump):
    result = synth_dump("credential-guard", fmt)
    found = preflight.inspect_dump(result.dump_path)
    assert found.format == fmt
    assert found.size == os.path.getsize(result.dump_path)
    if fmt != "raw":
        assert found.expected_size == found.size
        assert found.build == result.truth["kernel"]["build"]


def test_one_missing_page_of_a_complete_dump(tmp_path, synth_dump):
    data = Path(synth_dump("credential-guard", "crash-full").dump_path).read_bytes()
    path = tmp_path / "short.dmp"
    path.write_bytes(data[:-1])
    with pytest.raises(TruncatedDumpError, match=r"\(1 byte, 1 page, missing\)"):
        preflight.inspect_dump(path)


def test_x86_crash_dump_signature_is_checked(tmp_path):
    header = bytearray(0x1000)
    header[0:8] = b"PAGEDUMP"
    header[0xF88:0xF8C] = (1).to_bytes(4, "little")
    header[0x64:0x68] = (1).to_bytes(4, "little")          # one run
    header[0x70:0x74] = (16).to_bytes(4, "little")         # of 16 pages
    path = tmp_path / "x86.dmp"
    path.write_bytes(bytes(header) + bytes(8 * 0x1000))
    with pytest.raises(TruncatedDumpError, match="needs 69,632 bytes"):
        preflight.inspect_dump(path)
    path.write_bytes(bytes(header) + bytes(16 * 0x1000))
    assert preflight.inspect_dump(path).format == "crash32-full"


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "locked.raw"
    path.write_bytes(bytes(8192))
    path.chmod(0)
    with pytest.raises(InvalidInputError, match="cannot read: Permission denied"):
        preflight.inspect_dump(path)


def test_bitmap_dump_with_a_damaged_summary_signature(tmp_path, synth_dump):
    """A bitmap dump whose "FDMP" signature is gone is still read as Volatility reads it (by the
    bitmap; issue 8: the preflight is never stricter than Volatility), and the sizes behind the
    signature are still checked: the signature is named, the file size must match the bitmap."""
    from iumdump.structs import crashdump

    data = bytearray(Path(synth_dump("credential-guard", "crash-bitmap").dump_path).read_bytes())
    data[crashdump.SUMMARY_DUMP_OFFSET:crashdump.SUMMARY_DUMP_OFFSET + 4] = bytes(4)
    path = tmp_path / "bad-summary.dmp"
    path.write_bytes(bytes(data))
    found = preflight.inspect_dump(path)
    assert found.summary_signature == "\\x00\\x00\\x00\\x00DUMP"
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(TruncatedDumpError, match="truncated crash dump") as caught:
        preflight.inspect_dump(path)
    assert "\n" not in str(caught.value)
