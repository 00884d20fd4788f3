"""Errors raised by the WeChat Pay client, as values with the fields a user needs.

Every `str()` is one line that says what happened and what to do. None of them ever carries
a private key, the APIv3 key or an Authorization header value: they are built only from the
method, the path, the status, WeChat Pay's own error body and the Request-ID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ApiError, ConfigError

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OUTCOME_UNKNOWN = (
    "the outcome is unknown (WeChat Pay may have applied it): re-run with the same parameters"
    " and request number (out_request_no), never new ones"
)
_SIGN_LINES = ("method", "url", "timestamp", "nonce", "body")


class CredentialError(ConfigError, ApiError):
    """A key, certificate or APIv3 key is missing or unusable; the message names its source."""


@dataclass(frozen=True)
class SignInformation:
    """What WeChat Pay reconstructed when it rejected our signature (401 SIGN_ERROR)."""

    method: str | None
    url: str | None
    sign_message_length: int | None
    truncated_sign_message: str | None

    @classmethod
    def from_detail(cls, detail: object) -> SignInformation | None:
        info = detail.get("sign_information") if isinstance(detail, Mapping) else None
        if not isinstance(info, Mapping):
            return None
        length = info.get("sign_message_length")
        return cls(
            method=_str_or_none(info.get("method")),
            url=_str_or_none(info.get("url")),
            sign_message_length=length if isinstance(length, int) else None,
            truncated_sign_message=_str_or_none(info.get("truncated_sign_message")),
        )

    def compare(self, client_message: bytes) -> str:
        """A short hint locating where the server's message and the one we signed differ."""
        ours = client_message.decode("utf-8", errors="replace")
        hint = f"server signed {self.sign_message_length} bytes, we signed {len(client_message)}"
        theirs = self.truncated_sign_message
        if theirs is None:
            return hint
        # The server truncates its copy, so its last line may be cut short.
        server_lines = theirs.split("\n")
        for index, (server_line, our_line) in enumerate(
            zip(server_lines, ours.split("\n"), strict=False)
        ):
            cut = index == len(server_lines) - 1 and our_line.startswith(server_line)
            if server_line != our_line and not cut:
                name = _SIGN_LINES[index] if index < len(_SIGN_LINES) else f"line {index + 1}"
                return f"{hint}; first difference in the {name} line: server {server_line!r} vs ours {our_line!r}"
        if self.sign_message_length not in (None, len(client_message)):
            return (
                f"{hint}; the visible prefix matches, so the body sent differs from the one signed"
            )
        return f"{hint}; the messages match, so the private key does not belong to serial_no"


