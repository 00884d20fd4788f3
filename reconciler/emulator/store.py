"""What the emulator remembers: merchants, stocks, request numbers; saved atomically as JSON."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.emulator.keys import (
    WechatPayKeys,
    keys_from_data,
    keys_to_data,
    load_public_key,
    public_key_pem,
)
from reconciler.fsutil import remove_stale_temps, write_atomic

FORMAT = "reconciler-emulator/1"
FIRST_STOCK_ID = 10000001

KindName = Literal["favor", "busifavor"]
MerchantSigning = Literal["public_key", "platform_certificate"]
"""Which WeChat Pay key signs the answers to a merchant whose request names none."""


@dataclass
class EmulatedMerchant:
    mchid: str
    serial_no: str
    public_key: rsa.RSAPublicKey
    apiv3_key: str | None = field(default=None, repr=False)
    balance_fen: int | None = None
    """What 预充值 activations draw from (their max_amount); None: unlimited."""
    locked_fen: int = 0
    """Money locked by activations so far (each activation counts once)."""
    signing: MerchantSigning = "public_key"
    """The key that signs answers to requests without a known `Wechatpay-Serial`: the public
    key (a merchant in public-key mode), or the platform certificate (certificate mode)."""
    name: str | None = None
    """The merchant's registered short name (商户简称) or brand name; None: `short_name`."""
    logo_url: str | None = None
    """The brand logo WeChat Pay fills into a 商家券 that gives none; None: no brand logo."""

    @property
    def short_name(self) -> str:
        return self.name if self.name is not None else default_short_name(self.mchid)


def default_short_name(mchid: str) -> str:
    """The name an emulated merchant registered without one goes by (at most 12 characters)."""
    return f"测试商户{mchid[-4:]}"


@dataclass
class StoredStock:
    """One stock: the create body as received (updated by modifications) plus server fields.

    `status` is favor's lower-case `status` or busifavor's upper-case `stock_state`; `events`
    holds favor's `start_time`, `pause_time`, `restart_time` and `stop_time` once they happen.
    """

    kind: KindName
    stock_id: str
    creator_mchid: str
    out_request_no: str
    created_at: float
    create_time: str
    status: str
    body: dict[str, Any]
    events: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    """商家券 code pool: code -> the upload_request_no that uploaded it (routes_codes)."""
    codes_sent_again: int = 0
    """Codes that arrived again under another upload_request_no than the one that uploaded
    them: a client that uploads a code twice (the tests expect 0)."""

    def snapshot(self) -> StoredStock:
        return copy.deepcopy(self)


@dataclass
class RequestRecord:
    """A used request number: digests of what was sent, and the answer that was given."""

    digest_json: str
    digest_bytes: str
    stock_id: str
    response: dict[str, Any] | None


