"""Leukocyte (LISC) project plugin for flexplat."""

import flexplat


@flexplat.hookimpl
def register_projects(register):
    from flexplat_leukocyte.project import PROJECT

    register(PROJECT)


def _render_blood_smear(rng, size, object_diameter):
    from flexplat_leukocyte.synthetic import render_field

    return render_field(rng, size, object_diameter)


def _render_leukocyte_sample(rng, size, object_diameter):
    from flexplat_leukocyte.synthetic import render_sample

    return render_sample(rng, size, object_diameter)


@flexplat.hookimpl
def register_synthetic(register):
    register(
        flexplat.SyntheticSpec(
            name="blood-smear-leukocytes",
            description="Blood-smear fields with one leukocyte of a random type, domain-randomised stain, "
            "light, optics and red cells (the demo's smears), the leukocyte as large as the image's own",
            render=_render_leukocyte_sample,
        )
    )


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
