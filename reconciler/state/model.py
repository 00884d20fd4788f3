"""The state as values: what we sent, what WeChat Pay gave back, what is in flight.

Pure: no files, no clock (times come in as arguments), no randomness (the lineage comes in).
Every helper returns a new `State`; the models are frozen, and their dict fields must be
treated as read-only too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from reconciler.errors import StateError
from reconciler.ids import (
    MAX_GENERATION,
    body_digest,
    check_slug,
    is_valid_request_no,
    out_request_no,
)
from reconciler.mapping import get_path
from reconciler.models import SharedFieldsModel
from reconciler.operation import OpType

FORMAT_VERSION: Final = 1
DIGESTS_CHECKED: Final = "digests_checked"
"""The validation context key of `State.from_data(digests_checked=True)`."""

Kind = Literal["favor", "busifavor"]


def _check_request_no(value: str) -> str:
    if not is_valid_request_no(value):
        raise ValueError(f"{value!r} is not a valid request number (A-Za-z0-9|_*-, 1-128)")
    return value


def _check_lineage(value: str) -> str:
    try:
        UUID(value)
    except ValueError:
        raise ValueError(f"lineage {value!r} is not a UUID") from None
    return value


RequestNo = Annotated[str, AfterValidator(_check_request_no)]
Slug = Annotated[str, AfterValidator(check_slug)]
JsonObject = dict[str, Any]
"""A JSON object (request and response bodies). Not validated value by value on load: the
values come from JSON there, and validating every value of every body was most of the cost
of loading a large state; a save refuses (StateError) anything JSON cannot hold."""
_M = TypeVar("_M", bound=BaseModel)


class _Frozen(SharedFieldsModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateDataError(StateError):
    """The state data does not fit the format; `problems` lists each one with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class Pending(_Frozen):
    """An intent recorded *before* a request is sent, cleared once its outcome is known.

    After a crash it says which request may or may not have reached WeChat Pay, so the next
    run retries it with the same number and body instead of guessing.
    """

    action: OpType
    request_no: RequestNo
    body_digest: str = Field(min_length=1)
    started_at: AwareDatetime
    attempts: StrictInt = Field(ge=1)
    outcome: Literal["unknown", "already_exists"] | None = None
    """Set when a send ended without a verdict ("unknown") or WeChat Pay answered that the
    number was already used but gave no stock id ("already_exists")."""


class CodeBatch(_Frozen):
    """One upload of a 商家券 code pool batch, recorded *before* it is sent (`done` False) and
    again once WeChat Pay answered (`done` True, with the codes it holds and those it refused).

    An entry that is not done after a crash is resent with the same `upload_request_no` and
    the same codes (reconciler.codes), so no code is ever sent under two numbers."""

    codes: list[str] = Field(min_length=1, max_length=200)
    done: bool = False
    started_at: AwareDatetime
    uploaded: list[str] = Field(default_factory=list)
    """Codes WeChat Pay holds after this batch (accepted now, or already there)."""
    failed: dict[str, str] = Field(default_factory=dict)
    """Refused codes and WeChat Pay's reason; not uploaded."""


class CallbackRecord(_Frozen):
    """A merchant's notify URL for one kind: what apply last set (`url`), and the URL of a
    set whose outcome is not known yet (`pending`)."""

    url: str | None = None
    pending: str | None = None


