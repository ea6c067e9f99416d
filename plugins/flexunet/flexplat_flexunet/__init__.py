"""FlexUNet model plugin for flexplat."""

import flexplat


@flexplat.hookimpl
def register_models(register):
    from flexplat_flexunet.presets import MODELS

    for spec in MODELS:
        register(spec)
