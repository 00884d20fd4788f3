"""Stocks made outside any tool, seeded from a file: `reconciler emulator seed FILE`.

The seed file (YAML or JSON) lists stocks as the merchant platform or another program would
have made them; each body is checked by the same rules as the create endpoint (as of its
creation time), gets a stock_id from the emulator and is stored with the status given:

    stocks:
      - kind: favor                    # or busifavor
        merchant: "1900000001"         # the creating merchant, registered in the emulator
        created: "2027-01-15T10:00:00+08:00"   # optional; default: now
        status: running                # optional; favor: unactivated (default), running,
                                       # paused, stoped; busifavor: RUNNING (default), ...
        body: {...}                    # the create body; out_request_no optional

Nothing of a seeded stock goes through a request number: no client ever sent it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.emulator.app import Emulator
from reconciler.emulator.failures import ApiFailure
from reconciler.emulator.routes_favor import STATUSES
from reconciler.emulator.store import Store, StoredStock
from reconciler.emulator.timefmt import format_time, parse_time
from reconciler.emulator.validate_busifavor import validate_busifavor_create
from reconciler.emulator.validate_favor import validate_favor_create

BUSIFAVOR_STATES = frozenset({"RUNNING", "UNAUDIT", "PAUSED", "STOPED"})


class SeedError(ValueError):
    """The seed file does not fit the format or a body breaks a create rule; says where."""


def read_seed(path: Path) -> list[Mapping[str, Any]]:
    """The stocks listed in a seed file."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError, UnicodeDecodeError) as exc:
        raise SeedError(f"{path}: cannot read it: {exc}") from None
    stocks = data.get("stocks") if isinstance(data, dict) else None
    if not isinstance(stocks, list) or not all(isinstance(s, dict) for s in stocks):
        raise SeedError(f"{path}: expected `stocks:` with a list of stocks (kind, merchant, body)")
    return stocks


def seed(
    emu: Emulator, stocks: Sequence[Mapping[str, Any]], now: float, where: str = ""
) -> list[str]:
    """Check every listed stock first, then store them all; returns their stock_ids."""
    made: list[tuple[str, str, float, str, dict[str, Any]]] = []
    for index, entry in enumerate(stocks):
        at = f"{where}stocks[{index}]"
        kind, merchant, body = entry.get("kind"), entry.get("merchant"), entry.get("body")
        if kind not in ("favor", "busifavor"):
            raise SeedError(f"{at}.kind: {kind!r}; use favor or busifavor")
        if not isinstance(merchant, str) or not isinstance(body, dict):
            raise SeedError(f"{at}: needs merchant (a quoted mchid) and body (the create body)")
        created = now
        if entry.get("created") is not None:
            moment = parse_time(str(entry["created"]))
            if moment is None:
                raise SeedError(f"{at}.created: {entry['created']!r} is not an RFC 3339 time")
            created = moment.timestamp()
        status = entry.get("status", "unactivated" if kind == "favor" else "RUNNING")
        allowed = STATUSES if kind == "favor" else BUSIFAVOR_STATES
        if status not in allowed:
            raise SeedError(f"{at}.status: {status!r}; use one of {', '.join(sorted(allowed))}")
        sent = {"out_request_no": f"SEED{index:06d}", **copy.deepcopy(body)}
        try:
            if kind == "favor":
                root = validate_favor_create(sent, caller=merchant, now=created, strict=True)
            else:
                root = validate_busifavor_create(sent, caller=merchant, strict=True)
        except ApiFailure as exc:
            raise SeedError(f"{at}.body: {exc.message} ({exc.code})") from None
        made.append((kind, merchant, created, str(status), root.data))

    def build(store: Store) -> list[StoredStock]:
        for _, merchant, _, _, _ in made:
            if merchant not in store.merchants:
                raise SeedError(
                    f"merchant {merchant} is not registered; `reconciler emulator add-merchant {merchant}` first"
                )
        out = []
        for kind, merchant, created, status, data in made:
            events = {"start_time": format_time(created)} if status in ("running", "paused") else {}
            out.append(
                StoredStock(
                    kind="favor" if kind == "favor" else "busifavor",
                    stock_id=store.allocate_stock_id(),
                    creator_mchid=merchant,
                    out_request_no=str(data["out_request_no"]),
                    created_at=created,
                    create_time=format_time(created),
                    status=status,
                    body=data,
                    events=events,
                )
            )
        return out

    return [s.stock_id for s in emu.insert_stocks(build)]
