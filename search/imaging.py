"""Decoding and checking uploaded photos, and encoding the images the product stores.

Every photo that enters the product (probe or gallery) passes through decode_photo(): an explicit
format allow-list, size and pixel limits checked before decoding, decompression-bomb warnings as
errors, EXIF orientation applied, and a re-encode that drops every byte of metadata.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
ImageFile.LOAD_TRUNCATED_IMAGES = False


class PhotoRejected(ValueError):
    """A photo the product will not take, with a message for the person who sent it."""


@dataclass(frozen=True)
class DecodedPhoto:
    image: Image.Image  # RGB, upright
    content_hash: str  # SHA-256 of the bytes as received
    source_format: str

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def decode_photo(data: bytes) -> DecodedPhoto:
    """Decode and check a photo; raise PhotoRejected with a plain reason otherwise."""
    max_bytes = settings.UPLOAD_MAX_BYTES
    max_pixels = settings.UPLOAD_MAX_PIXELS
    if not data:
        raise PhotoRejected("The file is empty.")
    if len(data) > max_bytes:
        raise PhotoRejected(
            f"The file is too large ({_megabytes(len(data))}); the limit is {_megabytes(max_bytes)}.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise PhotoRejected("The file is not an image (or not one this product can read).") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(f"The image has too many pixels; the limit is {max_pixels:,} pixels.") from None
        except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file, not a server error
            raise PhotoRejected(f"The image is truncated or damaged and cannot be decoded ({exc}).") from None
        if image.format not in ALLOWED_FORMATS:
            raise PhotoRejected(
                f"Unsupported image format {image.format or 'unknown'}: use JPEG, PNG or WebP.")
        width, height = image.size
        if width < 1 or height < 1:
            raise PhotoRejected("The image has no pixels.")
        if width * height > max_pixels:
            raise PhotoRejected(
                f"The image has too many pixels ({width}×{height} = {width * height:,});"
                f" the limit is {max_pixels:,}.")
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = _to_rgb(upright)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(f"The image has too many pixels; the limit is {max_pixels:,} pixels.") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise PhotoRejected(f"The image is truncated or damaged and cannot be decoded ({exc}).") from None
    return DecodedPhoto(image=rgb, content_hash=hashlib.sha256(data).hexdigest(), source_format=image.format)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, not black, so faces on cut-outs stay visible.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode.startswith("I;16") or image.mode == "I":
        return Image.fromarray((np.asarray(image, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def encode_jpeg(image: Image.Image, quality: int = 92) -> bytes:
    """JPEG bytes with no metadata at all (no EXIF, no GPS, no ICC profile)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def scaled_for_detection(image: Image.Image) -> tuple[np.ndarray, float]:
    """The photo as an RGB array no larger than FACE_DETECT_MAX_SIDE, and the scale applied."""
    max_side = settings.FACE_DETECT_MAX_SIDE
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(image)), scale
