"""商家券 code pools (`coupon_code_mode: MERCHANT_UPLOAD`): reading, checking, batching. Pure,
except `read_pool`, which reads the codes file named by the stock.

A stock names its pool with `codes: {file: codes/latte.txt}`: one code per line, relative to
the stock file's folder. Blank lines are skipped. Apply uploads the codes not uploaded yet in
batches of at most `MAX_BATCH`, each under an `upload_request_no` derived from the stock and
the batch's codes, so the same codes always make the same batches and numbers
(`reconciler.codes_apply` sends them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.diagnostic_messages import Msg, coded, msg
from reconciler.diagnostics import Diagnostic, Severity
from reconciler.ids import update_request_no
from reconciler.operation import Operation, OpType
from reconciler.plan import Action, Change, FieldChange
from reconciler.state.model import StockState

MAX_BATCH = 200
"""Codes per upload call (reference §7.4: 1-200)."""
MAX_CODE_LENGTH = 32
MAX_FILE_BYTES = 64 * 1024 * 1024
_CODE = re.compile(r"[0-9A-Za-z \-_\\/=|]+")
_BAD = re.compile(r"[^0-9A-Za-z \-_\\/=|]")


@dataclass(frozen=True)
class CodePool:
    """The codes of one stock, in file order, with the line of each."""

    file: str
    """The codes file as shown in messages (relative to the repository root)."""
    codes: tuple[str, ...]
    lines: tuple[int, ...]
    digest: str
    """sha256 of the file's bytes: part of the stock's digest, so a saved plan notices edits."""


def parse_codes(text: str, file: str) -> tuple[list[str], list[int], list[Diagnostic]]:
    """Every code of a codes file with its line, and every problem at file:line:col."""
    codes: list[str] = []
    lines: list[int] = []
    problems: list[Diagnostic] = []
    first: dict[str, int] = {}

    def error(line: int, col: int, message: Msg, code: str) -> None:
        problems.append(
            Diagnostic(file, line, col, Severity.ERROR, ("codes",), *coded(message, code))
        )

    for number, raw in enumerate(text.split("\n"), start=1):
        value = raw.removesuffix("\r")
        if not value.strip():
            continue
        if value != value.strip(" \t"):
            col = 1 if value[0] in " \t" else len(value.rstrip(" \t")) + 1
            error(
                number,
                col,
                msg("codes.space", code=value.strip()),
                "code_space",
            )
            continue
        bad = _BAD.search(value)
        if bad is not None:
            error(
                number,
                bad.start() + 1,
                msg("codes.character", code=value, char=bad.group(), allowed=msg("codes.allowed")),
                "code_character",
            )
            continue
        if len(value) > MAX_CODE_LENGTH:
            error(
                number,
                MAX_CODE_LENGTH + 1,
                msg("codes.length", code=value, n=len(value), max=MAX_CODE_LENGTH),
                "code_length",
            )
            continue
        if value in first:
            error(
                number,
                1,
                msg("codes.duplicate", code=value, first=first[value]),
                "code_duplicate",
            )
            continue
        first[value] = number
        codes.append(value)
        lines.append(number)
    return codes, lines, problems


def read_pool(
    folder: Path, stock_file: str, ref: str, at: tuple[int, int]
) -> tuple[CodePool | None, list[Diagnostic]]:
    """Read the codes file `ref` (relative to `folder`, the stock file's folder). `at` is the
    line and column of `codes.file` in the stock file, where a missing file is reported."""
    where = Path(stock_file).parent / ref
    shown = where.as_posix()
    path = folder / ref

    def refuse(message: Msg, code: str) -> tuple[None, list[Diagnostic]]:
        diagnostic = Diagnostic(
            stock_file, at[0], at[1], Severity.ERROR, ("codes", "file"), *coded(message, code)
        )
        return None, [diagnostic]

    if Path(ref).is_absolute():
        return refuse(msg("codes.path"), "codes_path")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return refuse(
                msg("codes.size", file=shown, size=size, max=MAX_FILE_BYTES), "codes_size"
            )
        raw = path.read_bytes()
    except OSError as exc:
        said = msg("codes.unreadable", file=shown, reason=str(exc.strerror or exc))
        return refuse(said, "codes_unreadable")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = Diagnostic(
            shown,
            line,
            1,
            Severity.ERROR,
            ("codes",),
            *coded(msg("codes.encoding"), "codes_encoding"),
        )
        return None, [problem]
    codes, lines, problems = parse_codes(text, shown)
    if not codes and not problems:
        return refuse(msg("codes.empty", file=shown), "codes_empty")
    pool = CodePool(shown, tuple(codes), tuple(lines), hashlib.sha256(raw).hexdigest())
    return pool, problems


def capacity_problems(
    pool: CodePool, capacity: int | None, at: tuple[str, int, int]
) -> list[Diagnostic]:
    """Fewer codes than coupons: the stock stops issuing when its codes run out (a warning:
    more codes can be uploaded later). `at` is the stock file's max_coupons position."""
    if capacity is None or len(pool.codes) >= capacity:
        return []
    return [
        Diagnostic(
            at[0],
            at[1],
            at[2],
            Severity.WARNING,
            ("codes",),
            *coded(
                msg(
                    "codes.fewer",
                    file=pool.file,
                    n=f"{len(pool.codes):,}",
                    capacity=f"{capacity:,}",
                ),
                "codes_fewer",
            ),
        )
    ]


def duplicates_across(pools: Iterable[tuple[str, str, CodePool]]) -> list[Diagnostic]:
    """A code in two stocks of one merchant: (merchant, stock id, pool) in load order."""
    seen: dict[tuple[str, str], tuple[str, CodePool, int]] = {}
    out = []
    for merchant, id, pool in sorted(pools, key=lambda p: (p[0], p[2].file, p[1])):
        for code, line in zip(pool.codes, pool.lines, strict=True):
            earlier = seen.setdefault((merchant, code), (id, pool, line))
            if earlier[0] != id:
                out.append(
                    Diagnostic(
                        pool.file,
                        line,
                        1,
                        Severity.ERROR,
                        ("codes",),
                        *coded(
                            msg(
                                "codes.other_stock",
                                code=code,
                                where=f"{earlier[1].file}:{earlier[2]}",
                                stock=earlier[0],
                                merchant=merchant,
                            ),
                            "code_duplicate_stock",
                        ),
                    )
                )
    return out


# --- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    request_no: str
    codes: tuple[str, ...]
    resend: bool = False
    """Recorded as sent, with no answer: resent with its number and codes unchanged."""

    @property
    def body(self) -> dict[str, object]:
        return {"coupon_code_list": list(self.codes), "upload_request_no": self.request_no}


def batch_number(merchant: str, kind: str, id: str, generation: int, codes: Sequence[str]) -> str:
    """The upload_request_no of a batch: derived from the stock and the batch's codes only."""
    digest = hashlib.sha256("\n".join(codes).encode("utf-8")).hexdigest()
    return update_request_no(merchant, kind, id, "upload_codes", digest, generation)


def uploaded(st: StockState | None) -> set[str]:
    """Codes WeChat Pay holds by the state's record (batches answered)."""
    if st is None:
        return set()
    return {c for b in st.code_batches.values() if b.done for c in b.uploaded}


def plan_batches(
    merchant: str, kind: str, id: str, generation: int, pool: CodePool, st: StockState | None
) -> list[Batch]:
    """In-doubt batches first (unchanged), then the codes neither uploaded nor in doubt, in
    file order, cut into batches of `MAX_BATCH`."""
    batches: list[Batch] = []
    covered = uploaded(st)
    if st is not None:
        for number, batch in sorted(st.code_batches.items(), key=lambda kv: kv[1].started_at):
            if batch.done:
                covered.update(batch.failed)  # refused codes are reported, not resent
                continue
            batches.append(Batch(number, tuple(batch.codes), resend=True))
            covered.update(batch.codes)
    todo = [c for c in pool.codes if c not in covered]
    for start in range(0, len(todo), MAX_BATCH):
        part = tuple(todo[start : start + MAX_BATCH])
        batches.append(Batch(batch_number(merchant, kind, id, generation, part), part))
    return batches


def removed(pool: CodePool, st: StockState | None) -> list[str]:
    """Codes uploaded earlier that the file no longer lists (reported; see the docs)."""
    wanted = set(pool.codes)
    return sorted(uploaded(st) - wanted)


def refused_codes(st: StockState | None) -> Mapping[str, str]:
    if st is None:
        return {}
    return {c: why for b in st.code_batches.values() if b.done for c, why in b.failed.items()}


_ACTS = frozenset({Action.CREATE, Action.UPDATE, Action.RECOVER, Action.NOOP})


def with_uploads(change: Change, pool: CodePool | None, st: StockState | None) -> Change:
    """`change` with the code batches its stock still needs, after its other requests."""
    if pool is None or change.action not in _ACTS:
        return change
    generation = st.generation if st is not None else change.operations[0].generation
    batches = plan_batches(change.merchant, change.kind, change.id, generation, pool, st)
    gone = removed(pool, st)
    notes = []
    if gone:
        shown = ", ".join(gone[:5]) + (", …" if len(gone) > 5 else "")
        notes.append(
            f"{len(gone):,} uploaded code(s) no longer in {pool.file} stay in WeChat Pay's pool and may still be issued ({shown}); reconciler does not delete codes"
        )
    refused = refused_codes(st)
    if refused:
        shown = "; ".join(f"{c}: {why}" for c, why in sorted(refused.items())[:3])
        notes.append(
            f"{len(refused):,} code(s) WeChat Pay refused are not sent again ({shown}); fix or remove them in {pool.file}"
        )
    if not batches:
        if not notes:
            return change
        return replace(change, reason=f"{change.reason}; {'; '.join(notes)}")
    count = sum(len(b.codes) for b in batches)
    resent = sum(1 for b in batches if b.resend)
    what = f"upload {count:,} code(s) from {pool.file} in {len(batches)} batch(es) of at most {MAX_BATCH}"
    if resent:
        what += (
            f"; {resent} batch(es) whose answer was lost are resent with their upload_request_no"
        )
    ops = tuple(
        Operation(OpType.UPLOAD_CODES, b.request_no, b.body, generation, {}, change.stock_id)
        for b in batches
    )
    done = len(uploaded(st))
    action = Action.UPDATE if change.action is Action.NOOP else change.action
    reason = what if change.action is Action.NOOP else f"{change.reason}; then {what}"
    return replace(
        change,
        action=action,
        reason="; ".join([reason, *notes]),
        operations=change.operations + ops,
        fields=(*change.fields, FieldChange("codes", done, done + count, note="codes uploaded")),
    )
