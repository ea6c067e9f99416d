"""Errors flexplat reports to the user as a message, never as a traceback."""


class FlexplatError(Exception):
    """Base class: the CLI prints the message and exits non-zero."""


class ConfigError(FlexplatError):
    """A config value is missing, unknown or of the wrong type."""


class RegistryError(FlexplatError):
    """A plugin item is unknown or registered twice."""


class PluginLoadError(FlexplatError):
    """A plugin failed to load (raised only in strict mode)."""


class DataError(FlexplatError):
    """A dataset file is missing, unreadable or inconsistent."""
