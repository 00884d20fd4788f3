"""Callback (notify) URLs per merchant and kind, as desired state. Pure.

`reconciler.yaml` gives each merchant `callbacks: {favor: URL, busifavor: URL}`. A callback is
not a stock: the plan holds one change per merchant and kind whose URL is configured, with
`setting: "callback"`, planned from three values:

- `desired`: the URL in reconciler.yaml;
- `recorded`: the URL apply last set (the state's `callbacks`), and any set still in doubt;
- `observed`: the URL WeChat Pay returns now (the refresh's GET), when it was read.

Desired = observed: nothing to send (a set in doubt that landed is settled by apply reading it
back). Recorded = desired but observed differs: someone changed it elsewhere, reported as
drift and never overwritten. Otherwise apply sets the desired URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.ids import body_digest, update_request_no
from reconciler.kinds import kind_of
from reconciler.operation import Operation, OpType
from reconciler.plan import Action, Change, FieldChange
from reconciler.state.model import CallbackRecord, State

SETTING = "callback"
"""`Change.setting` of a callback change."""
PERMISSION_CODES = frozenset({"NO_AUTH", "NOAUTH", "REQUEST_BLOCKED"})
"""WeChat Pay's codes for "no permission" (reference §6: 403 NO_AUTH, some pages NOAUTH; the
favor table's REQUEST_BLOCKED "调用商户无权限")."""


@dataclass(frozen=True)
class Unreadable:
    """The refresh could not read a callback: why, and whether it is a missing permission."""

    message: str
    permission: bool = False


Observed = str | None | Unreadable
"""What the refresh found: the URL, None (none set), or why it could not be read."""


def key(mchid: str, kind: str) -> str:
    return f"{mchid}/{kind}"


def change_id(mchid: str, kind: str) -> str:
    """The plan's id of a callback change; a `/` keeps it apart from every stock id (slugs)."""
    return f"callback/{kind}/{mchid}"


def permission_message(kind: str, mchid: str, detail: str) -> str:
    """The message for a "no permission" answer, naming what must be enabled."""
    needed = kind_of(kind).callback_permission
    return (
        f"merchant {mchid} may not set the {kind} ({kind_of(kind).label}) callback: enable "
        f"{needed} (WeChat Pay: {detail})"
    )


def set_operation(mchid: str, kind: str, url: str) -> Operation:
    body = kind_of(kind).callback_body(mchid, url)
    number = update_request_no(mchid, kind, SETTING, SETTING, body_digest(body))
    return Operation(OpType.CALLBACK, number, body, 0, {"notify_url": url})


def plan_callbacks(
    desired: Mapping[str, str],
    state: State,
    observed: Mapping[str, Observed] | None,
) -> list[Change]:
    """One change per configured (merchant, kind): `desired` and `observed` keyed by `key`."""
    out = []
    for k in sorted(desired):
        mchid, kind = k.split("/", 1)
        out.append(_one(mchid, kind, desired[k], state.callbacks.get(k), observed, k))
    return out


def _one(
    mchid: str,
    kind: str,
    url: str,
    recorded: CallbackRecord | None,
    observed: Mapping[str, Observed] | None,
    k: str,
) -> Change:
    base: dict[str, Any] = {
        "id": change_id(mchid, kind),
        "kind": kind,
        "merchant": mchid,
        "setting": SETTING,
    }
    path = f"callbacks.{kind}"
    applied = recorded.url if recorded is not None else None
    in_doubt = recorded.pending if recorded is not None else None
    seen: Observed = observed.get(k) if observed is not None and k in observed else Unreadable("")
    if isinstance(seen, Unreadable):
        if seen.permission:
            return Change(
                **base,
                action=Action.BLOCKED,
                reason=seen.message,
                suggestion=f"enable {kind_of(kind).callback_permission}, then plan again",
            )
        if applied == url and in_doubt is None:
            return Change(**base, action=Action.NOOP, reason="set as recorded (not read back)")
        note = f" (could not read it back: {seen.message})" if seen.message else ""
        return _set(base, path, mchid, kind, applied, url, f"callback {kind}{note}")
    if seen == url:
        if applied == url and in_doubt is None:
            return Change(**base, action=Action.NOOP, reason="in sync")
        return Change(
            **base,
            action=Action.RECOVER,
            reason="WeChat Pay shows this URL, the state does not record it yet; apply reads it back and records it (nothing is sent unless it differs)",
            operations=(set_operation(mchid, kind, url),),
        )
    if applied == url and in_doubt is None:
        return Change(
            **base,
            action=Action.DRIFT,
            reason="WeChat Pay shows another notify URL than the one applied (changed elsewhere?); reconciler does not overwrite it",
            fields=(FieldChange(path, url, seen),),
            suggestion="to keep WeChat Pay's URL, write it in reconciler.yaml",
        )
    return _set(base, path, mchid, kind, seen, url, f"callback {kind}")


def _set(
    base: dict[str, Any], path: str, mchid: str, kind: str, before: str | None, url: str, why: str
) -> Change:
    return Change(
        **base,
        action=Action.UPDATE,
        reason=f"{why}: {before or '(none)'} → {url}",
        fields=(FieldChange(path, before, url),),
        operations=(set_operation(mchid, kind, url),),
    )
