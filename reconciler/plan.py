"""The plan: inert, versioned data. It can be saved, checksummed, rendered and applied later.

Renderers only format a Plan; the planner is the only place that decides what goes in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.operation import Operation, OpType

FORMAT_VERSION = 2
"""2: every operation carries its type, number, body, generation and the body afterwards, and
the checksum covers the saved document itself."""


class PlanFormatError(ValueError):
    """A document that is not a plan this version can apply; the message says what to do."""


class Action(StrEnum):
    CREATE = "create"
    """No stock yet: apply creates it with the derived out_request_no."""
    UPDATE = "update"
    """A change WeChat Pay allows (busifavor modify or budget, favor modify-goods-id) or a
    lifecycle call (activate, pause, restart, stop): apply sends it."""
    RECOVER = "recover"
    """An interrupted create or update: apply settles it with the same number and body."""
    NOOP = "no-op"
    """In sync."""
    DRIFT = "drift"
    """The remote differs from what was applied, in observable fields. Reported, never acted on."""
    ORPHAN = "orphan"
    """In the state, no file any more. Stocks cannot be deleted: reported, never acted on."""
    BLOCKED = "blocked"
    """A create that cannot succeed (for example, its begin time has passed). An error."""
    IMMUTABLE = "immutable"
    """A field changed that WeChat Pay cannot change after creation. An error."""
    RENAME = "rename"
    """A create whose body equals an orphan's: probably a renamed id. An error; use `state mv`."""
    UNRESOLVED = "unresolved"
    """A create whose outcome is unknown and cannot be looked up (busifavor). An error."""
    UNTRACKED = "untracked"
    """A create for an id whose earlier stock `state rm` stopped tracking: creating again would
    make a second stock. An error; import the stock, or raise `generation` on purpose."""
    MISMATCH = "mismatch"
    """The stock WeChat Pay shows under the recorded stock_id is not the one recorded (another
    stock's identity): nothing may be sent to it. An error."""


ACTING = frozenset({Action.CREATE, Action.UPDATE, Action.RECOVER})
"""Actions apply performs."""
ERRORS = frozenset(
    {
        Action.BLOCKED,
        Action.IMMUTABLE,
        Action.RENAME,
        Action.UNRESOLVED,
        Action.UNTRACKED,
        Action.MISMATCH,
    }
)
"""Actions that make the plan fail: apply refuses a plan that holds any of them."""


@dataclass(frozen=True)
class FieldChange:
    """One field: `before` is what WeChat Pay has (or was sent), `after` what the file wants.

    `path` is dotted from the stock file's root (`spec.stock_send_rule.max_coupons`). `money`
    marks values in fen, so renderers also show yuan. `note` explains a non-obvious verdict.
    """

    path: str
    before: Any
    after: Any
    money: bool = False
    note: str = ""

    def to_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "money": self.money,
            "note": self.note,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FieldChange:
        return cls(
            data["path"], data["before"], data["after"], bool(data["money"]), str(data["note"])
        )


@dataclass(frozen=True)
class BudgetDelta:
    """A budget change of an existing stock, as money: `path` (a count) goes from `before` to
    `after`, each coupon worth `unit_fen` (busifavor: max_coupons × discount_amount)."""

    path: str
    before: int
    after: int
    unit_fen: int

    @property
    def fen(self) -> int:
        return (self.after - self.before) * self.unit_fen

    def to_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "unit_fen": self.unit_fen,
            "delta_fen": self.fen,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> BudgetDelta:
        return cls(
            str(data["path"]), int(data["before"]), int(data["after"]), int(data["unit_fen"])
        )


