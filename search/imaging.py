"""Decoding and checking uploaded photos, and encoding the images the product stores.

Every photo that enters the product (probe or gallery) passes through decode_photo(): an explicit
format allow-list, size and pixel limits checked before decoding, decompression-bomb warnings as
errors, EXIF orientation applied, and a re-encode that drops every byte of metadata.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
# A JPEG with several pictures (a phone's depth or preview images) opens as MPO: its first is the photo.
_JPEG_FAMILY = ("JPEG", "MPO")
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Every kept photo is re-encoded as JPEG, which holds at most 65,500 pixels a side (a JPEG format limit;
# fuzzing found a tiny WebP under the pixel limit that decoded and then could not be stored: docs/reliability.md).
MAX_SIDE = 65_500

# Other formats are named from their first bytes only, so that no other parser ever reads an upload.
_IMAGE_SIGNATURES = (
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"8BPS", "PSD"),
    (b"SIMPLE  =", "FITS"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)
_OWN_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


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


def photo_size_check(size: int) -> None:
    """Refuse a file by its size alone, before anyone reads it into memory."""
    max_bytes = settings.UPLOAD_MAX_BYTES
    if size == 0:
        raise PhotoRejected("The file is empty.")
    if size > max_bytes:
        raise PhotoRejected(f"The file is too large ({_megabytes(size)}); the limit is {_megabytes(max_bytes)}.")


def _unreadable_reason(data: bytes) -> str:
    head = data[:32]
    if head.startswith(_OWN_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "The image is damaged and cannot be read; send the original file again."
    if head.startswith(b"%PDF"):
        return "The file is not an image (it is a PDF document): use a JPEG, PNG or WebP photo."
    if head[4:8] == b"ftyp":
        return "Unsupported image format HEIC/AVIF: export the photo as JPEG, PNG or WebP."
    if head.lstrip()[:5] in (b"<?xml", b"<svg ", b"<svg>") or b"<svg" in data[:1024]:
        return "Unsupported image format SVG: use JPEG, PNG or WebP."
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return f"Unsupported image format {name}: use JPEG, PNG or WebP."
    return "The file is not an image (or not one this product can read)."


def _webp_declared_size(head: bytes) -> tuple[int, int] | None:
    """A WebP's width and height from its first chunk's header, without any decoder."""
    if not (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or len(head) < 30:
        return None
    kind = head[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _pixel_limit_check(width: int, height: int) -> None:
    max_pixels = settings.UPLOAD_MAX_PIXELS
    if max(width, height) > MAX_SIDE:
        raise PhotoRejected(
            f"The image is too wide or too tall ({width}×{height} pixels); a side can be at most {MAX_SIDE:,} pixels."
        )
    if width * height > max_pixels:
        raise PhotoRejected(
            f"The image has too many pixels ({width}×{height} = {width * height:,}); the limit is {max_pixels:,}."
        )


def decode_photo(data: bytes) -> DecodedPhoto:
    """Decode and check a photo; raise PhotoRejected with a plain reason otherwise."""
    max_pixels = settings.UPLOAD_MAX_PIXELS
    too_many_pixels = f"The image has too many pixels; the limit is {max_pixels:,} pixels."
    damaged = "The image is truncated or damaged and cannot be read; send the original file again."
    photo_size_check(len(data))
    if declared := _webp_declared_size(data[:32]):
        # The WebP decoder reserves its canvas (twice, 4 bytes a pixel) when the file is opened,
        # before Pillow's size check: 94 bytes could claim 1.3 GB.
        _pixel_limit_check(*declared)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # Only the three allowed parsers see the bytes: Pillow's other plugins are attack surface.
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except UnidentifiedImageError:
            raise PhotoRejected(_unreadable_reason(data)) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(too_many_pixels) from None
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - any parser failure is a bad file, not a server error
            logger.info("Photo refused: the parser failed", exc_info=True)
            raise PhotoRejected(damaged) from None
        if image.format not in ALLOWED_FORMATS + _JPEG_FAMILY:
            raise PhotoRejected(f"Unsupported image format {image.format or 'unknown'}: use JPEG, PNG or WebP.")
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and image.format not in _JPEG_FAMILY:
            # Which frame shows the person is for the sender to choose, not for the product to guess.
            raise PhotoRejected(f"The image is animated ({frames} frames): send a single still photo.")
        width, height = image.size
        if width < 1 or height < 1:
            raise PhotoRejected("The image has no pixels.")
        _pixel_limit_check(width, height)
        try:
            image.load()
            # In place: a 40 MP photo must not be held two or three times over (1 GiB per worker).
            ImageOps.exif_transpose(image, in_place=True)
            rgb = _to_rgb(image)
            # Pixels only: the sender's text chunks and comments would otherwise follow into re-encodes.
            rgb.info = {}
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(too_many_pixels) from None
        except MemoryError:
            raise  # the server's shortage, not the file's fault: never reported as a damaged photo
        except Exception:  # noqa: BLE001 - as above: a decoder failure is the file's fault
            logger.info("Photo refused: the decoder failed", exc_info=True)
            raise PhotoRejected(damaged) from None
        finally:
            image.close()
    return DecodedPhoto(
        image=rgb,
        content_hash=hashlib.sha256(data).hexdigest(),
        source_format="JPEG" if image.format in _JPEG_FAMILY else image.format,
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        # Transparent areas become white, not black, so faces on cut-outs stay visible.
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image)
        return background
    if image.mode.startswith("I;16") or image.mode == "I":
        # The top 8 bits of each 16-bit sample, in integers: float64 arrays of 40 MP took 1 GiB.
        high_bytes = np.right_shift(np.asarray(image), 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(high_bytes, "L").convert("RGB")
    return image.convert("RGB")


def encode_jpeg(image: Image.Image, quality: int = 92) -> bytes:
    """JPEG bytes with no metadata at all (no EXIF, no GPS, no ICC profile)."""
    buffer = io.BytesIO()
    # Pillow copies image.info["comment"] into the file unless told otherwise (and fails past 64 KB).
    image.save(buffer, format="JPEG", quality=quality, optimize=True, comment=None)
    return buffer.getvalue()


def scaled_for_detection(image: Image.Image) -> tuple[np.ndarray, float]:
    """The photo as an RGB array no larger than FACE_DETECT_MAX_SIDE, and the scale applied."""
    max_side = settings.FACE_DETECT_MAX_SIDE
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(image)), scale


def jpeg2000_to_jpeg(data: bytes) -> bytes:
    """A JPEG 2000 image (an ANSI/NIST-ITL Type-10 face) decoded under the same size, pixel and
    decompression-bomb rules as decode_photo, and re-encoded as JPEG for the normal photo path; PhotoRejected
    otherwise. Uploads stay JPEG/PNG/WebP only: this decoder is reached from the NIST import alone."""
    from PIL import features

    if not features.check("jpg_2000"):
        raise PhotoRejected("JPEG 2000 face images cannot be read on this server.")
    damaged = "The JPEG 2000 image is truncated or damaged and cannot be read."
    too_many_pixels = f"The image has too many pixels; the limit is {settings.UPLOAD_MAX_PIXELS:,} pixels."
    photo_size_check(len(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=["JPEG2000"])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(too_many_pixels) from None
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - a parser failure is a bad file, not a server error
            logger.info("JPEG 2000 image refused: the parser failed", exc_info=True)
            raise PhotoRejected(damaged) from None
        try:
            width, height = image.size
            if width < 1 or height < 1:
                raise PhotoRejected("The image has no pixels.")
            _pixel_limit_check(width, height)  # from the header, before any pixel is decoded
            image.load()
            rgb = _to_rgb(image)
            rgb.info = {}
        except PhotoRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(too_many_pixels) from None
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - as above
            logger.info("JPEG 2000 image refused: the decoder failed", exc_info=True)
            raise PhotoRejected(damaged) from None
        finally:
            image.close()
    return encode_jpeg(rgb, quality=95)
