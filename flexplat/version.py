"""The core's version (single source, read by packaging)."""

__version__ = "0.1.0"
