"""iumdump: secure (IUM) processes, protection and trustlet pages in Windows memory dumps."""

__version__ = "0.1.0"
