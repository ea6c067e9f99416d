"""The plugins shipped inside the core: built-in codecs and callbacks.

Each module here is an ordinary flexplat plugin, registered through the same hooks as a
third-party one (see :data:`flexplat.plugins.DEFAULT_PLUGINS`). They are loaded by
``flexplat list``, so they must stay light: heavy classes are imported inside the factories.
"""
