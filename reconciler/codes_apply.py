"""Uploading 商家券 code batches, crash-safe, and reading the pool back.

Each batch is recorded in the state before it is sent (`CodeBatch`, not done) and again once
WeChat Pay answered (done, with the codes it holds and those it refused). A batch recorded but
not done after a crash is resent with the same upload_request_no and the same codes: WeChat
Pay either answers it again (a repeated number) or refuses the number as used, and then the
code list says whether the batch landed. Whether a repeated upload_request_no is answered or
refused is not documented (docs/codes-and-callbacks.md); both are handled, and a code is never
sent under a second number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from reconciler.codes import uploaded
from reconciler.errors import ReconcilerError
from reconciler.operation import Operation
from reconciler.plan import Change
from reconciler.state.model import State
from reconciler.wechatpay.errors import (
    ApiResponseError,
    RequestCancelled,
    ResponseVerificationError,
    TransportError,
)

NOT_READY_CODES = frozenset({"STATEMENT_CREATING"})
"""WeChat Pay is still setting the new stock up (reference §7.4): the batch was not taken."""
USED_NUMBER_CODES = frozenset({"RESOURCE_ALREADY_EXISTS"})
DEFAULT_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Waits before each retry of a batch WeChat Pay answered with STATEMENT_CREATING or 429."""
LIST_PAGE = 100


class CodeApi(Protocol):
    """The code pool calls (the real client, or tests' fake)."""

    def upload_codes(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def list_codes(self, stock_id: str, offset: int, limit: int) -> dict[str, Any]: ...


class InDoubt(ReconcilerError):
    """A request whose outcome is unknown: its intent stays in the state for the next apply."""


class NotSent(ReconcilerError):
    """Stopped before the request reached WeChat Pay: nothing happened."""


@dataclass
class Recorder:
    """What the executors need of the applier: the state, a durable save, the clock, and a
    wait that returns True when apply is being stopped."""

    state: Callable[[], State]
    save: Callable[[Callable[[State], State]], State]
    now: Callable[[], datetime]
    wait: Callable[[float], bool]
    delays: Sequence[float] = DEFAULT_DELAYS


def upload(rec: Recorder, api: CodeApi, change: Change, op: Operation) -> str:
    """Send one batch (recorded before and after); returns what happened, for the report."""
    sid, number = change.id, op.request_no
    assert op.stock_id is not None
    codes = [str(c) for c in op.body["coupon_code_list"]]
    fresh = number not in rec.state().stock(sid).code_batches
    rec.save(lambda s: s.record_code_batch(sid, number, codes, rec.now()))
    answer = _send(rec, api, op, fresh, change)
    if answer is None:
        return _settle_by_list(rec, api, change, op, codes)
    held = [str(c) for c in answer.get("success_codes") or []]
    held += [str(c) for c in answer.get("already_exist_codes") or []]
    failed = {
        str(f.get("coupon_code")): f"{f.get('code', '')} {f.get('message', '')}".strip()
        for f in answer.get("fail_codes") or []
        if isinstance(f, Mapping)
    }
    if set(codes) - set(held) - set(failed):
        # An answer without the lists (only counts): the pool itself says what it holds.
        return _settle_by_list(rec, api, change, op, codes)
    rec.save(lambda s: s.record_code_batch_done(sid, number, held, failed))
    if failed:
        shown = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items())[:5])
        raise ReconcilerError(
            f"batch {number}: WeChat Pay refused {len(failed)} of {len(codes)} code(s) ({shown}); fix or remove them in the codes file"
        )
    return f"{len(codes)} code(s) uploaded ({number})"


