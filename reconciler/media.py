"""Image files named by stock files: reading their facts, checking them, feeding the planner.

The shell around `reconciler.spec.images`: it opens the files (Pillow reads the header for the
real format and pixel size, never decoding the image), digests their bytes, and turns what is
wrong into findings on the field that names the file. The planner gets the facts as data
(`catalog`), so it stays pure.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import warnings
from collections.abc import Iterable
from pathlib import Path

from reconciler.desired import DesiredStock
from reconciler.diagnostic_messages import Msg, msg
from reconciler.diagnostics import Severity
from reconciler.spec.findings import Finding, finding
from reconciler.spec.images import (
    MAX_UPLOAD_BYTES,
    ImageFacts,
    check_image,
    file_key,
    image_files,
    size_text,
)
from reconciler.spec.stock import Stock

READ_LIMIT = 8 * MAX_UPLOAD_BYTES
"""A file larger than this is not read at all: its size alone is the answer."""


class ImageFileError(Exception):
    """The file cannot be used: missing, unreadable, not an image. The message says which."""

    def __init__(self, message: Msg) -> None:
        super().__init__(message.en)
        self.message = message


def root_of(path: Path, file: str) -> Path:
    """The repository root a stock file is shown relative to: `file` is `path` relative to
    it, or, when `file` is not relative, the stock file's own folder (nothing outside it)."""
    parts = Path(file).parts
    if Path(file).is_absolute() or ".." in parts:
        return Path(os.path.abspath(path)).parent
    base = Path(os.path.abspath(path))
    for _ in parts:
        base = base.parent
    return base


def read_facts(root: Path, key: str) -> ImageFacts:
    """The facts of the image at `key` (root-relative, `/`-separated)."""
    path = root.joinpath(*key.split("/"))
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise ImageFileError(msg("image.outside", key=key))
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ImageFileError(msg("image.not_file", key=key))
        if size > READ_LIMIT:
            counted = f"{size_text(size)} ({size:,} bytes)"
            raise ImageFileError(msg("image.too_large", name=key, size=counted))
        content = path.read_bytes()
    except FileNotFoundError:
        raise ImageFileError(msg("image.missing", key=key)) from None
    except OSError as exc:
        raise ImageFileError(_unreadable(key, exc)) from None
    return facts_of(key, content)


def facts_of(key: str, content: bytes) -> ImageFacts:
    """The facts of image bytes: Pillow opens the header only (format and size), no decode."""
    from PIL import Image, UnidentifiedImageError  # imported by the commands that need it

    digest = hashlib.sha256(content).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we never decode
            with Image.open(io.BytesIO(content)) as image:
                width, height = image.size
                found = image.format or "unknown"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ImageFileError(msg("image.unreadable", name=posixpath.basename(key))) from None
    return ImageFacts(key, digest, len(content), found, width, height)


def image_findings(stock: Stock, file: str, root: Path) -> list[Finding]:
    """Every image field written as a file, checked: it exists inside the repository, it is
    really a JPG, BMP or PNG named for what it is, and within the field's documented limits."""
    out: list[Finding] = []
    for path, role, ref in image_files(stock.spec):
        where = ("spec", *path.split("."), "file")
        key = file_key(file, ref.file)
        if key is None:
            said = msg("image.path", file=ref.file)
            out.append(finding(where, Severity.ERROR, said, "image_path"))
            continue
        try:
            facts = read_facts(root, key)
        except ImageFileError as exc:
            out.append(finding(where, Severity.ERROR, exc.message, "image_file"))
            continue
        for problem in check_image(facts, role):
            severity = Severity.ERROR if problem.error else Severity.WARNING
            out.append(finding(where, severity, problem.said, "image_limits"))
    return out


def catalog(stocks: Iterable[DesiredStock], root: Path) -> dict[str, ImageFacts]:
    """The facts of every image file the stocks name, by root-relative path (for the planner).
    A file that cannot be read is left out: validation has already reported it."""
    out: dict[str, ImageFacts] = {}
    for loaded in stocks:
        for _, _, ref in loaded.images:
            key = file_key(loaded.file, ref.file)
            if key is None or key in out:
                continue
            try:
                out[key] = read_facts(root, key)
            except ImageFileError:
                continue
    return out


def read_upload(root: Path, key: str, sha256: str) -> bytes:
    """The bytes to upload for `key`, refused when they are no longer the planned content."""
    try:
        content = root.joinpath(*key.split("/")).read_bytes()
    except OSError as exc:
        raise ImageFileError(_unreadable(key, exc)) from None
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ImageFileError(msg("image.changed", key=key, sha=sha256[:12]))
    return content


def _unreadable(key: str, exc: OSError) -> Msg:
    return msg("image.cannot_read", key=key, reason=str(exc.strerror or exc))