class StockState(_Frozen):
    """What we know about one stock, keyed by its id (the YAML slug)."""

    id: Slug
    kind: Kind
    merchant: str = Field(min_length=1)
    generation: StrictInt = Field(default=0, ge=0, le=MAX_GENERATION)
    # Stored, not recomputed: it must survive a rename (`state mv`) unchanged.
    out_request_no: RequestNo
    stock_id: str | None = None
    sent_digest: str | None = None
    sent_body: JsonObject | None = None
    applied_body: JsonObject | None = None
    """The create body as it stands after later updates (None: still `sent_body`)."""
    created_at: AwareDatetime | None = None
    observed: JsonObject | None = None
    observed_at: AwareDatetime | None = None
    pending: Pending | None = None
    unknown_at_import: tuple[str, ...] = Field(default=(), exclude_if=lambda v: not v)
    """Create-body paths (dotted) that WeChat Pay did not return when the stock was imported:
    the applied body holds the file's value there, not a known one. A change to such a field
    is shown as set for the first time; it leaves the list once an update records it. Left
    out of the data when empty, so records of stocks never imported are unchanged."""
    code_batches: dict[RequestNo, CodeBatch] = Field(
        default_factory=dict, exclude_if=lambda v: not v
    )
    """商家券 code pool uploads by upload_request_no (reconciler.codes)."""

    @classmethod
    def new(cls, id: str, kind: Kind, merchant: str, generation: int = 0) -> StockState:
        """A stock not created yet, with its create number derived from its identity."""
        number = out_request_no(merchant, kind, id, generation)
        return cls(
            id=id, kind=kind, merchant=merchant, generation=generation, out_request_no=number
        )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> StockState:
        if (self.sent_body is None) != (self.sent_digest is None):
            raise ValueError("sent_body and sent_digest must be set together")
        if self.sent_body is not None:
            checked = info.context is not None and info.context.get(DIGESTS_CHECKED) is True
            if not checked and self.sent_digest != body_digest(self.sent_body):
                raise ValueError("sent_digest does not match sent_body (edited by hand?)")
            if self.sent_body.get("out_request_no") != self.out_request_no:
                raise ValueError("sent_body.out_request_no differs from out_request_no")
        if (self.observed is None) != (self.observed_at is None):
            raise ValueError("observed and observed_at must be set together")
        return self


class MediaImage(_Frozen):
    """One image content uploaded (or being uploaded) for a merchant, keyed by its sha256.

    The intent is recorded before the upload (`media_url` None) and the URL after it. An
    upload whose answer was lost is simply done again: uploading the same content twice costs
    WeChat Pay a second URL, nothing else, and nothing refers to the lost one."""

    filename: str = Field(min_length=1)
    media_url: str | None = None
    started_at: AwareDatetime
    uploaded_at: AwareDatetime | None = None


