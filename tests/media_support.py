"""Tiny real images for the image tests, made at test time with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def image_bytes(width: int, height: int, fmt: str = "PNG", color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=fmt)
    return out.getvalue()


def write_image(
    path: Path, width: int = 120, height: int = 120, fmt: str = "PNG", color: str = "red"
) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = image_bytes(width, height, fmt, color)
    path.write_bytes(content)
    return content
