"""Decoding bounded by declared sizes: the width x height an image file, a record's PNG or a
video stream states is checked against a pixel limit before any pixel is decoded, so that a
crafted file (a 20000x20000 PNG of zeros is a few hundred KB) cannot take the machine's memory.

The default, `DEFAULT_MAX_PIXELS`, is three times 8K UHD (7680x4320, 33.2 million pixels); the
commands that read frames take `--max-pixels` to raise it. Headers are read with Pillow, which
reads only the header on `open`; Pillow's own decompression-bomb limit (2 x
`PIL.Image.MAX_IMAGE_PIXELS`, about 179 million pixels) bounds what its header reader accepts.
"""
import io
import os
import warnings

from PIL import Image

from mmp_jax.errors import UserError

DEFAULT_MAX_PIXELS = 100_000_000
# the most `--max-pixels` may say: Pillow refuses the headers of larger images
MAX_PIXELS_CEILING = 2 * Image.MAX_IMAGE_PIXELS


class FrameSizeError(UserError):
    """A frame larger than the limit, or a file whose size cannot be read from its header."""


def check_pixels(name: str, width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """FrameSizeError naming `name` when `width` x `height` exceeds `max_pixels`."""
    if width * height > max_pixels:
        raise FrameSizeError(f'{name}: {width}x{height} frames ({width * height / 1e6:.1f} million pixels) are over '
                             f'the limit of {max_pixels / 1e6:g} million; --max-pixels raises it')


ENCODED = (bytes, bytearray, memoryview)


def _name(source, name: str | None) -> str:
    return name or ('an encoded image' if isinstance(source, ENCODED) else str(source))


def image_size(source: str | os.PathLike | bytes | memoryview, name: str | None = None) -> tuple[int, int]:
    """(width, height) an image file or encoded image states in its header, read without
    decoding any pixel; FrameSizeError naming `name` (the path by default) when the header
    cannot be read or is beyond Pillow's own limit."""
    name = _name(source, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, ENCODED) else os.fspath(source)) as image:
                return image.size
    except Image.DecompressionBombError:
        raise FrameSizeError(f'{name}: over {MAX_PIXELS_CEILING / 1e6:.0f} million pixels, more than any '
                             f'--max-pixels allows') from None
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's UnidentifiedImageError is an OSError
        raise FrameSizeError(f'{name}: cannot be read as an image ({error})') from None


def check_image(source: str | os.PathLike | bytes | memoryview, max_pixels: int = DEFAULT_MAX_PIXELS,
                name: str | None = None) -> tuple[int, int]:
    """`image_size`, then `check_pixels`; returns (width, height)."""
    width, height = image_size(source, name)
    check_pixels(_name(source, name), width, height, max_pixels)
    return width, height