@dataclass(frozen=True)
class Change:
    """What happens to one stock, and why."""

    id: str
    kind: str
    merchant: str
    action: Action
    reason: str
    file: str | None = None
    line: int | None = None
    stock_id: str | None = None
    fields: tuple[FieldChange, ...] = ()
    operations: tuple[Operation, ...] = ()
    budget_fen: int | None = None
    """Money this create commits: favor max_amount; busifavor NORMAL discount × max_coupons."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Observed values that move on their own (status, issued counts): shown, never diffed."""
    suggestion: str = ""
    """A command that resolves an error (`reconciler state mv ...`, `state import ...`)."""
    locked_fen: int | None = None
    """Money the activation in this change locks from the merchant's balance (预充值)."""
    ceiling_fen: int | None = None
    """Of `budget_fen`, the money that is only a ceiling and never locked (免充值, 商家券)."""
    budget_deltas: tuple[BudgetDelta, ...] = ()
    """Budget changes this update makes, as money (a ceiling: nothing is locked)."""
    setting: str | None = None
    """Set for a per-merchant setting rather than a stock: "callback" (reconciler.callbacks)."""

    @property
    def is_error(self) -> bool:
        return self.action in ERRORS

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "merchant": self.merchant,
            "action": self.action.value,
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
            "stock_id": self.stock_id,
            "fields": [f.to_data() for f in self.fields],
            "operations": [o.to_data() for o in self.operations],
            "budget_fen": self.budget_fen,
            "facts": self.facts,
            "suggestion": self.suggestion,
            "locked_fen": self.locked_fen,
            "ceiling_fen": self.ceiling_fen,
            "budget_deltas": [d.to_data() for d in self.budget_deltas],
        } | ({"setting": self.setting} if self.setting else {})

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Change:
        return cls(
            id=data["id"],
            kind=data["kind"],
            merchant=data["merchant"],
            action=Action(data["action"]),
            reason=data["reason"],
            file=data["file"],
            line=data["line"],
            stock_id=data["stock_id"],
            fields=tuple(FieldChange.from_data(f) for f in data["fields"]),
            operations=tuple(Operation.from_data(o) for o in data["operations"]),
            budget_fen=data["budget_fen"],
            facts=dict(data["facts"]),
            suggestion=data["suggestion"],
            locked_fen=data.get("locked_fen"),
            ceiling_fen=data.get("ceiling_fen"),
            budget_deltas=tuple(BudgetDelta.from_data(d) for d in data.get("budget_deltas", [])),
            setting=data.get("setting"),
        )


@dataclass(frozen=True)
class MerchantTotals:
    merchant: str
    creates: int
    create_budget_fen: int
    """Money the creates and the recovered creates may commit."""
    updates: int
    estimated_seconds: int
    """Whole seconds apply needs for this merchant's requests under its rate limits (an
    integer, so the checksummed document has no float formatting to disagree about)."""
    recovers: int = 0
    """Interrupted creates and updates apply settles (counted apart, as the summary does)."""
    activation_locked_fen: int = 0
    """Money the activations in this plan lock from the merchant's balance (预充值 max_amount)."""
    ceiling_fen: int = 0
    """Of `create_budget_fen`, the money that is only a ceiling (免充值 and 商家券 discounts):
    never locked from a balance."""
    budget_delta_fen: int = 0
    """What the budget changes of existing stocks add (or remove), in fen (a ceiling)."""


@dataclass(frozen=True)
class Headline:
    """What a reviewer reads first: how many stocks change, and the money, per merchant."""

    create: int
    change: int
    """Updates and resumed (interrupted) requests."""
    unchanged: int
    drift: int
    orphan: int
    errors: int
    locked_fen: tuple[tuple[str, int], ...]
    """(merchant, fen) locked from the balance at activation (预充值 代金券)."""
    ceiling_fen: tuple[tuple[str, int], ...]
    """(merchant, fen) of the creates that is only a ceiling (免充值, 商家券 discounts)."""
    deltas: tuple[tuple[str, BudgetDelta], ...]
    """(stock id, budget change) of every budget change."""

    def to_data(self) -> dict[str, Any]:
        return {
            "create": self.create,
            "change": self.change,
            "unchanged": self.unchanged,
            "drift": self.drift,
            "orphan": self.orphan,
            "errors": self.errors,
            "locked_at_activation_fen": dict(self.locked_fen),
            "ceiling_fen": dict(self.ceiling_fen),
            "budget_changes": [{"id": i, **d.to_data()} for i, d in self.deltas],
        }


@dataclass(frozen=True)
class SubMerchantTotals:
    """Where the money of a service provider's creates lands: per sub-merchant (商家券: its
    `belong_merchant`; 免充值 代金券: each merchant in `available_merchants`, so a stock usable
    at several counts at each of them; these are ceilings and overlap)."""

    merchant: str
    """The creating merchant (the service provider)."""
    sub_merchant: str
    name: str
    """The display name `reconciler.yaml` gives it ("" when none)."""
    creates: int
    create_budget_fen: int
    ceiling_fen: int = 0
    locked_fen: int = 0


