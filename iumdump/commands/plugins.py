"""``iumdump plugins``: where the Volatility 3 plugins live, for ``vol -p``."""

from __future__ import annotations

from ..volplugins import plugin_directory


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "plugins", help="print the directory of iumdump's Volatility 3 plugins (for vol -p)",
        description="Print the directory to pass to Volatility 3's -p option, e.g. "
                    "vol -p \"$(iumdump plugins)\" -f memory.dmp windows.secureprocs")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    print(plugin_directory())
    return 0


__all__ = ["plugin_directory", "register"]