class State(_Frozen):
    """One state history (`lineage`) at one point in it (`serial`).

    `serial` is the serial of the file this value was loaded from (0 for a new state); saving
    writes `serial + 1`. `retired` maps request numbers of stocks removed from the state to the
    id they served, so that no later stock is ever given a number that was already sent.
    """

    format_version: Literal[1] = FORMAT_VERSION
    lineage: Annotated[str, AfterValidator(_check_lineage)]
    serial: StrictInt = Field(ge=0)
    stocks: dict[str, StockState] = Field(default_factory=dict)
    retired: dict[str, str] = Field(default_factory=dict)
    retired_stock_ids: dict[str, str] = Field(default_factory=dict)
    """The remote stock_id of each retired number that had created one, so that a later plan
    can name the stock a second create would duplicate."""
    images: dict[str, dict[str, MediaImage]] = Field(default_factory=dict)
    """Per merchant, each uploaded image's sha256 (hex) and its media URL: a file is uploaded
    once per merchant, whatever stocks and runs use it."""
    callbacks: dict[str, CallbackRecord] = Field(default_factory=dict)
    """Notify URLs by `<mchid>/<kind>` (reconciler.callbacks)."""

    # Change tracking (not data): the state the pure updates started from, and the ids they
    # touched since, so that a save writes O(changed) without comparing every stock. A state
    # built any other way (validated, copied, constructed) is its own root with no changes.
    _root: State | None = PrivateAttr(default=None)
    _touched: _Touched | None = PrivateAttr(default=None)
    # The numbers and remote ids of `stocks`, for O(1) invariant checks; handed on to the
    # state an update derives (see `_Index`).
    _index_box: list[_Index] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> State:
        _check_stocks(self.stocks, self.retired)
        return self

    def __eq__(self, other: object) -> bool:
        # The data only: change tracking and the index are not part of a state's value.
        if not isinstance(other, State):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> State:
        """A copy is its own root: no change tracking and no index carry over."""
        copy = super().model_copy(update=update, deep=deep)
        copy._root = None
        copy._touched = None
        copy._index_box = []
        return copy

    def changed_since(self, base: State) -> set[str] | None:
        """The ids whose entries may differ from `base`'s, when this state was derived from
        exactly `base` (the same object) by pure updates; None when that is not known."""
        if self is base:
            return set()
        if self._root is not base:
            return None
        ids: set[str] = set()
        node = self._touched
        while node is not None:
            ids.update(node.ids)
            node = node.previous
        return ids

    # --- data -----------------------------------------------------------------------------

    @classmethod
    def new(cls, lineage: str) -> State:
        return cls(lineage=lineage, serial=0)

    @classmethod
    def from_data(cls, data: object, *, digests_checked: bool = False) -> State:
        """Validate parsed JSON. Raises StateDataError listing every problem with its path.

        `digests_checked`: every `sent_digest` is known to match its `sent_body` (this very
        data passed this very check before: see `reconciler.parsecache.CheckedStates`), so
        the bodies are not serialised again to check it; everything else is validated."""
        if not isinstance(data, dict):
            raise StateDataError([f"the top level is {_json_type(data)}, expected an object"])
        return _validated(cls, data, {DIGESTS_CHECKED: True} if digests_checked else None)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready dict; times as RFC3339 strings."""
        return self.model_dump(mode="json")

    # --- queries --------------------------------------------------------------------------

    def stock(self, id: str) -> StockState:
        try:
            return self.stocks[id]
        except KeyError:
            raise StateError(f"no stock {id!r} in the state") from None

    def request_no_in_use(self, number: str) -> bool:
        """True if `number` is the create number of any stock in this state, present or removed."""
        if number in self.retired:
            return True
        index = self._take_index()
        try:
            return number in index.numbers
        finally:
            self._index_box.append(index)

    def retired_for(
        self, merchant: str, kind: Kind, id: str, below: int
    ) -> list[tuple[int, str | None]]:
        """(generation, remote stock_id or None) of every number of `id` under `below` that
        `state rm` retired: each may stand for a stock WeChat Pay still has."""
        out = []
        for generation in range(min(below, MAX_GENERATION + 1)):
            number = out_request_no(merchant, kind, id, generation)
            if self.retired.get(number) is not None:
                out.append((generation, self.retired_stock_ids.get(number)))
        return out

    def free_generation(self, merchant: str, kind: Kind, id: str) -> int:
        """The lowest generation whose create number is not in use (0 for a fresh id)."""
        for generation in range(MAX_GENERATION + 1):
            if not self.request_no_in_use(out_request_no(merchant, kind, id, generation)):
                return generation
        raise StateError(f"every generation of {id!r} is used")

    # --- pure updates ---------------------------------------------------------------------

    def with_stock(self, stock: StockState) -> State:
        """Add `stock` or replace the entry with the same id."""
        return self._with_stocks({**self.stocks, stock.id: stock}, touched=(stock.id,))

    def with_stocks(self, stocks: Sequence[StockState]) -> State:
        """Add (or replace) several entries at once, checking the invariants across stocks
        once (an import of thousands of stocks)."""
        return self._with_stocks(
            {**self.stocks, **{s.id: s for s in stocks}}, touched=tuple(s.id for s in stocks)
        )

    def without_stock(self, id: str) -> State:
        """Forget a stock (`state rm`); its create number is retired, never given out again."""
        stock = self.stock(id)
        if stock.pending is not None:
            raise StateError(
                f"stock {id!r} has a pending {stock.pending.action} "
                f"({stock.pending.request_no}); its outcome is unknown. Run apply to settle "
                "it before removing the stock from the state."
            )
        stocks = {k: v for k, v in self.stocks.items() if k != id}
        remote = (
            {**self.retired_stock_ids, stock.out_request_no: stock.stock_id}
            if stock.stock_id is not None
            else self.retired_stock_ids
        )
        return self._with_stocks(
            stocks, {**self.retired, stock.out_request_no: id}, remote, touched=(id,)
        )

    def renamed(self, old: str, new: str) -> State:
        """Move a stock to a new id (`state mv`), keeping its request numbers and stock_id."""
        stock = self.stock(old)
        check_slug(new)
        if new in self.stocks:
            raise StateError(f"cannot rename {old!r} to {new!r}: {new!r} is already in the state")
        stocks = {(new if k == old else k): v for k, v in self.stocks.items()}
        stocks[new] = _update(stock, id=new)
        return self._with_stocks(stocks, touched=(old, new))

    def set_pending(
        self, id: str, action: OpType, request_no: str, body_digest: str, at: datetime
    ) -> State:
        """Record that a request is about to be sent. The same intent again counts an attempt."""
        stock = self.stock(id)
        current = stock.pending
        same = current is not None and (
            current.action,
            current.request_no,
            current.body_digest,
        ) == (
            action,
            request_no,
            body_digest,
        )
        if current is not None and not same:
            raise StateError(
                f"stock {id!r} already has a pending {current.action} ({current.request_no}, "
                f"started {current.started_at.isoformat()}) whose outcome is unknown; settle it "
                f"before starting a {action}."
            )
        pending = Pending(
            action=action,
            request_no=request_no,
            body_digest=body_digest,
            started_at=current.started_at if current is not None else at,
            attempts=current.attempts + 1 if current is not None else 1,
        )
        return self.with_stock(_update(stock, pending=pending))

    def clear_pending(self, id: str) -> State:
        return self.with_stock(_update(self.stock(id), pending=None))

    def record_sent(self, id: str, body: Mapping[str, Any], at: datetime) -> State:
        """Keep the exact create body and mark the create pending, before it is sent.

        A retry must send the byte-identical body under the same out_request_no, so a different
        body for a stock whose create may already have happened is refused.
        """
        stock = self.stock(id)
        digest = body_digest(body)
        if body.get("out_request_no") != stock.out_request_no:
            raise StateError(
                f"create body for {id!r} carries out_request_no {body.get('out_request_no')!r}, "
                f"but the state holds {stock.out_request_no}"
            )
        if stock.stock_id is not None:
            raise StateError(f"stock {id!r} was already created as {stock.stock_id}")
        if stock.sent_digest is not None and stock.sent_digest != digest:
            raise StateError(
                f"stock {id!r} was already sent with a different create body under "
                f"{stock.out_request_no}; resend the recorded body (sent_body) until the "
                "create is settled"
            )
        sent = _update(stock, sent_body=_own(body), sent_digest=digest)
        return self.with_stock(sent).set_pending(
            id, OpType.CREATE, stock.out_request_no, digest, at
        )

    def record_created(self, id: str, stock_id: str, create_time: datetime) -> State:
        """The create succeeded (or was found to have succeeded): remember the remote id."""
        stock = self.stock(id)
        if stock.stock_id is not None and stock.stock_id != stock_id:
            raise StateError(
                f"stock {id!r} is already recorded as {stock.stock_id}, not {stock_id}"
            )
        pending = (
            stock.pending if stock.pending and stock.pending.action is not OpType.CREATE else None
        )
        return self.with_stock(
            _update(stock, stock_id=stock_id, created_at=create_time, pending=pending)
        )

    def record_applied(self, id: str, body: Mapping[str, Any]) -> State:
        """An update succeeded: `body` (a full create body) is what WeChat Pay now holds. A
        field unknown at import that the update changed is known from now on."""
        stock = self.stock(id)
        changes: dict[str, Any] = {"applied_body": _own(body), "pending": None}
        if stock.unknown_at_import:
            before = stock.applied_body or stock.sent_body or {}
            changes["unknown_at_import"] = tuple(
                p for p in stock.unknown_at_import if get_path(before, p) == get_path(body, p)
            )
        return self.with_stock(_update(stock, **changes))

    def adopt(
        self, id: str, stock_id: str, body: Mapping[str, Any], unknown: Sequence[str] = ()
    ) -> State:
        """Track an existing remote stock (`state import`, `import`) for an entry that was never
        created: `body` (a full create body under the entry's number) is what it is taken to
        hold; `unknown` lists its paths that WeChat Pay did not return."""
        stock = self.stock(id)
        if stock.stock_id is not None:
            raise StateError(f"stock {id!r} is already recorded as {stock.stock_id}")
        if stock.pending is not None:
            raise StateError(
                f"stock {id!r} has a pending {stock.pending.action}; settle it with record_created"
            )
        return self.with_stock(
            _update(
                stock,
                stock_id=stock_id,
                applied_body=_own(body),
                unknown_at_import=tuple(unknown),
            )
        )

    def forget_sent(self, id: str) -> State:
        """WeChat Pay refused the create outright (a 4xx about the body): nothing was created,
        so the recorded body is dropped and a corrected body may go out under the same number."""
        stock = self.stock(id)
        if stock.stock_id is not None:
            raise StateError(f"stock {id!r} exists as {stock.stock_id}; its create body stays")
        return self.with_stock(_update(stock, sent_body=None, sent_digest=None, pending=None))

    def mark_outcome(self, id: str, outcome: Literal["unknown", "already_exists"]) -> State:
        """Note why the pending request of `id` is still unsettled."""
        stock = self.stock(id)
        if stock.pending is None:
            raise StateError(f"stock {id!r} has nothing pending")
        pending = stock.pending.model_copy(update={"outcome": outcome})
        return self.with_stock(_update(stock, pending=pending))

    def record_code_batch(self, id: str, request_no: str, codes: list[str], at: datetime) -> State:
        """Record a code batch about to be sent. The same batch again keeps its first record;
        a different content under a recorded number is refused (it would be a second upload)."""
        stock = self.stock(id)
        current = stock.code_batches.get(request_no)
        if current is not None:
            if current.codes != codes:
                raise StateError(
                    f"stock {id!r}: upload_request_no {request_no} is recorded with other codes"
                )
            return self
        batch = CodeBatch(codes=list(codes), started_at=at)
        return self.with_stock(
            _update(stock, code_batches={**stock.code_batches, request_no: batch})
        )

    def record_code_batch_done(
        self, id: str, request_no: str, uploaded: list[str], failed: Mapping[str, str]
    ) -> State:
        stock = self.stock(id)
        batch = stock.code_batches[request_no].model_copy(
            update={"done": True, "uploaded": list(uploaded), "failed": dict(failed)}
        )
        return self.with_stock(
            _update(stock, code_batches={**stock.code_batches, request_no: batch})
        )

    def forget_code_batch(self, id: str, request_no: str) -> State:
        """WeChat Pay refused the batch outright (or it never left): nothing was uploaded."""
        stock = self.stock(id)
        batches = {k: v for k, v in stock.code_batches.items() if k != request_no}
        return self.with_stock(_update(stock, code_batches=batches))

    def set_callback(self, key: str, *, url: str | None = None, pending: str | None) -> State:
        """`pending`: a set about to be sent; `url` (with pending None): the URL WeChat Pay holds."""
        current = self.callbacks.get(key, CallbackRecord())
        record = CallbackRecord(url=url if url is not None else current.url, pending=pending)
        return self.model_copy(update={"callbacks": {**self.callbacks, key: record}})

    def record_observed(self, id: str, details: Mapping[str, Any], at: datetime) -> State:
        return self.with_stock(_update(self.stock(id), observed=_own(details), observed_at=at))

    # --- uploaded images ------------------------------------------------------------------

    def media_urls(self, merchant: str) -> dict[str, str]:
        """sha256 -> media URL of every image uploaded for `merchant`."""
        return {
            sha: image.media_url
            for sha, image in self.images.get(merchant, {}).items()
            if image.media_url is not None
        }

    def record_upload_intent(
        self, merchant: str, sha256: str, filename: str, at: datetime
    ) -> State:
        """Record that the content `sha256` is about to be uploaded (kept if already known)."""
        mine = self.images.get(merchant, {})
        if sha256 in mine:
            return self
        entry = _validated(MediaImage, {"filename": filename, "started_at": at})
        return self._with_images(merchant, {**mine, sha256: entry})

    def record_media_url(self, merchant: str, sha256: str, url: str, at: datetime) -> State:
        mine = self.images.get(merchant, {})
        known = mine.get(sha256)
        data = {
            "filename": known.filename if known else url.rsplit("/", 1)[-1] or "image",
            "started_at": known.started_at if known else at,
            "media_url": url,
            "uploaded_at": at,
        }
        return self._with_images(merchant, {**mine, sha256: _validated(MediaImage, data)})

    def _with_images(self, merchant: str, mine: dict[str, MediaImage]) -> State:
        return self.model_copy(update={"images": {**self.images, merchant: mine}})

    def _with_stocks(
        self,
        stocks: dict[str, StockState],
        retired: dict[str, str] | None = None,
        retired_stock_ids: dict[str, str] | None = None,
        *,
        touched: tuple[str, ...],
    ) -> State:
        # Every StockState is already valid (built through validation), so only the invariants
        # across stocks are checked, and only for the touched ids (against the index of the
        # others); re-validating each stock would cost a digest of every body in the state.
        retired = self.retired if retired is None else retired
        index = self._take_index()
        try:
            index.update(self.stocks, stocks, touched, retired, self.retired)
        except ValueError:
            # The index may be half updated: drop it, and let the full check name the problem.
            try:
                _check_stocks(stocks, retired)
            except ValueError as exc:
                raise StateDataError([str(exc)]) from None
            index = _Index.of(stocks)
        state = State.model_construct(
            format_version=FORMAT_VERSION,
            lineage=self.lineage,
            serial=self.serial,
            stocks=stocks,
            retired=retired,
            retired_stock_ids=self.retired_stock_ids
            if retired_stock_ids is None
            else retired_stock_ids,
            images=self.images,
            callbacks=self.callbacks,
        )
        state._root = self if self._root is None else self._root
        state._touched = _Touched(touched, self._touched)
        state._index_box.append(index)
        return state

    def _take_index(self) -> _Index:
        """This state's index, taken out of its box (an atomic pop, so two threads never share
        one); built when another state took it or it was never made."""
        try:
            return self._index_box.pop()
        except IndexError:
            return _Index.of(self.stocks)


class _Touched:
    """One pure update's touched ids, linked to the updates before it since the root."""

    __slots__ = ("ids", "previous")

    def __init__(self, ids: tuple[str, ...], previous: _Touched | None) -> None:
        self.ids = ids
        self.previous = previous


