"""Built-in callbacks, registered through the same hook as third-party ones."""

from flexplat.hookspecs import hookimpl


@hookimpl
def register_callbacks(register):
    pass