class ApiResponseError(ApiError):
    """WeChat Pay answered with a non-2xx status (or kept answering 202 until retries ran out)."""

    def __init__(
        self,
        *,
        status: int,
        method: str,
        path: str,
        code: str | None,
        message: str | None,
        detail: object = None,
        request_id: str | None = None,
        attempts: int = 1,
        signature_verified: bool | None = None,
        client_sign_message: bytes | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.code = code
        self.message = message
        self.detail = detail
        self.request_id = request_id
        self.attempts = attempts
        self.signature_verified = signature_verified
        self.sign_information = SignInformation.from_detail(detail)
        self.client_sign_message = client_sign_message
        super().__init__(self._line())

    @property
    def retryable(self) -> bool:
        return self.status in (202, 429) or self.status >= 500

    @property
    def outcome_unknown(self) -> bool:
        """A 5xx to a change may come after WeChat Pay applied it (429 and 202 are not applied)."""
        return self.status >= 500 and self.method.upper() in _MUTATING

    def _line(self) -> str:
        code = " ".join(p for p in (str(self.status), self.code) if p)
        line = f"WeChat Pay answered {self.method} {self.path} with {code}"
        if self.message:
            line += f": {_one_line(self.message)}"
        field = _field_hint(self.detail)
        context = [p for p in (field, self._request_id_part(), self._attempts_part()) if p]
        if context:
            line += f" ({', '.join(context)})"
        if self.sign_information is not None and self.client_sign_message is not None:
            line += f"; {self.sign_information.compare(self.client_sign_message)}"
        if self.status == 202:
            line += "; it was accepted but not processed, repeat it with the same parameters"
        elif self.outcome_unknown:
            line += f"; {OUTCOME_UNKNOWN}"
        elif self.retryable:
            line += "; WeChat Pay asks to retry later with the same parameters"
        if self.signature_verified is False:
            line += "; this error answer's signature did not verify, it may be forged"
        return line

    def _request_id_part(self) -> str:
        return f"Request-ID {self.request_id}" if self.request_id else ""

    def _attempts_part(self) -> str:
        return f"after {self.attempts} attempts" if self.attempts > 1 else ""

    def __repr__(self) -> str:
        return (
            f"ApiResponseError(status={self.status}, code={self.code!r}, "
            f"request_id={self.request_id!r}, path={self.path!r})"
        )

    @classmethod
    def parse(
        cls,
        *,
        status: int,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        attempts: int = 1,
        signature_verified: bool | None = None,
        client_sign_message: bytes | None = None,
    ) -> ApiResponseError:
        """Read `{code, message, detail}` loosely: any JSON shape, or none at all."""
        code: str | None = None
        message: str | None = None
        detail: object = None
        parsed = _loads(body)
        if isinstance(parsed, Mapping):
            code = _str_or_none(parsed.get("code"))
            message = _str_or_none(parsed.get("message"))
            detail = parsed.get("detail")
        elif body:
            message = body[:200].decode("utf-8", errors="replace").strip() or None
        if status == 202 and message is None:
            message = "accepted, not processed"
        return cls(
            status=status,
            method=method,
            path=path,
            code=code,
            message=message,
            detail=detail,
            request_id=request_id_of(headers),
            attempts=attempts,
            signature_verified=signature_verified,
            client_sign_message=client_sign_message,
        )


class TransportError(ApiError):
    """The network failed (connect, timeout, disconnect) and retries did not help."""

    def __init__(self, *, method: str, path: str, reason: str, attempts: int, sent: bool) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        self.attempts = attempts
        # A request that may have reached the server can have taken effect.
        self.outcome_unknown = sent and method.upper() in _MUTATING
        line = f"{method} {path} failed after {attempts} attempt(s): {reason}"
        if self.outcome_unknown:
            line += f"; {OUTCOME_UNKNOWN}"
        else:
            line += "; check the network and the base URL, then retry"
        super().__init__(line)


class RequestCancelled(ApiError):
    """The caller's cancel event stopped a call before its next request went on the wire.

    `sent` is False when no attempt of the call reached the wire: nothing happened at WeChat
    Pay and the call may be forgotten. It is True when an earlier attempt was sent and the call
    was stopped before a retry (in its back-off): the outcome is unknown, so the caller must keep
    its intent pending. `attempts` counts the attempts sent; `waiting` says what the call was
    waiting for when it was stopped.
    """

    def __init__(self, *, method: str, path: str, sent: bool, attempts: int, waiting: str) -> None:
        self.method = method
        self.path = path
        self.sent = sent
        self.attempts = attempts
        self.waiting = waiting
        self.outcome_unknown = sent and method.upper() in _MUTATING
        if not sent:
            line = (
                f"{method} {path} cancelled before sending, {waiting}; nothing reached WeChat Pay"
            )
        else:
            line = f"{method} {path} cancelled after an attempt whose outcome is unknown, {waiting}"
            if self.outcome_unknown:
                line += f"; {OUTCOME_UNKNOWN}"
        super().__init__(line)

    def __repr__(self) -> str:
        return f"RequestCancelled(method={self.method!r}, path={self.path!r}, sent={self.sent})"


class ResponseVerificationError(ApiError):
    """A response did not carry a valid WeChat Pay signature, so its content is not trusted."""

    def __init__(
        self,
        reason: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        serial: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.method = method
        self.path = path
        self.status = status
        self.serial = serial
        self.request_id = request_id
        self.outcome_unknown = method.upper() in _MUTATING
        super().__init__(self._line())

    def _headline(self) -> str:
        return "rejected the response: it may be forged or tampered with"

    def _line(self) -> str:
        where = f" to {self.method} {self.path}" if self.method else ""
        ctx = [str(self.status)] if self.status is not None else []
        if self.request_id:
            ctx.append(f"Request-ID {self.request_id}")
        context = f" ({', '.join(ctx)})" if ctx else ""
        line = f"WeChat Pay response{where}{context}: {self._headline()}; {self.reason}"
        if self.outcome_unknown:
            return f"{line}; {OUTCOME_UNKNOWN}"
        return f"{line}; {self._advice()}"

    def _advice(self) -> str:
        return (
            "run the command again; if this persists, check what sits between here and WeChat Pay"
        )


class SignatureProbeError(ResponseVerificationError):
    """WeChat Pay deliberately sent a `WECHATPAY/SIGNTEST/` signature to test that we verify."""

    def _headline(self) -> str:
        return (
            "this was a WeChat Pay signature probe (WECHATPAY/SIGNTEST/...), sent to check that"
            " answers are verified; it was rejected as it should be and its content ignored"
        )

    def _advice(self) -> str:
        return "run the command again"


class CertificateUnavailableError(ResponseVerificationError):
    """A response could not be checked because the platform certificates could not be fetched."""

    def _headline(self) -> str:
        return "its signature could not be checked, so its content is not used"

    def _advice(self) -> str:
        return "run the command again once the certificate download works"


class UnexpectedResponseError(ApiError):
    """A verified 2xx response whose body is not what the endpoint documents."""

    def __init__(self, *, method: str, path: str, problem: str, request_id: str | None) -> None:
        self.method = method
        self.path = path
        self.request_id = request_id
        rid = f" (Request-ID {request_id})" if request_id else ""
        super().__init__(f"WeChat Pay answered {method} {path}{rid} with {problem}")


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """`Request-ID` in any letter case (Go spells it Request-Id, Java Request-ID)."""
    for name, value in headers.items():
        if name.lower() == "request-id":
            return value
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _field_hint(detail: object) -> str:
    """`field /stock_name: issue` from a `{field, issue}` detail, the common error shape."""
    if not isinstance(detail, Mapping) or not isinstance(detail.get("field"), str):
        return ""
    issue = detail.get("issue")
    return f"field {detail['field']}" + (f": {_one_line(issue)}" if isinstance(issue, str) else "")


def _loads(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
