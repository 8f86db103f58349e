"""``iumdump decode``: good buffers of both layouts, and each kind of bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from iumdump.cli import main
from iumdump.decode import buffer_bytes, decode_buffer, layout_for
from iumdump.errors import InvalidInputError, TruncatedDumpError
from iumdump.structs.process_info import FLAG_NAMES, BasicInformation, ExtendedBasicInformation

LSAISO = BasicInformation(ExitStatus=0x103, PebBaseAddress=0x7FF7_1234_5000, AffinityMask=0xF,
                          BasePriority=8, UniqueProcessId=812, InheritedFromUniqueProcessId=640)
WOW64 = BasicInformation(ExitStatus=0x103, PebBaseAddress=0x7EFD_E000, AffinityMask=0x3,
                         BasePriority=8, UniqueProcessId=4242, InheritedFromUniqueProcessId=1000)


def buffer_x64(**flags) -> bytes:
    return ExtendedBasicInformation(LSAISO, flags=flags, arch="x64").to_bytes()


def buffer_x86(**flags) -> bytes:
    return ExtendedBasicInformation(WOW64, flags=flags, arch="x86").to_bytes()


def run(capsys, tmp_path, data: bytes, *options: str):
    path = tmp_path / "buffer"
    path.write_bytes(data)
    status = main(["decode", *options, str(path)])
    out, err = capsys.readouterr()
    return status, out, err


def test_done_when_secure_and_protected_x64_json(capsys, tmp_path):
    """The issue's acceptance check: exactly IsSecureProcess and IsProtectedProcess are true."""
    status, out, err = run(capsys, tmp_path, buffer_x64(IsSecureProcess=True,
                                                        IsProtectedProcess=True), "--json")
    assert (status, err) == (0, "")
    document = json.loads(out)
    assert document["size"] == 64
    assert document["basic_info"] == {
        "ExitStatus": 0x103, "PebBaseAddress": 0x7FF7_1234_5000, "AffinityMask": 0xF,
        "BasePriority": 8, "UniqueProcessId": 812, "InheritedFromUniqueProcessId": 640}
    assert [name for name, value in document["flags"].items() if value] == \
        ["IsProtectedProcess", "IsSecureProcess"]
    assert list(document["flags"]) == list(FLAG_NAMES)
    assert document["flags_value"] == 0x81
    assert document["spare_bits"] == 0


def test_x86_buffer_as_hex_text(capsys, tmp_path):
    data = buffer_x86(IsWow64Process=True).hex(" ").encode()
    status, out, err = run(capsys, tmp_path, data, "--json")
    assert (status, err) == (0, "")
    document = json.loads(out)
    assert document["arch"] == "x86" and document["size"] == 32
    assert document["basic_info"]["UniqueProcessId"] == 4242
    assert [name for name, value in document["flags"].items() if value] == ["IsWow64Process"]


def test_text_output_names_every_field_and_flag(capsys, tmp_path):
    status, out, err = run(capsys, tmp_path, buffer_x64(IsFrozen=True))
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == "PROCESS_EXTENDED_BASIC_INFORMATION (x64, 64 bytes)"
    for name in ("Size", "ExitStatus", "PebBaseAddress", "AffinityMask", "BasePriority",
                 "UniqueProcessId", "InheritedFromUniqueProcessId", "Flags", "SpareBits",
                 *FLAG_NAMES):
        assert name in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert lines["IsFrozen"] == "True" and lines["IsSecureProcess"] == "False"
    assert lines["BasicInfo.PebBaseAddress"] == "0x00007ff712345000"
    assert lines["BasicInfo.UniqueProcessId"] == "812"
    assert lines["Flags"] == "0x00000010"


def test_arch_option_selects_the_layout(capsys, tmp_path):
    status, out, _ = run(capsys, tmp_path, buffer_x86(), "--arch", "x86")
    assert status == 0 and "(x86, 32 bytes)" in out


