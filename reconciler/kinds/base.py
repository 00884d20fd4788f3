"""What every stock kind knows, and the behaviour the kinds share. Pure.

A `StockKind` is the one home of a kind's knowledge: its model, its API calls, the money a
create commits, its validity window, how its detail response maps onto its create body, which
fields can change after the create and through which call, and what a reviewer must see. The
field-level facts are declared on the model fields (`reconciler.spec.traits`); the kind reads
them, so the planner, the applier and the renderers never branch on a kind's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from reconciler.errors import ReconcilerError
from reconciler.i18n import Lang
from reconciler.ids import body_digest, update_request_no
from reconciler.kinds.adopt import ImportedSpec, inverse
from reconciler.mapping import diff_bodies, get_path, leaves, normalise, without_number
from reconciler.operation import CreateResult, Operation, OpType
from reconciler.plan import BudgetDelta
from reconciler.spec.common import parse_rfc3339
from reconciler.spec.findings import Finding
from reconciler.spec.labels import Label
from reconciler.spec.stock import BusifavorStock, FavorStock, Stock
from reconciler.spec.traits import FieldTraits, model_traits, traits_at


class StockApi(Protocol):
    """What the kinds call on a merchant's client (the real one, or an in-memory fake)."""

    def favor_create(self, body: Mapping[str, Any]) -> CreateResult: ...
    def favor_detail(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]: ...
    def favor_list(
        self,
        stock_creator_mchid: str,
        offset: int,
        limit: int,
        create_start_time: str | datetime | None = None,
        create_end_time: str | datetime | None = None,
        status: str | None = None,
    ) -> dict[str, Any]: ...
    def favor_start(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]: ...
    def favor_pause(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]: ...
    def favor_restart(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]: ...
    def favor_stop(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]: ...
    def favor_modify_goods_id(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def favor_items(
        self, stock_id: str, stock_creator_mchid: str, offset: int, limit: int
    ) -> dict[str, Any]: ...
    def favor_merchants(
        self, stock_id: str, stock_creator_mchid: str, offset: int, limit: int
    ) -> dict[str, Any]: ...
    def busifavor_create(self, body: Mapping[str, Any]) -> CreateResult: ...
    def busifavor_detail(self, stock_id: str) -> dict[str, Any]: ...
    def busifavor_modify(self, stock_id: str, body: Mapping[str, Any]) -> None: ...
    def busifavor_budget(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def media_upload(self, filename: str, content: bytes) -> str: ...


class Verdict(StrEnum):
    """How one changed field of an existing stock can reach its new value."""

    IMMUTABLE = "immutable"
    MODIFY = "modify"
    BUDGET = "budget"


@dataclass(frozen=True)
class FieldDiff:
    """One create-body field (dotted path) that differs: before (applied), after (the file)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Lifecycle:
    """The lifecycle calls that bring a stock from its observed status to the file's `status`
    (in order), or why that cannot be done (`error`)."""

    operations: tuple[Operation, ...] = ()
    before: str | None = None
    """The observed status (WeChat Pay's value)."""
    after: str | None = None
    """The file's `status`."""
    error: str = ""
    irreversible: bool = False
    """The calls cannot be undone (stop)."""


NO_LIFECYCLE = Lifecycle()
"""Nothing to do (the common case: one shared value, not one per stock)."""


@dataclass(frozen=True)
class PlannedUpdate:
    """The update requests for one stock, and the fields each one changes."""

    operations: tuple[Operation, ...]
    fields: tuple[FieldDiff, ...]


class StockKind(ABC):
    """Behaviour shared by the kinds; each subclass fills in its own calls and wording."""

    name: ClassVar[str]
    label: ClassVar[str]
    """The kind's Chinese name, as reviewers know it (代金券, 商家券)."""
    model: ClassVar[type[FavorStock] | type[BusifavorStock]]
    """The stock file's model (identity, merchant and the create body as `spec`)."""
    spec_model: ClassVar[type[BaseModel]]
    facts_fields: ClassVar[tuple[str, ...]]
    """Detail fields that move on their own (status, counts): shown, never diffed."""
    begin_time_path: ClassVar[str]
    """Where the create body holds the start of the stock's validity."""
    end_time_path: ClassVar[str]
    """Where the create body holds the end of the stock's validity."""
    immutable_reason: ClassVar[str]
    identity_paths: ClassVar[tuple[str, ...]]
    """Create-body fields that tell one stock from another (name, type, validity): the stock
    read back under a recorded stock_id must show them as applied before anything is sent to
    it."""
    creator_path: ClassVar[str]
    """Where the detail response names the merchant the stock belongs to."""
    can_look_up: ClassVar[bool] = False
    """Whether a stock whose create answer was lost can be found again (a list endpoint)."""
    labels: ClassVar[Mapping[str, Label]]
    """Every create-body field's label (the documentation's Chinese name, an English name, its
    group), by path: `reconciler.spec.labels_<kind>`."""
    callback_permission: ClassVar[str] = ""
    """What a merchant must have enabled before WeChat Pay takes its notify URL for this kind
    (reconciler.callbacks names it when WeChat Pay answers "no permission")."""

    # --- the create --------------------------------------------------------------------------

    def create_body(self, stock: Stock, request_no: str) -> dict[str, Any]:
        """The exact create body: the spec as written (absent fields left out) plus the number."""
        body = stock.spec.model_dump(mode="json", exclude_none=True)
        body["out_request_no"] = request_no
        return body

    @abstractmethod
    def committed_budget(self, stock: Stock) -> int | None:
        """Money (fen) a create commits; None when the coupon kind states none."""

    @abstractmethod
    def create_reason(self, stock: Stock) -> str:
        """Why a create is planned, with the money it commits."""

    @abstractmethod
    def rules(self, stock: Stock) -> list[Finding]:
        """Every time-independent rule for a stock that passed the shape checks."""

    @abstractmethod
    def creation_rules(self, stock: Stock, now: datetime) -> list[Finding]:
        """Clock-dependent rules, for a stock still to be created."""

    # --- the fields --------------------------------------------------------------------------

    def traits(self) -> Mapping[str, FieldTraits]:
        return model_traits(self.spec_model)

    def review_fields(self) -> list[tuple[str, bool]]:
        """(create path, is money) of the fields a reviewer must see on a create, in order."""
        marked = [(p, t.review) for p, t in self.traits().items() if t.review is not None]
        ranked = sorted(enumerate(marked), key=lambda item: (item[1][1].order, item[0]))
        return [(path, review.money) for _, (path, review) in ranked]

    def can_change(self, path: str) -> bool:
        """Whether WeChat Pay lets the field at `path` change after the create (some way)."""
        found = traits_at(self.spec_model, path)
        return found is not None and (found[1].modify is not None or found[1].budget is not None)

    # --- what a reviewer reads ---------------------------------------------------------------

    @abstractmethod
    def summary_line(self, body: Mapping[str, Any], lang: Lang) -> str:
        """One line a reviewer reads first: name, kind, the offer, how many, when, the money."""

    def budget_deltas(
        self, applied: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> tuple[BudgetDelta, ...]:
        """The budget changes from `applied` to `desired`, as money; none when the kind's
        budget has no stated value per coupon."""
        return ()

    def verdict(self, change: FieldDiff) -> Verdict:
        """Whether WeChat Pay can change this field in place, and through which call."""
        found = traits_at(self.spec_model, change.path)
        if found is None or change.after is None:
            return Verdict.IMMUTABLE
        _, traits = found
        if traits.budget is not None:
            both_counts = isinstance(change.after, int) and isinstance(change.before, int)
            return Verdict.BUDGET if both_counts else Verdict.IMMUTABLE
        if traits.modify is not None:
            if traits.modify.nonempty and not (change.before and change.after):
                return Verdict.IMMUTABLE
            allowed = traits.modify.only_to
            if allowed is not None and change.after not in allowed:
                return Verdict.IMMUTABLE
            return Verdict.MODIFY
        return Verdict.IMMUTABLE

    def diff(self, applied: Mapping[str, Any], desired: Mapping[str, Any]) -> list[FieldDiff]:
        return [FieldDiff(p, b, a) for p, b, a in diff_bodies(applied, desired)]

    # --- updates -----------------------------------------------------------------------------

    def plan_update(
        self,
        merchant: str,
        id: str,
        stock_id: str,
        generation: int,
        applied: Mapping[str, Any],
        desired: Mapping[str, Any],
        known: Mapping[str, Any],
        changes: Sequence[FieldDiff],
    ) -> PlannedUpdate:
        """The requests that bring `applied` to `desired` for changes that all have a
        MODIFY or BUDGET verdict: one modify call for every modifiable change, then one budget
        call per budget field, each with its own derived number and the body afterwards."""
        ops: list[Operation] = []
        fields: list[FieldDiff] = []
        current = without_number(applied)
        current["out_request_no"] = applied.get("out_request_no")
        modify = [c for c in changes if self.verdict(c) is Verdict.MODIFY]
        if modify:
            tops = sorted({c.path.split(".")[0] for c in modify})
            body: dict[str, Any] = {}
            for top in tops:
                body[top] = self._modifiable_part(desired.get(top), top)
            number = update_request_no(
                merchant, self.name, id, "modify", body_digest(body), generation
            )
            after = _with_values(current, modify)
            ops.append(
                Operation(
                    OpType.MODIFY,
                    number,
                    {**body, "out_request_no": number},
                    generation,
                    after,
                    stock_id,
                )
            )
            current = after
            fields += modify
        for change in changes:
            if self.verdict(change) is not Verdict.BUDGET:
                continue
            found = traits_at(self.spec_model, change.path)
            assert found is not None and found[1].budget is not None
            name = found[1].budget.name
            seen_found, seen = get_path(known, change.path)
            now_value = seen if seen_found and isinstance(seen, int) else change.before
            body = {f"target_{name}": change.after, f"current_{name}": now_value}
            number = update_request_no(
                merchant, self.name, id, "budget", body_digest(body), generation
            )
            after = _with_values(current, [change])
            ops.append(
                Operation(
                    OpType.BUDGET,
                    number,
                    {**body, "modify_budget_request_no": number},
                    generation,
                    after,
                    stock_id,
                )
            )
            current = after
            fields.append(change)
        return PlannedUpdate(tuple(ops), tuple(fields))

    def _modifiable_part(self, value: Any, path: str) -> Any:
        """`value` at `path`, keeping only what the modify call can change."""
        found = traits_at(self.spec_model, path)
        if found is not None and found[0] == path and found[1].modify is not None:
            return value
        if not isinstance(value, Mapping):
            return value
        modifiable = [p for p, t in self.traits().items() if t.modify is not None]
        out = {}
        for key, sub in value.items():
            sub_path = f"{path}.{key}"
            if any(p == sub_path or p.startswith(sub_path + ".") for p in modifiable):
                part = self._modifiable_part(sub, sub_path)
                if part is not None and part != {}:
                    out[key] = part
        return out

    # --- the remote stock --------------------------------------------------------------------

    def observable_paths(self, body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """(create path, detail path) of every field the detail response shows."""
        for path, traits in self.traits().items():
            if traits.detail is not None:
                yield path, traits.detail.path or path

    def observable_pairs(
        self, body: Mapping[str, Any], detail: Mapping[str, Any]
    ) -> Iterator[tuple[str, Any, Any]]:
        """(create path, sent value, observed value) for every field both sides show."""
        for create_path, detail_path in self.observable_paths(body):
            has_sent, sent = get_path(body, create_path)
            has_seen, seen = get_path(detail, detail_path)
            if has_sent and has_seen:
                yield create_path, sent, seen

    def drifted(self, body: Mapping[str, Any], detail: Mapping[str, Any]) -> list[FieldDiff]:
        """Fields whose observed value differs from what was applied: before is what WeChat
        Pay shows, after what was applied (and the file still says)."""
        return [
            FieldDiff(p, seen, sent)
            for p, sent, seen in self.observable_pairs(body, detail)
            if normalise(p, sent) != normalise(p, seen)
        ]

    def matches(self, sent: Mapping[str, Any], detail: Mapping[str, Any]) -> bool:
        """Whether a remote stock shows exactly what `sent` would have created."""
        return all(
            normalise(p, sent_value) == normalise(p, seen)
            for p, sent_value, seen in self.observable_pairs(sent, detail)
        )

    def identity_mismatch(
        self, merchant: str, applied: Mapping[str, Any], detail: Mapping[str, Any]
    ) -> list[FieldDiff]:
        """Identity fields where the stock read back differs from the one recorded: before is
        what WeChat Pay shows, after what was applied. Empty when it is the same stock."""
        paths = dict(self.observable_paths(applied))
        out = []
        for path in self.identity_paths:
            has_sent, sent = get_path(applied, path)
            has_seen, seen = get_path(detail, paths.get(path, path))
            if has_sent and has_seen and normalise(path, sent) != normalise(path, seen):
                out.append(FieldDiff(path, seen, sent))
        found, creator = get_path(detail, self.creator_path)
        if found and creator not in (None, "") and str(creator) != merchant:
            out.append(FieldDiff(self.creator_path, creator, merchant))
        return out

    def facts(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        if not detail:  # nothing observed yet (a plan without refresh, most stocks)
            return {}
        return {n: detail[n] for n in self.facts_fields if n in detail}

    def begin_time(self, body: Mapping[str, Any]) -> str | None:
        found, value = get_path(body, self.begin_time_path)
        return value if found and isinstance(value, str) else None

    def end_time(self, body: Mapping[str, Any]) -> str | None:
        found, value = get_path(body, self.end_time_path)
        return value if found and isinstance(value, str) else None

    def ended(self, body: Mapping[str, Any], now: datetime) -> bool:
        """Whether the stock's validity is over (it can no longer change)."""
        end = self.end_time(body)
        if end is None:
            return False
        try:
            return parse_rfc3339(end) <= now
        except ValueError:
            return False

    # --- the lifecycle -----------------------------------------------------------------------

    initial_status: ClassVar[str | None] = None
    """The status WeChat Pay gives a new stock; None when the kind has no lifecycle calls."""

    def plan_lifecycle(
        self,
        stock: Stock,
        stock_id: str | None,
        generation: int,
        applied: Mapping[str, Any],
        observed: str | None,
        ended: bool,
    ) -> Lifecycle:
        """The calls that bring the observed status (None: unknown) to the file's; none for a
        kind without a lifecycle."""
        return NO_LIFECYCLE

    def status_after(self, type: OpType) -> str | None:
        """The status a successful lifecycle call leaves (WeChat Pay's value)."""
        return None

    def lifecycle_call(
        self,
        merchant: str,
        id: str,
        generation: int,
        type: OpType,
        stock_id: str | None,
        applied: Mapping[str, Any],
    ) -> Operation | None:
        """The lifecycle call of `type` (None when the kind has none)."""
        return None

    def status_of(self, detail: Mapping[str, Any]) -> str | None:
        """The lifecycle status a detail response shows."""
        return None

    def locked_at_activation(self, body: Mapping[str, Any]) -> int:
        """Money (fen) an activation of a stock with this create body locks from the
        merchant's balance (预充值); 0 when nothing is locked."""
        return 0

    def ceiling(self, stock: Stock) -> int:
        """Money (fen) of a create that is only a ceiling: never locked from a balance."""
        return self.committed_budget(stock) or 0

    def callback_body(self, mchid: str, url: str) -> dict[str, Any]:
        """The body of POST /v3/marketing/{kind}/callbacks."""
        return {"mchid": mchid, "notify_url": url}

    def code_capacity(self, stock: Stock) -> int | None:
        """For a stock whose codes the merchant uploads: how many coupons it can issue (each
        needs a code); None when the kind has no code pool or the stock does not upload."""
        return None

    def not_ready(self, exc: Exception) -> bool:
        """Whether a failed activation may succeed later (WeChat Pay still registering the
        stock): retried within the configured bound."""
        return False

    # --- the calls ---------------------------------------------------------------------------

    @abstractmethod
    def create(self, api: StockApi, body: Mapping[str, Any]) -> CreateResult:
        """Send the create body."""

    @abstractmethod
    def detail(self, api: StockApi, stock_id: str, merchant: str) -> dict[str, Any]:
        """Read the stock's detail response."""

    def send_update(self, api: StockApi, op: Operation) -> None:
        """Send an update or lifecycle call; a kind without the call refuses it (a plan can
        only hold one through a bug, since its checksum covers every operation)."""
        raise ReconcilerError(f"{self.name} stocks have no {op.type.value} call; make a new plan")

    def check_update(self, api: StockApi, op: Operation, merchant: str) -> str | None:
        """For an update whose effect the detail does not show, read it back another way:
        what differs from `op.after` ("" when it landed); None when there is nothing to read."""
        return None

    def created_candidates(
        self,
        api: StockApi,
        merchant: str,
        sent: Mapping[str, Any],
        since: datetime,
        until: datetime,
    ) -> dict[str, dict[str, Any]] | None:
        """Remote stocks created in the window that match `sent`, by stock_id; None when the
        kind has no way to list its stocks."""
        return None

    # --- adopting a stock made elsewhere (`reconciler import`) --------------------------------

    import_stand_ins: ClassVar[Mapping[str, Any]] = {}
    """Required create-body fields the detail never returns: the value an imported file holds
    for each (a stand-in, recorded as unknown at import)."""
    import_derived: ClassVar[Mapping[str, str]] = {}
    """Create-body fields the detail does not return under their own name although a rule
    fixes them: create path -> detail path."""
    import_omitted_defaults: ClassVar[Mapping[str, Any]] = {}
    """Values the detail shows for a field that was never sent (server defaults of fields the
    docs call not open): an imported file leaves them out."""

    def detail_path(self, path: str) -> str | None:
        """Where the detail response shows the create-body leaf `path`; None when it does not."""
        traits = self.traits().get(path)
        if traits is None or traits.detail is None:
            return None
        return traits.detail.path or path

    def import_reads(
        self, api: StockApi, stock_id: str, merchant: str, detail: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create-body fields the detail lacks that other calls return, by path; {} when the
        kind has none."""
        return {}

    def listed(
        self,
        api: StockApi,
        merchant: str,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
    ) -> Iterator[dict[str, Any]] | None:
        """The merchant's stocks the kind's list returns, as they are read (a stock may come
        twice); None when the kind has no list endpoint."""
        return None

    def import_value(self, path: str, value: Any) -> Any:
        """A value as the detail shows it, in the create body's form."""
        return value

    def import_top(self, detail: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Fields of the stock file beside `spec` for a remote stock, and a note for each."""
        return {}, {}

    def from_detail(
        self, detail: Mapping[str, Any], reads: Mapping[str, Any] | None = None
    ) -> ImportedSpec:
        """The inverse of the create→detail mapping: the stock file's spec for a remote stock,
        with every field the API returned (`reads`: see `import_reads`), and the paths of
        those it did not."""
        spec, unknown = inverse(
            self.spec_model,
            detail,
            reads or {},
            self.detail_path,
            self.import_stand_ins,
            self.import_derived,
            self.import_omitted_defaults,
            self.import_value,
        )
        top, notes = self.import_top(detail)
        return ImportedSpec(
            spec,
            unknown,
            {p: v for p, v in self.import_stand_ins.items() if p in unknown},
            dict(self.import_derived),
            top,
            notes,
        )

    def unknown_paths(self, detail: Mapping[str, Any]) -> tuple[str, ...]:
        """The create-body paths `detail` does not show, for a stock file written by hand and
        adopted with `state import` (which makes no other read)."""
        return self.from_detail(detail, None).unknown


def _with_values(body: Mapping[str, Any], changes: Sequence[FieldDiff]) -> dict[str, Any]:
    """A deep copy of `body` with each change's `after` written at its path."""
    import copy

    out = copy.deepcopy(dict(body))
    for change in changes:
        parts = change.path.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if change.after is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = copy.deepcopy(change.after)
    return out


__all__ = [
    "FieldDiff",
    "ImportedSpec",
    "Lifecycle",
    "PlannedUpdate",
    "StockApi",
    "StockKind",
    "Verdict",
    "leaves",
]


def offer_text(lang: Lang, body: Mapping[str, Any], amount_key: str) -> str:
    """The offer in a summary line, from the create body's coupon_use_rule: `¥10 off orders ≥
    ¥100` / `满 ¥100 减 ¥10`, a percentage (`pays 88%`) or an exchange price, by stock_type;
    `amount_key` names the fixed coupon's amount (favor coupon_amount, busifavor
    discount_amount)."""
    from reconciler.i18n import pick
    from reconciler.money import yuan_short

    def fen(value: Any) -> str:
        return yuan_short(value) if isinstance(value, int) else "?"

    use = body.get("coupon_use_rule") or {}
    kind = body.get("stock_type")
    if kind == "DISCOUNT":
        rule = use.get("discount_coupon") or {}
        percent, most = rule.get("discount_percent"), rule.get("discount_amount_max")
        text = pick(lang, f"pays {percent}%", f"按 {percent}% 付款")
        if isinstance(most, int):
            text += pick(lang, f" (at most {fen(most)} off)", f"（最多减 {fen(most)}）")
        minimum = fen(rule.get("transaction_minimum"))
        return text + pick(lang, f" on orders ≥ {minimum}", f"，满 {minimum} 可用")
    if kind == "EXCHANGE":
        rule = use.get("exchange_coupon") or {}
        price, minimum = fen(rule.get("exchange_price")), fen(rule.get("transaction_minimum"))
        return pick(
            lang, f"buy for {price} with orders ≥ {minimum}", f"满 {minimum} 以 {price} 换购"
        )
    rule = use.get("fixed_normal_coupon") or {}
    off, minimum = fen(rule.get(amount_key)), fen(rule.get("transaction_minimum"))
    return pick(lang, f"{off} off orders ≥ {minimum}", f"满 {minimum} 减 {off}")


def count_text(lang: Lang, coupons: Any, per_user: Any) -> str:
    """`20,000 coupons, 2 per person` / `共 20,000 张，每人限 2 张`."""
    from reconciler.i18n import pick

    total = f"{coupons:,}" if isinstance(coupons, int) else "?"
    each = f"{per_user:,}" if isinstance(per_user, int) else "?"
    return pick(lang, f"{total} coupons, {each} per person", f"共 {total} 张，每人限 {each} 张")
