"""Image fields: a URL from WeChat Pay's marketing image upload, or a file to upload.

Every field that takes an uploaded image's URL is declared with `ImageRef` beside its type:

    merchant_logo: Annotated[ImageUrl | None, ImageRef(LOGO)] = ...

so the field may hold a URL (sent as written) or `{file: images/logo.png}`, a path relative to
the stock file. The limits of each role (logo, coupon image, finder cover) live here, as data;
`reconciler.media` reads the files (the shell) and hands their facts back as `ImageFacts`.

Between plan and apply a file stands in the body as a token, `media:sha256:<hex>`: the plan is
deterministic (the token depends on the file's content only), and apply swaps each token for
the URL the upload returned (or the one the state already maps that content to) before it
sends anything. Pure.
"""

from __future__ import annotations

import posixpath
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag

from reconciler.diagnostic_messages import Msg, msg
from reconciler.spec.common import Strict

FORMATS: Mapping[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "BMP": (".bmp",),
}
"""The formats the upload takes (JPG, BMP, PNG) and the suffixes that name each."""

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
"""The upload refuses larger files ("文件大小不能超过2M")."""

TOKEN_PREFIX = "media:sha256:"


@dataclass(frozen=True)
class ImageRole:
    """What one kind of image field expects."""

    name: str
    sizes: tuple[tuple[int, int], ...]
    """The pixel sizes the docs give (width, height); empty when they give none."""
    max_bytes: int
    strict_bytes: bool = False
    """The limit is "under", not "at most" (the logo: under 1 MB)."""


LOGO = ImageRole("logo", ((120, 120),), 1024 * 1024, strict_bytes=True)
COUPON_IMAGE = ImageRole("coupon image", ((850, 350),), MAX_UPLOAD_BYTES)
BUSIFAVOR_COUPON_IMAGE = ImageRole("coupon image", ((850, 350), (1074, 603)), MAX_UPLOAD_BYTES)
"""The sources disagree for 商家券 (850×350 in one SDK, 1074×603 in the Go SDK): either is
accepted without a warning."""
FINDER_COVER = ImageRole("finder video cover", (), MAX_UPLOAD_BYTES)
"""No pixel size is documented for the finder video cover: only the upload's own limits."""


@dataclass(frozen=True)
class ImageRef:
    """Declared on a field: it takes an uploaded image's URL, or a file to upload."""

    role: ImageRole


class ImageFile(Strict):
    """`{file: path}`: an image to upload, relative to the stock file."""

    file: str = Field(min_length=1, max_length=1024)
    """Path of a JPG, BMP or PNG file, relative to the stock file's folder."""


def _branch(value: Any) -> str:
    return "image-file" if isinstance(value, dict | ImageFile) else "image-url"


# Tagged, so that a mistake reports the one branch the value was meant for (a string is a URL,
# a mapping a file), not both.
ImageUrl = Annotated[
    Annotated[str, Field(min_length=1), Tag("image-url")] | Annotated[ImageFile, Tag("image-file")],
    Discriminator(_branch),
]
"""A media URL, or a file apply uploads to get one."""
ShortImageUrl = Annotated[
    Annotated[str, Field(min_length=1, max_length=128), Tag("image-url")]
    | Annotated[ImageFile, Tag("image-file")],
    Discriminator(_branch),
]
"""The same, where the docs cap the URL at 128 characters (the 代金券's)."""


@dataclass(frozen=True)
class ImageFacts:
    """What the file holds, read by `reconciler.media`: the content's digest, its size in
    bytes, the format its header declares (JPEG, PNG, BMP, or what else it is) and pixels."""

    path: str
    """Relative to the repository root, `/`-separated."""
    sha256: str
    size: int
    format: str
    width: int
    height: int

    @property
    def filename(self) -> str:
        return posixpath.basename(self.path)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [] if annotation is ImageFile else [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


@cache
def image_fields(model: type[BaseModel]) -> Mapping[str, ImageRole]:
    """Every dotted field path of `model` declared with `ImageRef`, with its role."""
    out: dict[str, ImageRole] = {}

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            for meta in info.metadata:
                if isinstance(meta, ImageRef):
                    out[prefix + name] = meta.role
            for sub in _models_in(info.annotation):
                walk(sub, prefix + name + ".")

    walk(model, "")
    return out


def image_files(spec: BaseModel) -> Iterator[tuple[str, ImageRole, ImageFile]]:
    """(dotted path, role, file reference) of every image field of `spec` written as a file."""
    for path, role in image_fields(type(spec)).items():
        node: Any = spec
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, ImageFile):
            yield path, role, node