def test_stdin(capsys, monkeypatch):
    hex_text = buffer_x64(IsSubsystemProcess=True).hex().upper() + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(hex_text.encode())))
    assert main(["decode", "--json", "-"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["flags"]["IsSubsystemProcess"] is True


@pytest.mark.parametrize("render", [
    lambda b: b.hex(),
    lambda b: b.hex("\n", 16),                             # xxd -p style lines
    lambda b: "-".join(f"{x:02X}" for x in b),             # [BitConverter]::ToString()
    lambda b: b.hex(":"),
])
def test_hex_spellings(render):
    raw = buffer_x64(IsSecureProcess=True)
    assert buffer_bytes(render(raw).encode()) == raw


def test_utf16_text_from_powershell():
    raw = buffer_x86(IsProtectedProcess=True)
    text = ("\ufeff" + "-".join(f"{x:02X}" for x in raw) + "\r\n").encode("utf-16-le")
    assert decode_buffer(text).flags["IsProtectedProcess"]


def test_spare_bits_are_reported_not_dropped(capsys, tmp_path):
    raw = bytearray(buffer_x64(IsSecureProcess=True))
    raw[0x38:0x3C] = (1 << 7 | 1 << 12).to_bytes(4, "little")
    status, out, _ = run(capsys, tmp_path, bytes(raw))
    assert status == 0
    spare = next(line for line in out.splitlines() if "SpareBits" in line)
    assert "0x4" in spare and "bit 12" in spare
    status, out, _ = run(capsys, tmp_path, bytes(raw), "--json")
    document = json.loads(out)
    assert document["spare_bits"] == 4 and document["set_spare_bits"] == [12]
    assert document["flags_value"] == 1 << 7 | 1 << 12


def test_nonzero_padding_is_reported(capsys, tmp_path):
    raw = bytearray(buffer_x64())
    raw[0x3E] = 0x5A
    status, out, _ = run(capsys, tmp_path, bytes(raw))
    assert status == 0 and "padding not zero at byte offsets 0x3e" in out


BAD_INPUTS = {
    "length fits neither layout": (bytes(48), [], "48 bytes fits neither layout"),
    "too short for either layout": (bytes(20), [], "20 bytes fits neither layout"),
    "empty": (b"", [], "empty input"),
    "x64 Size says x86": (b"\x20" + bytes(63), [], "Size field says 0x20"),
    "x86 Size says x64": (b"\x40" + bytes(31), [], "Size field says 0x40"),
    "Size zero": (bytes(64), [], "Size field says 0x0"),
    "arch x86 on a 64-byte buffer": (buffer_x64(), ["--arch", "x86"], "is 32 bytes; got 64"),
    "arch x64 on a 32-byte buffer": (buffer_x86(), ["--arch", "x64"], "64 bytes; got only 32"),
    "text that is not hex": (b"this is not hex\n", [], "text is not hex"),
    "0x prefix": (b"0x" + buffer_x64().hex().encode(), [], "unexpected 'x'"),
    "odd number of digits": (buffer_x64().hex()[:-1].encode(), [], "odd number of hex digits"),
    "no digits": (b" \n\t", [], "no hex digits"),
}


@pytest.mark.parametrize("data, options, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, data, options, message):
    status, out, err = run(capsys, tmp_path, data, *options)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("iumdump decode: ")
    assert str(tmp_path / "buffer") in err
    assert message in err


def test_missing_file(capsys, tmp_path):
    assert main(["decode", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent" in err and "No such file" in err


def test_error_types():
    with pytest.raises(TruncatedDumpError):
        layout_for(31)
    with pytest.raises(InvalidInputError):
        layout_for(33)
    with pytest.raises(TruncatedDumpError):
        decode_buffer(buffer_x86(), "x64")
    # The errors are also the built-ins a caller would catch.
    with pytest.raises(EOFError):
        decode_buffer(bytes(8))
    with pytest.raises(ValueError):
        decode_buffer(b"zz")


def test_command_line_exit_status_and_stderr(tmp_path):
    """End to end in a new interpreter, as a shell sees it: no traceback, one line, exit 2."""
    path = tmp_path / "bad.txt"
    path.write_text("not hex at all")
    result = subprocess.run([sys.executable, "-m", "iumdump.cli", "decode", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_large_file_is_refused_without_being_read_whole(capsys, tmp_path):
    """A memory dump given to decode by mistake is one line of bad input, read no further than
    MAX_INPUT bytes (the file here is sparse: 8 GiB on paper, nothing on disk)."""
    from iumdump.commands.decode import MAX_INPUT

    path = tmp_path / "memory.raw"
    with open(path, "wb") as handle:
        handle.truncate(8 << 30)
    assert main(["decode", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"more than {MAX_INPUT:,} bytes" in err
    assert "iumdump analyze" in err
