"""flexplat-zheng-wbc: the Zheng et al. 2018 white-blood-cell dataset as a flexplat codec and two projects.

Registers the codec ``zheng-wbc`` and the projects ``zheng-wbc`` (cell type) and ``zheng-wbc-parts``
(cytoplasm / nucleus). This module is imported by ``flexplat list``: NumPy loads only in the codec.
"""

import flexplat

__version__ = "0.1.0"


def _codec(classes, options):
    from flexplat_zheng_wbc.codec import ZhengCodec

    return ZhengCodec(classes, options)


@flexplat.hookimpl
def register_codecs(register):
    from flexplat_zheng_wbc.classes import CODEC_OPTIONS

    register(
        flexplat.CodecSpec(
            "zheng-wbc",
            "Zheng et al. 2018 WBC layout: images/*.bmp + grey masks/*.png (0 background, 128 cytoplasm, "
            "255 nucleus) + class_labels.csv (cell type per image); task 'type' or 'parts'",
            _codec,
            CODEC_OPTIONS,
        )
    )


@flexplat.hookimpl
def register_projects(register):
    from flexplat_zheng_wbc.project import PARTS_PROJECT, PROJECT

    register(PROJECT)
    register(PARTS_PROJECT)
