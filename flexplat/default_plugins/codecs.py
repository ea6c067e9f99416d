"""Built-in codecs, registered through the same hook as third-party ones.

This module is loaded by ``flexplat list``: it must stay light (no NumPy/OpenCV at the top);
the codec classes are imported inside the factories.
"""

from flexplat.hookspecs import hookimpl
from flexplat.options import Option
from flexplat.specs import CodecSpec

RGB_MASK_OPTIONS = {
    "tolerance": Option(
        60.0,
        "max Euclidean RGB distance for snapping a mask colour that is not a class colour: to the nearest "
        "class colour, or (blends) to the straight mix of two class colours; farther is an error",
        min=0.0,
    ),
    "blends": Option(
        True, "also snap mixes of two class colours (anti-aliased edges) to the nearer of the two classes"
    ),
}


def _rgb_mask(classes, options):
    from flexplat.data.codecs import RgbMaskCodec

    return RgbMaskCodec(classes, options)


def _index_mask(classes, options):
    from flexplat.data.codecs import IndexMaskCodec

    return IndexMaskCodec(classes, options)


@hookimpl
def register_codecs(register):
    register(
        CodecSpec(
            "rgb-mask",
            "images + RGB colour masks (class colours from `classes`); off-palette edge colours are snapped "
            "and counted",
            _rgb_mask,
            RGB_MASK_OPTIONS,
        )
    )
    register(
        CodecSpec(
            "index-mask",
            "images + single-channel PNG masks holding class indices (0 = background)",
            _index_mask,
        )
    )
