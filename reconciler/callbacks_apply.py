"""Setting and reading merchants' notify URLs (POST/GET /v3/marketing/{kind}/callbacks).

The set is recorded in the state before it is sent (`CallbackRecord.pending`) and as the URL
once WeChat Pay accepted it. A set in doubt is harmless to repeat (the call is 幂等重入), but
apply reads the URL back first when it settles one, and sends nothing if it is already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from reconciler.callbacks import PERMISSION_CODES, Observed, Unreadable, key, permission_message
from reconciler.codes_apply import InDoubt, NotSent, Recorder
from reconciler.errors import ApiError, ReconcilerError
from reconciler.operation import Operation
from reconciler.plan import Action, Change
from reconciler.wechatpay.errors import (
    ApiResponseError,
    RequestCancelled,
    ResponseVerificationError,
    TransportError,
)


class CallbackApi(Protocol):
    def get_callback(self, kind: str, mchid: str) -> str | None: ...
    def set_callback(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


def is_permission(exc: Exception) -> bool:
    return isinstance(exc, ApiResponseError) and (exc.code in PERMISSION_CODES or exc.status == 403)


def read(api: CallbackApi, kind: str, mchid: str) -> Observed:
    """The URL WeChat Pay holds (None: none set), or why it could not be read."""
    try:
        return api.get_callback(kind, mchid)
    except ApiError as exc:
        if is_permission(exc):
            return Unreadable(permission_message(kind, mchid, str(exc)), permission=True)
        return Unreadable(str(exc))


def read_all(apis: Mapping[str, CallbackApi], wanted: Iterable[str]) -> dict[str, Observed]:
    """The refresh: every configured `<mchid>/<kind>` read back."""
    out: dict[str, Observed] = {}
    for k in sorted(wanted):
        mchid, kind = k.split("/", 1)
        out[k] = read(apis[mchid], kind, mchid)
    return out


def send(rec: Recorder, api: CallbackApi, change: Change, op: Operation) -> str:
    """Set the URL (or settle a set in doubt); returns what happened, for the report."""
    kind, mchid = change.kind, change.merchant
    url = str(op.after["notify_url"])
    k = key(mchid, kind)
    if change.action is Action.RECOVER or (
        rec.state().callbacks.get(k, None) is not None
        and (rec.state().callbacks[k].pending is not None)
    ):
        seen = read(api, kind, mchid)
        if seen == url:
            rec.save(lambda s: s.set_callback(k, url=url, pending=None))
            return f"{kind} callback is {url} (read back, nothing sent)"
    rec.save(lambda s: s.set_callback(k, pending=url))
    try:
        api.set_callback(kind, op.body)
    except RequestCancelled as exc:
        if not exc.sent:
            rec.save(lambda s: s.set_callback(k, pending=None))
            raise NotSent(f"interrupted before the {kind} callback was set") from None
        raise InDoubt(
            f"the {kind} callback set's outcome is unknown ({exc}); the next apply reads it back"
        ) from None
    except ApiResponseError as exc:
        if exc.outcome_unknown or exc.retryable:
            raise InDoubt(
                f"the {kind} callback set's outcome is unknown ({exc}); the next apply reads it back"
            ) from None
        rec.save(lambda s: s.set_callback(k, pending=None))
        if is_permission(exc):
            raise ReconcilerError(permission_message(kind, mchid, str(exc))) from None
        raise ReconcilerError(f"{kind} callback refused: {exc}") from None
    except (TransportError, ResponseVerificationError) as exc:
        if not exc.outcome_unknown:
            rec.save(lambda s: s.set_callback(k, pending=None))
            raise
        raise InDoubt(
            f"the {kind} callback set's outcome is unknown ({exc}); the next apply reads it back"
        ) from None
    rec.save(lambda s: s.set_callback(k, url=url, pending=None))
    return f"{kind} callback set to {url}"