class _Index:
    """The create numbers (number -> id) and remote stocks ((kind, stock_id) -> id) of one
    state's stocks. An update moves it on to the state it derives, changed for the touched ids
    only; the older state builds a new one if it is asked again."""

    __slots__ = ("numbers", "owners")

    def __init__(self, numbers: dict[str, str], owners: dict[tuple[Kind, str | None], str]) -> None:
        self.numbers = numbers
        self.owners = owners

    @classmethod
    def of(cls, stocks: Mapping[str, StockState]) -> _Index:
        numbers = {s.out_request_no: k for k, s in stocks.items()}
        owners: dict[tuple[Kind, str | None], str] = {
            (s.kind, s.stock_id): k for k, s in stocks.items() if s.stock_id is not None
        }
        return cls(numbers, owners)

    def update(
        self,
        old: Mapping[str, StockState],
        new: Mapping[str, StockState],
        touched: tuple[str, ...],
        retired: Mapping[str, str],
        old_retired: Mapping[str, str],
    ) -> None:
        """From `old` to `new`, which differ in the `touched` ids only; ValueError when `new`
        breaks an invariant (the index is then unusable)."""
        for key in touched:
            before = old.get(key)
            if before is not None:
                if self.numbers.get(before.out_request_no) == key:
                    del self.numbers[before.out_request_no]
                if (
                    before.stock_id is not None
                    and self.owners.get((before.kind, before.stock_id)) == key
                ):
                    del self.owners[(before.kind, before.stock_id)]
        for key in touched:
            stock = new.get(key)
            if stock is None:
                continue
            if key != stock.id:
                raise ValueError(key)
            number = stock.out_request_no
            if self.numbers.setdefault(number, key) != key or number in retired:
                raise ValueError(number)
            remote = (stock.kind, stock.stock_id)
            if stock.stock_id is not None and self.owners.setdefault(remote, key) != key:
                raise ValueError(stock.stock_id)
        if retired is not old_retired and any(
            number in self.numbers for number in retired.keys() - old_retired.keys()
        ):
            raise ValueError("retired")


