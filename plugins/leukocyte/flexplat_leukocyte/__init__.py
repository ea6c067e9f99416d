"""Leukocyte (LISC) project plugin for flexplat."""

import flexplat


@flexplat.hookimpl
def register_projects(register):
    from flexplat_leukocyte.project import PROJECT

    register(PROJECT)


def _render_blood_smear(rng, size, object_diameter):
    from flexplat_leukocyte.synthetic import render_field

    return render_field(rng, size, object_diameter)


@flexplat.hookimpl
def register_backgrounds(register):
    register(
        flexplat.BackgroundSpec(
            name="blood-smear",
            description="Leukocyte-free blood-smear fields (plasma, red cells none to crowded, platelets), "
            "domain-randomised stain, light and optics; red cells sized against the pasted cell",
            render=_render_blood_smear,
        )
    )
