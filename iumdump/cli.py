"""The ``iumdump`` command: one sub-command per module in ``iumdump.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``handler=function(args) -> int``. Any :class:`iumdump.errors.Error` that escapes a handler becomes
one line on stderr and exit status 2 — an analyst sees what is wrong with which file, never a
traceback. Anything else that escapes is a bug: one line too, exit status 1, and the traceback
with ``IUMDUMP_TRACEBACK=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import Error
from .visible import one_line

# Order is the order of ``iumdump --help``.
COMMANDS = ["demo", "analyze", "fleet", "synth", "decode", "plugins"]

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iumdump",
        description="Find secure (IUM) processes in Windows memory dumps, decode their protection and "
                    "extended flags, and account for the trustlet pages a VTL0 dump cannot show.")
    parser.add_argument("--version", action="version", version=f"iumdump {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.commands.{name}":
                raise
            continue  # a command not built yet in this checkout
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.handler(args) or EXIT_OK)
    except Error as err:
        print(f"iumdump {args.command}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("iumdump: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("IUMDUMP_TRACEBACK"):
            raise
        print(f"iumdump {args.command}: internal error: {type(exc).__name__}: "
              f"{one_line(exc)} (set IUMDUMP_TRACEBACK=1 to see where; please report it)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
