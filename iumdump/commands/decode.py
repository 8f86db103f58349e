"""``iumdump decode``: decode a PROCESS_EXTENDED_BASIC_INFORMATION buffer from a live system."""

from __future__ import annotations

import json
import sys

from ..decode import decode_buffer, to_json, to_text
from ..errors import Error, InvalidInputError
from ..structs.process_info import ARCHES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "decode", help="decode a PROCESS_EXTENDED_BASIC_INFORMATION buffer (raw bytes or hex)",
        description="Decode the PROCESS_EXTENDED_BASIC_INFORMATION that NtQueryInformationProcess "
                    "(ProcessBasicInformation) filled on a live system, given as raw bytes or hex "
                    "text. The layout comes from --arch, else from the buffer's length (64 bytes "
                    "x64, 32 bytes x86); the Size field must agree.")
    parser.add_argument("--arch", choices=ARCHES,
                        help="layout to decode with (default: from the buffer's length)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object with size, basic_info and flags (name → bool)")
    parser.add_argument("file", metavar="FILE|-", help="file holding the buffer; - for stdin")
    parser.set_defaults(handler=_run)


# A buffer is 32 or 64 bytes; even as UTF-16 hex text with separators and line breaks it is a few
# hundred. Reading at most this much keeps a memory dump given here by mistake out of memory.
MAX_INPUT = 64 << 10


def _read(name: str) -> bytes:
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(name, "rb") as handle:
                data = handle.read(MAX_INPUT + 1)
    except OSError as exc:
        raise InvalidInputError(f"cannot read: {exc.strerror or exc}", path=name) from None
    if len(data) > MAX_INPUT:
        raise InvalidInputError(
            f"more than {MAX_INPUT:,} bytes: not a PROCESS_EXTENDED_BASIC_INFORMATION buffer "
            "(64 bytes x64, 32 bytes x86, or their hex text); for a memory dump use "
            "iumdump analyze", path="<stdin>" if name == "-" else name)
    return data


def _run(args) -> int:
    data = _read(args.file)
    try:
        info = decode_buffer(data, args.arch)
    except Error as exc:  # name the file in the one-line message
        exc.path = exc.path or ("<stdin>" if args.file == "-" else args.file)
        raise
    if args.json:
        print(json.dumps(to_json(info), indent=2))
    else:
        print(to_text(info))
    return 0
