"""Leukocyte (LISC) project plugin for flexplat."""

import flexplat


@flexplat.hookimpl
def register_projects(register):
    from flexplat_leukocyte.project import PROJECT

    register(PROJECT)