def _send(
    rec: Recorder, api: CodeApi, op: Operation, fresh: bool, change: Change
) -> dict[str, Any] | None:
    """The answer, or None when WeChat Pay says the number was used already."""
    assert op.stock_id is not None
    sid, number = change.id, op.request_no
    attempt = 0
    while True:
        try:
            return api.upload_codes(op.stock_id, op.body)
        except RequestCancelled as exc:
            if not exc.sent and fresh:
                rec.save(lambda s: s.forget_code_batch(sid, number))
                raise NotSent(f"interrupted before code batch {number} was sent") from None
            raise InDoubt(_doubt(number, exc)) from None
        except ApiResponseError as exc:
            not_taken = exc.code in NOT_READY_CODES or exc.status == 429
            if not_taken and attempt < len(rec.delays):
                if rec.wait(rec.delays[attempt]):
                    raise InDoubt(_doubt(number, exc)) from None
                attempt += 1
                continue
            if exc.code in NOT_READY_CODES and fresh:
                rec.save(lambda s: s.forget_code_batch(sid, number))
                raise ReconcilerError(
                    f"code batch {number} not taken: WeChat Pay is still setting the stock up ({exc}); the next apply uploads it"
                ) from None
            if exc.code in USED_NUMBER_CODES:
                return None
            if exc.outcome_unknown or exc.retryable:
                raise InDoubt(_doubt(number, exc)) from None
            if fresh:
                # Refused outright: nothing of it was uploaded, the record goes.
                rec.save(lambda s: s.forget_code_batch(sid, number))
                raise ReconcilerError(f"code batch {number} refused: {exc}") from None
            return None  # a resend refused: the pool says whether the first send landed
        except (TransportError, ResponseVerificationError) as exc:
            if not exc.outcome_unknown and fresh:
                rec.save(lambda s: s.forget_code_batch(sid, number))
                raise
            raise InDoubt(_doubt(number, exc)) from None


def _doubt(number: str, exc: Exception) -> str:
    return f"code batch {number}: outcome unknown ({exc}); the next apply resends the same codes under the same upload_request_no"


def _settle_by_list(
    rec: Recorder, api: CodeApi, change: Change, op: Operation, codes: list[str]
) -> str:
    """Whether the batch's codes are in the pool, from the pool itself."""
    assert op.stock_id is not None
    try:
        present = pool_codes(api, op.stock_id)
    except ReconcilerError as exc:
        raise InDoubt(f"code batch {op.request_no}: could not read the pool back ({exc})") from None
    held = [c for c in codes if c in present]
    if len(held) != len(codes):
        raise InDoubt(
            f"code batch {op.request_no}: WeChat Pay's pool holds {len(held)} of its {len(codes)} codes; the next apply resends it under the same upload_request_no"
        )
    rec.save(lambda s: s.record_code_batch_done(change.id, op.request_no, held, {}))
    return f"{len(codes)} code(s) found uploaded ({op.request_no})"


def pool_codes(api: CodeApi, stock_id: str) -> set[str]:
    """Every code in a stock's pool (GET .../couponcodes, paged)."""
    out: set[str] = set()
    offset = 0
    while True:
        page = api.list_codes(stock_id, offset, LIST_PAGE)
        data = page.get("data") or []
        out.update(str(item.get("code")) for item in data if isinstance(item, Mapping))
        offset += len(data)
        total = page.get("total_count")
        if not data or (isinstance(total, int) and offset >= total):
            return out


def count_check(detail: Mapping[str, Any], rec: Recorder, change: Change) -> str:
    """Compare the detail's `coupon_code_count.total_count` with the codes recorded; "" when
    they agree. Fewer remote codes than recorded is an error."""
    counts = detail.get("coupon_code_count")
    total = counts.get("total_count") if isinstance(counts, Mapping) else None
    if not isinstance(total, int):
        return ""
    recorded = len(uploaded(rec.state().stock(change.id)))
    if total < recorded:
        raise ReconcilerError(
            f"WeChat Pay counts {total:,} codes in the pool, the state records {recorded:,} uploaded; check the pool in 商户平台"
        )
    if total > recorded:
        return f"WeChat Pay counts {total:,} codes, {recorded:,} uploaded by reconciler (the others were uploaded elsewhere)"
    return ""
