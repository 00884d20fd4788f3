"""Marketing image upload: POST /v3/marketing/favor/media/image-upload (multipart/form-data).

Two parts: `meta`, the JSON `{"filename", "sha256"}`, and `file`, the bytes. Only `meta` is
signed: the request message's body line is that JSON exactly as sent, so `signed_part` hands
it to the signature check in place of the body. The usual mistakes are refused as WeChat Pay's
users report them: a signature over the whole multipart body, a quoted boundary and a digest
that is not the file's hex SHA-256 (Base64, or another file's) are 401 SIGN_ERROR; a missing
part, a file name that differs between the parts, a suffix that is not the real format, a
format other than JPG/BMP/PNG and a file over 2 MB are 400 PARAM_ERROR.

The answer's `media_url` depends on the content only, so the same image gives the same URL.
Upper-case hex is accepted (hex is hex; the docs only say "sha256"); the client sends lower.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass

import httpx

from reconciler.emulator.context import Reply, RequestContext
from reconciler.emulator.failures import ApiFailure
from reconciler.spec.images import FORMATS, MAX_UPLOAD_BYTES

UPLOAD_PATH = "/v3/marketing/favor/media/image-upload"
MEDIA_URL = "https://wxpaylogo.qpic.cn/wxpaylogo/emulator/{digest}/0"

_BOUNDARY = re.compile(r";\s*boundary=([^;]*)", re.IGNORECASE)
_PARAM = re.compile(r';\s*([a-z]+)="([^"]*)"', re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    data: bytes


def _param_error(message: str) -> ApiFailure:
    return ApiFailure(400, "PARAM_ERROR", message)


def _sign_error(message: str) -> ApiFailure:
    return ApiFailure(401, "SIGN_ERROR", message)


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """The parts of a multipart/form-data body, by name (strict: CRLF delimiters)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiFailure(400, "INVALID_REQUEST", "Http头Content-Type值应为multipart/form-data")
    found = _BOUNDARY.search(content_type)
    if found is None or not found.group(1).strip():
        raise _param_error("Content-Type缺少boundary")
    boundary = found.group(1).strip()
    if boundary.startswith('"'):
        # Taken literally, as WeChat Pay does: no part is found, so `meta` cannot be verified.
        raise _sign_error(
            "错误的签名,验签失败: the multipart boundary is quoted in Content-Type; send it unquoted"
        )
    delimiter = b"--" + boundary.encode("latin-1")
    if not body.startswith(delimiter + b"\r\n"):
        raise _param_error("multipart请求体格式错误: the body must start with the boundary")
    parts: dict[str, Part] = {}
    rest = body[len(delimiter) + 2 :]
    while True:
        end = rest.find(b"\r\n" + delimiter)
        if end < 0:
            raise _param_error("multipart请求体格式错误: no closing boundary")
        segment, rest = rest[:end], rest[end + 2 + len(delimiter) :]
        head, sep, data = segment.partition(b"\r\n\r\n")
        if not sep:
            raise _param_error("multipart请求体格式错误: a part has no header")
        part = _part(head.decode("utf-8", errors="replace"), data)
        parts[part.name] = part
        if rest.startswith(b"--"):
            return parts
        if not rest.startswith(b"\r\n"):
            raise _param_error("multipart请求体格式错误: a boundary is not followed by CRLF")
        rest = rest[2:]


def _part(head: str, data: bytes) -> Part:
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-disposition":
            params = {k.lower(): v for k, v in _PARAM.findall(value)}
            if "name" in params:
                return Part(params["name"], params.get("filename"), data)
    raise _param_error("multipart请求体格式错误: a part has no Content-Disposition name")


def signed_part(request: httpx.Request, body: bytes) -> bytes:
    """What the request's signature covers: `meta` for the upload, the body for the rest."""
    if request.url.path != UPLOAD_PATH:
        return body
    parts = parse_multipart(request.headers.get("Content-Type", ""), body)
    meta = parts.get("meta")
    if meta is None:
        raise _param_error("缺少meta参数: the upload needs a part named meta")
    return meta.data


def _upload(ctx: RequestContext) -> Reply:
    parts = parse_multipart(ctx.request.headers.get("Content-Type", ""), ctx.body)
    meta_part, file_part = parts.get("meta"), parts.get("file")
    if meta_part is None or file_part is None:
        raise _param_error("缺少meta或file参数: the upload needs the parts meta and file")
    try:
        meta = json.loads(meta_part.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _param_error("meta不是合法的JSON") from None
    if not isinstance(meta, dict):
        raise _param_error("meta不是合法的JSON对象")
    filename, digest = meta.get("filename"), meta.get("sha256")
    if not isinstance(filename, str) or not 1 <= len(filename) <= 128:
        raise _param_error("meta.filename: 1 to 128 characters")
    if not isinstance(digest, str):
        raise _param_error("meta.sha256: required")
    content = file_part.data
    actual = hashlib.sha256(content).hexdigest()
    if not _HEX.fullmatch(digest) or digest.lower() != actual:
        raise _sign_error(
            "错误的签名,验签失败: meta.sha256 is not the hex SHA-256 of the file part "
            "(Base64, or another file's digest?)"
        )
    if file_part.filename != filename:
        raise _param_error(
            f"文件名不一致: the file part is named {file_part.filename!r}, meta says {filename!r}"
        )
    suffix = posixpath.splitext(filename)[1].lower()
    if not any(suffix in s for s in FORMATS.values()):
        raise _param_error("文件名必须以JPG、BMP、PNG为后缀")
    if len(content) > MAX_UPLOAD_BYTES:
        raise _param_error("文件大小不能超过2M")
    from reconciler.media import ImageFileError, facts_of

    try:
        facts = facts_of(filename, content)
    except ImageFileError:
        raise _param_error("图片格式不支持: 媒体图片只支持JPG、BMP、PNG格式") from None
    if facts.format not in FORMATS:
        raise _param_error("图片格式不支持: 媒体图片只支持JPG、BMP、PNG格式")
    if suffix not in FORMATS[facts.format]:
        raise _param_error(f"文件后缀与图片格式不符: the file is {facts.format}")
    key = f"{ctx.mchid}/{actual}"
    ctx.store.uploads[key] = ctx.store.uploads.get(key, 0) + 1
    ctx.commit()
    return Reply(200, {"media_url": MEDIA_URL.format(digest=actual[:40])})


HANDLERS = {"media.image_upload": _upload}