@dataclass
class Store:
    merchants: dict[str, EmulatedMerchant] = field(default_factory=dict)
    stocks: dict[str, StoredStock] = field(default_factory=dict)
    # (mchid, scope) -> request number -> record; scope is an endpoint name.
    request_numbers: dict[tuple[str, str], dict[str, RequestRecord]] = field(default_factory=dict)
    next_stock_id: int = FIRST_STOCK_ID
    uploads: dict[str, int] = field(default_factory=dict)
    """`<mchid>/<sha256>` -> how many times that merchant uploaded that image content."""
    sub_merchants: dict[str, set[str]] = field(default_factory=dict)
    """Service provider -> its authorised sub-merchants (子商户号)."""

    def subs_of(self, provider: str) -> frozenset[str]:
        return frozenset(self.sub_merchants.get(provider, ()))

    def provider_of(self, mchid: str) -> str | None:
        return next((p for p, subs in sorted(self.sub_merchants.items()) if mchid in subs), None)

    callbacks: dict[str, str] = field(default_factory=dict)
    """Notify URLs by `<kind>:<mchid>` (routes_callbacks)."""

    def allocate_stock_id(self) -> str:
        stock_id = str(self.next_stock_id)
        self.next_stock_id += 1
        return stock_id

    def numbers(self, mchid: str, scope: str) -> dict[str, RequestRecord]:
        return self.request_numbers.setdefault((mchid, scope), {})

    def to_data(self) -> dict[str, Any]:
        return {
            "next_stock_id": self.next_stock_id,
            "uploads": dict(sorted(self.uploads.items())),
            "merchants": {
                m.mchid: {
                    "serial_no": m.serial_no,
                    "public_key": public_key_pem(m.public_key).decode("ascii"),
                    "apiv3_key": m.apiv3_key,
                    "balance_fen": m.balance_fen,
                    "locked_fen": m.locked_fen,
                    "signing": m.signing,
                    "name": m.name,
                    "logo_url": m.logo_url,
                }
                for m in self.merchants.values()
            },
            "stocks": [
                {
                    "kind": s.kind,
                    "stock_id": s.stock_id,
                    "creator_mchid": s.creator_mchid,
                    "out_request_no": s.out_request_no,
                    "created_at": s.created_at,
                    "create_time": s.create_time,
                    "status": s.status,
                    "body": s.body,
                    "events": s.events,
                    "codes": s.codes,
                    "codes_sent_again": s.codes_sent_again,
                }
                for s in self.stocks.values()
            ],
            "request_numbers": [
                {
                    "mchid": mchid,
                    "scope": scope,
                    "number": number,
                    "digest_json": r.digest_json,
                    "digest_bytes": r.digest_bytes,
                    "stock_id": r.stock_id,
                    "response": r.response,
                }
                for (mchid, scope), records in sorted(self.request_numbers.items())
                for number, r in sorted(records.items())
            ],
            "sub_merchants": {p: sorted(subs) for p, subs in sorted(self.sub_merchants.items())},
            "callbacks": dict(sorted(self.callbacks.items())),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Store:
        store = cls(next_stock_id=int(data["next_stock_id"]))
        store.uploads = {str(k): int(v) for k, v in data.get("uploads", {}).items()}
        for mchid, m in data["merchants"].items():
            store.merchants[mchid] = EmulatedMerchant(
                mchid=mchid,
                serial_no=m["serial_no"],
                public_key=load_public_key(m["public_key"].encode("ascii")),
                apiv3_key=m["apiv3_key"],
                balance_fen=m.get("balance_fen"),
                locked_fen=int(m.get("locked_fen", 0)),
                signing=_signing(m.get("signing", "public_key")),
                name=m.get("name"),
                logo_url=m.get("logo_url"),
            )
        for s in data["stocks"]:
            store.stocks[s["stock_id"]] = StoredStock(**s)
        for provider, subs in (data.get("sub_merchants") or {}).items():
            store.sub_merchants[provider] = set(subs)
        store.callbacks = dict(data.get("callbacks") or {})
        for r in data["request_numbers"]:
            store.numbers(r["mchid"], r["scope"])[r["number"]] = RequestRecord(
                digest_json=r["digest_json"],
                digest_bytes=r["digest_bytes"],
                stock_id=r["stock_id"],
                response=r["response"],
            )
        return store


def _signing(value: object) -> MerchantSigning:
    if value in get_args(MerchantSigning):
        return cast(MerchantSigning, value)
    raise ValueError(f"unknown merchant signing {value!r}")


def dump(keys: WechatPayKeys, store: Store) -> dict[str, Any]:
    return {"format": FORMAT, "keys": keys_to_data(keys), **store.to_data()}


def load(path: Path) -> tuple[WechatPayKeys, Store] | None:
    """The keys and store saved at `path`, or None when there is no file yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    data = json.loads(raw)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an emulator data file (format {data.get('format')!r})")
    return keys_from_data(data["keys"]), Store.from_data(data)


def save_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a crash leaves either the old file or the new one, never a torn one.

    The temporary file's name carries this process's pid, so the next save removes what a
    killed emulator left behind.
    """
    payload = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    remove_stale_temps(path)
    # 0600: the file holds the emulator's private keys.
    write_atomic(path, payload, mode=0o600)
