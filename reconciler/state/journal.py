"""The journal beside a state file: the saves made since the last snapshot, appended.

`<state>.journal` is a text file of lines `<checksum> <json>`, where the checksum is the first
16 hex digits of the SHA-256 of the JSON. The first line names the lineage and the snapshot
serial the journal continues; each further line is one save: its serial, the stocks it set
(or removed, as null) and the retired numbers when they changed.

A save appends one line and fsyncs; it has not returned before that, so nobody acted on a line
that did not reach the disk whole. A last line without its newline or with a wrong checksum is
therefore the save that was interrupted, and is ignored (and cut off by the next save). A bad
line anywhere else is damage, and an error: never skipped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import StateError
from reconciler.state.backend import Delta

JOURNAL_VERSION = 1


def _line(value: dict[str, Any]) -> bytes:
    text = json.dumps(
        value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    return f"{_checksum(text)} {text}\n".encode()


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def header_line(lineage: str, base_serial: int) -> bytes:
    return _line({"journal_version": JOURNAL_VERSION, "lineage": lineage, "base": base_serial})


def record_line(serial: int, delta: Delta) -> bytes:
    """One save as a journal line (raises ValueError for values JSON cannot hold)."""
    record: dict[str, Any] = {
        "serial": serial,
        "stocks": {
            key: None if value is None else value.model_dump(mode="json")
            for key, value in delta.stocks.items()
        },
    }
    if delta.retired is not None:
        record["retired"] = dict(delta.retired)
    if delta.retired_stock_ids is not None:
        record["retired_stock_ids"] = dict(delta.retired_stock_ids)
    if delta.images:
        record["images"] = {
            merchant: {sha: image.model_dump(mode="json") for sha, image in mine.items()}
            for merchant, mine in delta.images.items()
        }
    if delta.callbacks is not None:
        record["callbacks"] = {k: v.model_dump(mode="json") for k, v in delta.callbacks.items()}
    return _line(record)


@dataclass
class Journal:
    """A parsed journal: its lineage and base serial, the complete records, and how many
    bytes of the file they fill (a torn last line lies beyond `valid_length`)."""

    lineage: str
    base: int
    records: list[dict[str, Any]] = field(default_factory=list)
    valid_length: int = 0
    torn: bool = False

    @property
    def last_serial(self) -> int:
        return int(self.records[-1]["serial"]) if self.records else self.base


def parse_journal(raw: bytes) -> Journal:
    """Bytes of a journal -> Journal; StateError saying what is damaged (no file name)."""
    lines = raw.split(b"\n")
    # After the last newline: empty for a clean file, else a line whose save was interrupted.
    complete, tail = lines[:-1], lines[-1]
    values: list[dict[str, Any]] = []
    offset = 0
    torn = bool(tail)
    for number, line in enumerate(complete, start=1):
        value = _parse_line(line)
        if value is None:
            if number == len(complete) and not tail:
                torn = True  # the last line, written whole but not fsynced before a crash
                break
            raise StateError(
                f"is damaged at line {number}: its checksum does not match (edited by hand, "
                "or a disk error)"
            )
        values.append(value)
        offset += len(line) + 1
    if not values:
        raise StateError("has no readable first line; it is not a reconciler journal")
    head = values[0]
    if head.get("journal_version") != JOURNAL_VERSION:
        raise StateError(
            f"has journal_version {head.get('journal_version')!r}; this reconciler reads "
            f"version {JOURNAL_VERSION} only"
        )
    lineage, base = head.get("lineage"), head.get("base")
    if not isinstance(lineage, str) or type(base) is not int:
        raise StateError("has a first line without lineage and base serial")
    journal = Journal(lineage, base, values[1:], offset, torn)
    expected = base
    for record in journal.records:
        serial = record.get("serial")
        if (
            type(serial) is not int
            or serial != expected + 1
            or not isinstance(record.get("stocks"), dict)
        ):
            raise StateError(
                f"has a record out of sequence (serial {serial!r} after {expected}); it is damaged"
            )
        expected = serial
    return journal


def _parse_line(line: bytes) -> dict[str, Any] | None:
    checksum, _, body = line.partition(b" ")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if checksum.decode("ascii", "replace") != _checksum(text):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def replay(data: dict[str, Any], journal: Journal) -> dict[str, Any]:
    """The snapshot's data with the journal's records after its serial applied (records at
    or below it are already in the snapshot: a compaction that stopped before removing the
    journal). A journal that does not continue the snapshot is an error."""
    serial = data.get("serial")
    if data.get("lineage") != journal.lineage:
        raise StateError(
            f"belongs to lineage {journal.lineage}, but the state file is lineage "
            f"{data.get('lineage')}; they are different state histories"
        )
    if type(serial) is not int:
        raise StateError("cannot be applied: the state file has no serial")
    if serial > journal.last_serial:
        return data  # the snapshot already holds every record
    if serial < journal.base:
        raise StateError(
            f"continues serial {journal.base}, but the state file is at serial {serial}: "
            "records between them are missing"
        )
    stocks = dict(data.get("stocks") or {})
    retired = data.get("retired")
    retired_ids = data.get("retired_stock_ids")
    images = dict(data.get("images") or {})
    callbacks = data.get("callbacks")
    for record in journal.records:
        if record["serial"] <= serial:
            continue
        for key, value in record["stocks"].items():
            if value is None:
                stocks.pop(key, None)
            else:
                stocks[key] = value
        if "retired" in record:
            retired = record["retired"]
        if "retired_stock_ids" in record:
            retired_ids = record["retired_stock_ids"]
        if "images" in record:
            images = {**images, **record["images"]}
        if "callbacks" in record:
            callbacks = {**(callbacks or {}), **record["callbacks"]}
    return {
        **data,
        **({"images": images} if images else {}),
        "serial": journal.last_serial,
        "stocks": stocks,
        "retired": retired or {},
        "retired_stock_ids": retired_ids or {},
        "callbacks": callbacks or {},
    }