def _check_stocks(stocks: Mapping[str, StockState], retired: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    # One remote stock belongs to one id: two ids sharing it would let an edit of one file
    # change the other's stock (a flipped digit in the file is enough). Favor and busifavor
    # are separate APIs, so the kind is part of the key.
    owners: dict[tuple[Kind, str], str] = {}
    for key, stock in stocks.items():
        if key != stock.id:
            raise ValueError(f"stocks.{key} holds a stock whose id is {stock.id!r}")
        number = stock.out_request_no
        if number in seen:
            raise ValueError(f"out_request_no {number} is used by both {seen[number]} and {key}")
        if number in retired:
            raise ValueError(f"out_request_no {number} of {key} is retired")
        seen[number] = key
        if stock.stock_id is not None:
            owner = owners.setdefault((stock.kind, stock.stock_id), key)
            if owner != key:
                raise ValueError(
                    f"{stock.kind} stock_id {stock.stock_id} is recorded for both {owner} and "
                    f"{key}; one remote stock belongs to one id only"
                )


def _own(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy through JSON: a body kept in the state is JSON (checked here, where bodies come
    in, rather than on every load) and does not change when the caller's does."""
    try:
        value = json.loads(json.dumps(dict(body), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StateDataError([f"a body must be JSON: {exc}"]) from None
    return dict(value)


def _update(stock: StockState, **changes: Any) -> StockState:
    # Re-run validation (model_copy would skip it), so an update cannot break an invariant.
    return _validated(StockState, {**dict(stock), **changes})


def _validated(cls: type[_M], data: object, context: dict[str, Any] | None = None) -> _M:
    try:
        return cls.model_validate(data, context=context)
    except ValidationError as exc:
        raise StateDataError(
            [
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            ]
        ) from None


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