def file_key(stock_file: str, ref: str) -> str | None:
    """The root-relative path of `ref` (relative to the stock file `stock_file`, itself
    root-relative), or None when it leaves the repository or is absolute."""
    if ref.startswith("/") or "\\" in ref:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(stock_file), ref))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        return None
    return joined


def token(sha256: str) -> str:
    """The stand-in for an image whose URL apply learns from the upload."""
    return TOKEN_PREFIX + sha256


def token_sha(value: object) -> str | None:
    """The content digest a token stands for, or None for any other value."""
    if isinstance(value, str) and value.startswith(TOKEN_PREFIX):
        return value[len(TOKEN_PREFIX) :]
    return None


def tokens_in(value: Any) -> list[str]:
    """The digests of every token in a JSON value, in order of appearance, without repeats."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        else:
            sha = token_sha(node)
            if sha is not None and sha not in found:
                found.append(sha)

    walk(value)
    return found


def substitute(value: Any, urls: Mapping[str, str]) -> Any:
    """`value` with every token replaced by the URL `urls` maps its digest to (a KeyError
    names a digest without one)."""
    if isinstance(value, dict):
        return {k: substitute(v, urls) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, urls) for v in value]
    sha = token_sha(value)
    return urls[sha] if sha is not None else value


def size_text(size: int) -> str:
    """34 KB, 1.5 MB: how a person reads a file size (1 KB = 1024 bytes)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def facts_text(facts: ImageFacts) -> str:
    """`logo.png (34 KB, 120×120)`."""
    return f"{facts.filename} ({size_text(facts.size)}, {facts.width}×{facts.height})"


@dataclass(frozen=True)
class ImageProblem:
    error: bool
    said: Msg

    @property
    def message(self) -> str:
        return self.said.en


def check_image(facts: ImageFacts, role: ImageRole) -> list[ImageProblem]:
    """The documented limits, against what the file really is.

    The format, the suffix and the byte sizes are hard limits of the upload (errors); the pixel
    sizes are what the docs say the field's image should be (warnings: WeChat Pay scales)."""
    out: list[ImageProblem] = []
    name = facts.filename
    suffix = posixpath.splitext(name)[1].lower()
    counted = f"{size_text(facts.size)} ({facts.size:,} bytes)"
    if facts.format not in FORMATS:
        out.append(
            ImageProblem(
                True,
                msg("image.format", name=name, format=facts.format),
            )
        )
    elif suffix not in FORMATS[facts.format]:
        wanted = _either(FORMATS[facts.format])
        out.append(
            ImageProblem(
                True,
                msg(
                    "image.suffix",
                    name=name,
                    format=facts.format,
                    suffix=suffix or msg("image.no_suffix"),
                    wanted=wanted,
                ),
            )
        )
    if facts.size > MAX_UPLOAD_BYTES:
        out.append(
            ImageProblem(
                True,
                msg("image.too_large", name=name, size=counted),
            )
        )
    elif facts.size >= role.max_bytes if role.strict_bytes else facts.size > role.max_bytes:
        out.append(
            ImageProblem(
                True,
                msg(
                    "image.role_too_large",
                    name=name,
                    size=counted,
                    role=_role(role),
                    max=size_text(role.max_bytes),
                ),
            )
        )
    if role.sizes and (facts.width, facts.height) not in role.sizes:
        sizes = _either([f"{w}×{h}" for w, h in role.sizes])
        out.append(
            ImageProblem(
                False,
                msg(
                    "image.pixels",
                    name=name,
                    pixels=f"{facts.width}×{facts.height}",
                    role=_role(role),
                    wanted=sizes,
                ),
            )
        )
    return out


def _role(role: ImageRole) -> Msg:
    return msg(f"image_role.{role.name.replace(' ', '_')}")


def _either(items: Sequence[str]) -> str | Msg:
    """`a or b or c`, in the reader's language."""
    return items[0] if len(items) == 1 else msg("either", a=items[0], b=_either(items[1:]))
