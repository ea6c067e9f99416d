"""Hook specifications: what a flexplat plugin can provide."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("flexplat")
hookimpl = HookimplMarker("flexplat")


@hookspec
def register_models(register):
    """Register model architectures: ``register(flexplat.ModelSpec(...))``."""


@hookspec
def register_codecs(register):
    """Register dataset codecs: ``register(flexplat.CodecSpec(...))``."""


@hookspec
def register_callbacks(register):
    """Register training callbacks: ``register(flexplat.CallbackSpec(...))``."""


@hookspec
def register_backgrounds(register):
    """Register copy-paste backgrounds: ``register(flexplat.BackgroundSpec(...))``."""


@hookspec
def register_projects(register):
    """Register projects (classes, default config, data): ``register(flexplat.ProjectSpec(...))``."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``flexplat`` command group ``cli``."""