@dataclass(frozen=True)
class PlanScope:
    """What a scoped plan covers (`plan --merchant M`, `plan stocks/favor/`). A saved scoped
    plan applies only this, and its freshness check covers only this part of the state."""

    merchants: tuple[str, ...] = ()
    """The `--merchant` options (empty: every merchant)."""
    paths: tuple[str, ...] = ()
    """The stock paths given, relative to the project (empty: all of `stocks`)."""
    locked_merchants: tuple[str, ...] = ()
    """The merchants whose stocks the plan covers: what apply locks."""
    state_digest: str = ""
    """sha256 over the state's stocks in scope when the plan was made."""

    def to_data(self) -> dict[str, Any]:
        return {
            "merchants": list(self.merchants),
            "paths": list(self.paths),
            "locked_merchants": list(self.locked_merchants),
            "state_digest": self.state_digest,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PlanScope:
        return cls(
            tuple(data["merchants"]),
            tuple(data["paths"]),
            tuple(data["locked_merchants"]),
            str(data["state_digest"]),
        )

    def describe(self) -> str:
        """One line for people: "merchant 1900000001; paths stocks/favor"."""
        parts = []
        if self.merchants:
            parts.append(f"merchant {', '.join(self.merchants)}")
        if self.paths:
            parts.append(f"paths {', '.join(self.paths)}")
        return "; ".join(parts) or "everything"


@dataclass(frozen=True)
class Plan:
    """Everything apply needs, and everything a reviewer reads.

    `state_lineage`/`state_serial` pin the state the plan was made from; `desired_digest` pins
    the stock files (a digest over every file's id and content digest). Apply refuses the plan
    when either moved, or when it is older than the configured limit.
    """

    created_at: str
    tool_version: str
    state_lineage: str
    state_serial: int
    desired_digest: str
    refresh: str
    """"changing" (default), "all" or "none": which stocks were queried before planning."""
    changes: tuple[Change, ...]
    totals: tuple[MerchantTotals, ...] = ()
    estimated_apply_seconds: int = 0
    """Merchants run in parallel, so this is the slowest merchant's time."""
    refresh_note: str = ""
    """Why the refresh was limited (e.g. a fork pull request without credentials)."""
    format_version: int = FORMAT_VERSION
    scope: PlanScope | None = None
    """None: the plan covers every stock. Otherwise only what the scope says."""
    sub_totals: tuple[SubMerchantTotals, ...] = ()
    """Per sub-merchant of each service provider (merchants declaring `sub_merchants`)."""

    def counts(self) -> dict[str, int]:
        out = {a.value: 0 for a in Action}
        for c in self.changes:
            out[c.action.value] += 1
        return out

    def headline(self) -> Headline:
        """The counts and the money a reviewer reads first (from the changes and totals)."""
        counts = self.counts()
        return Headline(
            create=counts[Action.CREATE.value],
            change=counts[Action.UPDATE.value] + counts[Action.RECOVER.value],
            unchanged=counts[Action.NOOP.value],
            drift=counts[Action.DRIFT.value],
            orphan=counts[Action.ORPHAN.value],
            errors=sum(1 for c in self.changes if c.is_error),
            locked_fen=tuple(
                (t.merchant, t.activation_locked_fen)
                for t in self.totals
                if t.activation_locked_fen
            ),
            ceiling_fen=tuple((t.merchant, t.ceiling_fen) for t in self.totals if t.ceiling_fen),
            deltas=tuple(
                (c.id, d) for c in self.changes if c.action in ACTING for d in c.budget_deltas
            ),
        )

    @property
    def has_changes(self) -> bool:
        return any(c.action in ACTING for c in self.changes)

    @property
    def has_errors(self) -> bool:
        return any(c.is_error for c in self.changes)

    def to_data(self) -> dict[str, Any]:
        data = self._core_data()
        # Only in plans that have them, so every other plan reads as it always did.
        if self.scope is not None:
            data["scope"] = self.scope.to_data()
        if self.sub_totals:
            data["sub_merchant_totals"] = [
                {
                    "merchant": t.merchant,
                    "sub_merchant": t.sub_merchant,
                    "name": t.name,
                    "creates": t.creates,
                    "create_budget_fen": t.create_budget_fen,
                    "ceiling_fen": t.ceiling_fen,
                    "locked_fen": t.locked_fen,
                }
                for t in self.sub_totals
            ]
        return data

    def _core_data(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created_at": self.created_at,
            "tool_version": self.tool_version,
            "state": {"lineage": self.state_lineage, "serial": self.state_serial},
            "desired_digest": self.desired_digest,
            "refresh": self.refresh,
            "refresh_note": self.refresh_note,
            "summary": self.counts(),
            "headline": self.headline().to_data(),
            "has_changes": self.has_changes,
            "has_errors": self.has_errors,
            "estimated_apply_seconds": self.estimated_apply_seconds,
            "totals": [
                {
                    "merchant": t.merchant,
                    "creates": t.creates,
                    "create_budget_fen": t.create_budget_fen,
                    "updates": t.updates,
                    "recovers": t.recovers,
                    "estimated_seconds": t.estimated_seconds,
                    "activation_locked_fen": t.activation_locked_fen,
                    "ceiling_fen": t.ceiling_fen,
                    "budget_delta_fen": t.budget_delta_fen,
                }
                for t in self.totals
            ],
            "changes": [c.to_data() for c in self.changes],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Plan:
        """Read a plan document; keys this version does not know are ignored (a newer version
        may add some, and the checksum still covers them)."""
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            older = isinstance(version, int) and version < FORMAT_VERSION
            raise PlanFormatError(
                f"plan format_version {version!r} "
                + (
                    "was written by an older reconciler, whose plans lack what apply now needs"
                    if older
                    else f"is not {FORMAT_VERSION}, the version this reconciler applies"
                )
                + "; make a new plan with `reconciler plan --out FILE`"
            )
        return cls(
            created_at=data["created_at"],
            tool_version=data["tool_version"],
            state_lineage=data["state"]["lineage"],
            state_serial=data["state"]["serial"],
            desired_digest=data["desired_digest"],
            refresh=data["refresh"],
            refresh_note=data.get("refresh_note", ""),
            changes=tuple(Change.from_data(c) for c in data["changes"]),
            totals=tuple(
                MerchantTotals(
                    t["merchant"],
                    t["creates"],
                    t["create_budget_fen"],
                    t["updates"],
                    t["estimated_seconds"],
                    t.get("recovers", 0),
                    t.get("activation_locked_fen", 0),
                    t.get("ceiling_fen", 0),
                    t.get("budget_delta_fen", 0),
                )
                for t in data["totals"]
            ),
            estimated_apply_seconds=data["estimated_apply_seconds"],
            scope=None if data.get("scope") is None else PlanScope.from_data(data["scope"]),
            sub_totals=tuple(
                SubMerchantTotals(
                    t["merchant"],
                    t["sub_merchant"],
                    t["name"],
                    t["creates"],
                    t["create_budget_fen"],
                    t.get("ceiling_fen", 0),
                    t.get("locked_fen", 0),
                )
                for t in data.get("sub_merchant_totals", [])
            ),
        )

    def to_document(self) -> dict[str, Any]:
        """The saved form: `to_data()` plus `checksum` over everything else in it."""
        doc = self.to_data()
        doc["checksum"] = document_checksum(doc)
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Plan:
        """Read a saved plan, refusing it unless its checksum covers the document as saved
        (every key, including ones a newer version wrote and this one ignores)."""
        if not isinstance(doc, dict):
            raise PlanFormatError("a plan document is a JSON object")
        claimed = doc.get("checksum")
        plan = cls.from_data(doc)
        if claimed != document_checksum(doc):
            raise PlanFormatError(
                "the plan's checksum does not match its content (edited or truncated); make a new plan"
            )
        return plan

    def checksum(self) -> str:
        return document_checksum(self.to_data())


def document_checksum(doc: dict[str, Any]) -> str:
    """sha256 over the canonical JSON (sorted keys, compact, UTF-8) of every key but
    `checksum`: `apply` notices any edit of a saved plan."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = [
    "ACTING",
    "ERRORS",
    "FORMAT_VERSION",
    "Action",
    "BudgetDelta",
    "Change",
    "FieldChange",
    "Headline",
    "MerchantTotals",
    "OpType",
    "Operation",
    "Plan",
    "PlanFormatError",
    "PlanScope",
    "SubMerchantTotals",
    "document_checksum",
]
