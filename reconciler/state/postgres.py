"""The state in PostgreSQL: one row per stock, for many pipelines sharing one state.

Tables live in their own schema, created on first use and versioned (`meta`). `state` holds the
one row with lineage, serial and the retired numbers; `stocks` one row per stock (its JSON as
text, byte for byte what the file backend writes, so digests never move); `locks` who holds
which lock; `set_aside` a state replaced by `state push --force`.

A commit is one transaction: it locks the `state` row, checks lineage and serial (and that the
run's lock connection still holds its locks), writes the changed stocks' rows and raises the
serial; a save is acknowledged after COMMIT, so it is durable (with the server's default
`synchronous_commit`). A killed client leaves the transaction rolled back: the previous state,
whole. The workers of one apply commit together (`save_deferred`, group commit): saves queued
while a commit is under way are written by the next one, all in one transaction that raises the
serial by their number, and a failed commit fails every save in it.

Locks are session advisory locks, held by a connection of their own for the whole run and
released by the server when that connection ends (a killed run leaves no lock behind). The
whole state is `pg_advisory_lock(key(schema))`; a run scoped to merchants takes that key
shared plus `key(schema, merchant)` exclusively per merchant, so runs on different merchants
proceed at once, and a whole-state run (state rm, push) waits for all of them.

The DSN is a secret: it appears in no message. Errors name where it came from (the variable).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from reconciler.errors import ConfigError, StateError
from reconciler.state.backend import Delta, StateMissingError, WallClock, delta, iter_merchants
from reconciler.state.lock import LockInfo, StateLockedError
from reconciler.state.model import State, StateDataError
from reconciler.state.store import INIT_STATE_FLAG, SECRET_MARKER, read_json, render_state

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # spliced into SQL: nothing else allowed
_WHOLE = "state"

_DDL = [
    "CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS {s}.state (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        lineage uuid NOT NULL,
        serial bigint NOT NULL CHECK (serial >= 0),
        retired text NOT NULL,
        retired_stock_ids text NOT NULL DEFAULT '{{}}')""",
    """CREATE TABLE IF NOT EXISTS {s}.stocks (
        id text PRIMARY KEY,
        merchant text NOT NULL,
        data text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS stocks_merchant ON {s}.stocks (merchant)",
    """CREATE TABLE IF NOT EXISTS {s}.images (
        merchant text NOT NULL,
        sha256 text NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (merchant, sha256))""",
    # Notify URLs (reconciler.callbacks); added to schemas made before them.
    "ALTER TABLE {s}.state ADD COLUMN IF NOT EXISTS callbacks text NOT NULL DEFAULT '{{}}'",
    """CREATE TABLE IF NOT EXISTS {s}.locks (
        scope text PRIMARY KEY,
        lock_id text NOT NULL,
        backend_pid integer NOT NULL,
        info text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.set_aside (
        lineage uuid NOT NULL,
        serial bigint NOT NULL,
        set_aside_at timestamptz NOT NULL DEFAULT now(),
        data text NOT NULL,
        PRIMARY KEY (lineage, serial))""",
]


_DDL_DIGEST = hashlib.sha256("\n".join(_DDL).encode()).hexdigest()[:16]
"""Recorded in `meta` once the DDL above ran, so that later first uses can skip it."""


def advisory_key(schema: str, scope: str) -> int:
    """A signed 64-bit advisory lock key for `scope` ("state" or "merchant:<mchid>")."""
    digest = hashlib.sha256(f"reconciler\0{schema}\0{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _dumps(value: object) -> str:
    try:
        return json.dumps(
            value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except (ValueError, TypeError) as exc:
        raise StateError(f"refusing to save the state: {exc}; nothing was written") from None


class PostgresStateStore:
    """The state in schema `schema` of the database at `dsn`.

    `dsn_source` (e.g. "$RECONCILER_STATE_DSN") is what messages name instead of the DSN.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "reconciler",
        dsn_source: str = "the configured DSN",
        clock: WallClock,
        lineage_source: Callable[[], UUID] = uuid4,
        lock_id_source: Callable[[], UUID] = uuid4,
        connect_timeout: int = 10,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(
                f"PostgreSQL schema name {schema!r} must be lower-case letters, digits and _"
            )
        self._dsn = dsn
        self.schema = schema
        self._source = dsn_source
        self._clock = clock
        self._lineage_source = lineage_source
        self._lock_id_source = lock_id_source
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        # Closed when the store is dropped or at exit, if nobody called close(): a CLI run
        # just ends, and an unclosed connection would warn.
        self._open: list[psycopg.Connection[Any]] = []
        weakref.finalize(self, _close_all, self._open)
        self._conn_lock = threading.RLock()
        self._known: State | None = None
        self._held: tuple[str, frozenset[str] | None] | None = None  # lock id, merchants
        # The server process of the lock's connection: a save checks it still holds the
        # advisory locks (a server restart ends it, and with it the locks).
        self._lock_pid: int | None = None
        self._ready = False
        # Group commit (`save_deferred`): saves queued since the last commit, and the lock
        # held by the one waiter that commits them.
        self._queue: list[_Queued] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def __repr__(self) -> str:  # never the DSN
        return f"PostgresStateStore(schema={self.schema!r}, dsn from {self._source})"

    @property
    def location(self) -> str:
        return f"postgresql schema {self.schema} (DSN from {self._source})"

    # --- connections -----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "the state is configured in PostgreSQL, but psycopg is not installed: "
                "pip install 'wechatpay-stock-reconciler[postgres]'"
            ) from None
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to the PostgreSQL state (DSN from {self._source}): "
                f"{self._scrub(exc)}"
            ) from None
        except Exception as exc:  # a malformed DSN raises ProgrammingError or ValueError
            raise StateError(
                f"cannot connect to the PostgreSQL state: the DSN from {self._source} is not "
                f"valid ({type(exc).__name__}); its value is not shown"
            ) from None
        return conn

    def _scrub(self, exc: BaseException) -> str:
        """The error's text without anything of the DSN in it."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        parts = [self._dsn]
        with contextlib.suppress(Exception):
            from psycopg.conninfo import conninfo_to_dict

            parts += [str(v) for v in conninfo_to_dict(self._dsn).values()]
        for part in sorted(parts, key=len, reverse=True):
            if len(part) >= 3:
                text = text.replace(part, "***")
        return text

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The store's connection (reconnected once if the server dropped it), one user at a
        time; errors of the server become StateError without the DSN."""
        import psycopg

        with self._conn_lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
                self._open[:] = [self._conn]
            try:
                if not self._ready:
                    self._ensure_schema(self._conn)
                    self._ready = True
                yield self._conn
            except psycopg.OperationalError as exc:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
                raise StateError(
                    f"the PostgreSQL state (DSN from {self._source}) failed: {self._scrub(exc)}. "
                    "Nothing of this step was written; run the command again."
                ) from None
            except psycopg.Error as exc:
                raise StateError(
                    f"the PostgreSQL state (schema {self.schema}) refused: {self._scrub(exc)}"
                ) from None

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        s = self.schema
        if self._schema_current(conn):
            return
        with conn.transaction():
            # Two first uses at once would race on CREATE ... IF NOT EXISTS.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(s, "setup"),))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            for statement in _DDL:
                conn.execute(statement.format(s=s))
            row = conn.execute(
                f"SELECT value FROM {s}.meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is None:
                conn.execute(
                    f"INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise _newer(s, row[0])
            conn.execute(
                f"INSERT INTO {s}.meta (key, value) VALUES ('ddl', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_DDL_DIGEST,),
            )

    def _schema_current(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether this reconciler's DDL ran on the schema already, found without locking its
        tables: ALTER TABLE and CREATE INDEX lock them even when there is nothing to do, and
        a run starting (a plan, a second pipeline) deadlocked the save of an apply under way."""
        s = self.schema
        with conn.transaction():
            found = conn.execute("SELECT to_regclass(%s)", (f"{s}.meta",)).fetchone()
            if found is None or found[0] is None:
                return False
            rows = conn.execute(
                f"SELECT key, value FROM {s}.meta WHERE key IN ('schema_version', 'ddl')"
            ).fetchall()
        meta = {str(k): str(v) for k, v in rows}
        version = meta.get("schema_version")
        if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
            raise _newer(s, version)
        return version == str(SCHEMA_VERSION) and meta.get("ddl") == _DDL_DIGEST

    # --- reading ---------------------------------------------------------------------------

    def load(self, *, create_if_missing: bool = False, init: bool = False) -> State:
        s = self.schema
        with self._session() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = conn.execute(
                f"SELECT lineage, serial, retired, retired_stock_ids, callbacks FROM {s}.state"
            ).fetchone()
            if head is None:
                return self._missing(conn, create_if_missing=create_if_missing, init=init)
            rows = conn.execute(f"SELECT data FROM {s}.stocks").fetchall()
            images = _read_images(conn, s)
        stocks = _stock_rows(rows, s)
        del rows
        data = {
            "format_version": 1,
            "lineage": str(head[0]),
            "serial": int(head[1]),
            "retired": json.loads(head[2]),
            "retired_stock_ids": json.loads(head[3]),
            "callbacks": json.loads(head[4]),
            "stocks": stocks,
            "images": images,
        }
        try:
            state = State.from_data(data)
        except StateDataError as exc:
            shown = "; ".join(exc.problems[:10])
            raise StateError(
                f"the PostgreSQL state (schema {s}) does not match the state format: {shown}. "
                "Nothing was changed; restore it from a `reconciler state pull` export."
            ) from None
        self._known = state
        return state

    def _missing(
        self, conn: psycopg.Connection[Any], *, create_if_missing: bool, init: bool
    ) -> State:
        s = self.schema
        evidence = []
        count = conn.execute(f"SELECT count(*) FROM {s}.stocks").fetchone()
        if count is not None and count[0]:
            evidence.append(f"{count[0]} stock row(s) in {s}.stocks without their state row")
        for lineage, serial in conn.execute(f"SELECT lineage, serial FROM {s}.set_aside"):
            evidence.append(f"a state set aside by a push: lineage {lineage}, serial {serial}")
        held = self._lock_rows(conn, live_only=True)
        for info in held:
            if self._held is None or info.lock_id != self._held[0]:
                evidence.append(f"the lock of {info.holder}, running `{info.command}`")
        if not init and (evidence or not create_if_missing):
            if not evidence:
                raise StateMissingError(
                    f"there is no state in PostgreSQL schema {s} yet. A new project has none "
                    "until the first `reconciler apply` writes it.",
                    evidence=[],
                )
            raise StateMissingError(
                f"there is no state row in PostgreSQL schema {s}, but this shows one was kept "
                "there (or is being written):\n"
                + "\n".join(f"  {e}" for e in evidence)
                + "\nGoing on with an empty state would create every stock again. Nothing was "
                "changed. Restore it with `reconciler state push FILE` from an export, or "
                f"start a new state on purpose with {INIT_STATE_FLAG}.",
                evidence=evidence,
            )
        state = State.new(str(self._lineage_source()))
        self._known = None
        return state

    # --- writing ---------------------------------------------------------------------------

    def save(self, state: State, *, previous: State | None = None) -> State:
        written, durable = self.save_deferred(state, previous=previous)
        durable()
        return written

    def save_deferred(
        self, state: State, *, previous: State | None = None
    ) -> tuple[State, Callable[[], None]]:
        """`save`, in two steps for group commit: queue `state`'s changes (serial + 1) and
        return what will be written with a function that returns once it is committed.

        Saves are queued one at a time, each on the one before; their waits may overlap, and
        the first waiter commits everything queued in ONE transaction (one COMMIT), raising the
        serial by the number of saves it holds. Nothing may act on a save (send its request)
        before its wait returned. A failed commit raises StateError for every save of that
        batch and every save queued on it; nothing of them was written, and the next save
        writes the state whole. The stock rows are serialised and checked for secrets when a
        save is queued, so a refused value fails only its own save, at once.

        Under merchant locks a save is one transaction of its own (the serial the server holds
        moves with other runs' saves meanwhile), durable when it returns."""
        if self._held is not None and self._held[1] is not None:
            return self._save_now(state, previous), _durable
        with self._queue_lock:
            base = self._base(state, previous)
            if base is None:
                rows = self._prepare(_everything(state, None), replace_all=True)
            else:
                rows = self._prepare(delta(base, state), replace_all=False)
            entry = _Queued(state, rows)
            self._queue.append(entry)
            written = state.model_copy(update={"serial": state.serial + 1})
            self._known = written
        return written, lambda: self._wait(entry)

    def _base(self, state: State, previous: State | None) -> State | None:
        """The stored state `state` was derived from, when known (see StateBackend.save)."""
        base = self._known
        if base is None or (base.lineage, base.serial) != (state.lineage, state.serial):
            base = previous  # what the caller says is stored, when this instance knows nothing
        if base is not None and (base.lineage, base.serial) != (state.lineage, state.serial):
            base = None
        return base

    def _wait(self, entry: _Queued) -> None:
        with self._commit_lock:
            if not entry.done:
                self._commit_queued()
        if entry.failure is not None:
            raise StateError(entry.failure)

    def _commit_queued(self) -> None:
        """Write every queued save in one transaction; mark them done, or all failed."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            self._write_batch(batch)
        except BaseException as exc:
            why = (
                str(exc)
                if isinstance(exc, StateError)
                else f"saving the state failed ({type(exc).__name__}); nothing was written"
            )
            with self._queue_lock:
                # Saves queued meanwhile build on the failed ones: they fail too, and the
                # next save starts again from what is stored (written whole).
                later, self._queue = self._queue, []
                self._known = None
            for failed in (*batch, *later):
                failed.failure, failed.done = why, True
            if not isinstance(exc, StateError):
                raise
            return
        for entry in batch:
            entry.done = True

    def _write_batch(self, batch: list[_Queued]) -> None:
        first = batch[0].state
        serial = first.serial + len(batch)
        # Pipelined: statements go out without waiting for each other's results (only the
        # reads wait), so a commit costs three round trips whatever it writes.
        with self._session() as conn, conn.pipeline(), conn.transaction():
            head = self._lock_head(conn, first)
            if head is None:
                self._write_all(conn, batch[-1].state, serial, self._check_secrets)
                return
            self._guard(str(head[0]), int(head[1]), first, None)
            rows = batch[0].rows
            if not rows.replace_all and int(head[1]) != first.serial:
                rows = self._prepare(_everything(first, None), replace_all=True)
            merged = _Rows({}, {})
            for queued in (rows, *(entry.rows for entry in batch[1:])):
                merged.then(queued)
            self._write_delta(conn, merged)
            self._write_head(conn, merged, serial, None)

    def _lock_head(self, conn: psycopg.Connection[Any], state: State) -> tuple[Any, ...] | None:
        """Lock the state row for this transaction and return its (lineage, serial); None when
        there is none yet and `state` is a new one. Refuses when the run's locks are gone."""
        s = self.schema
        # Both statements are sent before either result is read: one round trip when pipelined.
        reading = conn.execute(f"SELECT lineage, serial FROM {s}.state FOR UPDATE")
        self._check_lock_held(conn)
        head = reading.fetchone()
        if head is None and state.serial != 0:
            raise StateError(
                f"refusing to save: the state row in PostgreSQL schema {s} is gone "
                f"although this run loaded serial {state.serial}. Nothing was written."
            )
        return None if head is None else tuple(head)

    def _save_now(self, state: State, previous: State | None) -> State:
        """One save in one transaction, durable when it returns (under merchant locks)."""
        base = self._base(state, previous)
        scoped = self._held[1] if self._held is not None else None
        with self._session() as conn, conn.transaction():
            head = self._lock_head(conn, state)
            if head is None:
                self._write_all(conn, state, state.serial + 1, self._check_secrets)
                serial = state.serial + 1
            else:
                lineage, serial = str(head[0]), int(head[1])
                self._guard(lineage, serial, state, scoped)
                if base is None or (scoped is None and serial != state.serial):
                    # Without a base, write every stock (under a merchant lock: every stock
                    # of those merchants; the others' rows belong to other runs).
                    change, full = _everything(state, scoped), True
                else:
                    change, full = delta(base, state), False
                if scoped is not None:
                    outside = sorted(set(iter_merchants(change, base or state)) - scoped)
                    if outside:
                        raise StateError(
                            f"refusing to save: this run holds the locks of merchant(s) "
                            f"{', '.join(sorted(scoped))} only, but changed stocks of "
                            f"{', '.join(outside)}. Nothing was written."
                        )
                rows = self._prepare(change, replace_all=full and scoped is None)
                self._write_delta(conn, rows)
                serial += 1
                self._write_head(conn, rows, serial, scoped)
        written = state.model_copy(update={"serial": serial})
        self._known = written
        return written

    def _write_head(
        self,
        conn: psycopg.Connection[Any],
        rows: _Rows,
        serial: int,
        scoped: frozenset[str] | None,
    ) -> None:
        """Raise the state row's serial to `serial`, with the side changes of `rows`."""
        s = self.schema
        sets, values = ["serial = %s"], [serial]
        if rows.retired is not None:
            sets.append("retired = %s")
            values.append(rows.retired)  # type: ignore[arg-type]
        if rows.retired_ids is not None:
            sets.append("retired_stock_ids = %s")
            values.append(rows.retired_ids)  # type: ignore[arg-type]
        if rows.callbacks is not None:
            # Merged into the stored entries (keys `<mchid>/<kind>`): a delta holds only what
            # changed, and runs scoped to other merchants write theirs meanwhile, so only
            # this run's merchants' entries are replaced.
            row = conn.execute(f"SELECT callbacks FROM {s}.state").fetchone()
            stored: dict[str, Any] = json.loads(row[0]) if row else {}
            wanted = stored | {
                name: record
                for name, record in rows.callbacks.items()
                if scoped is None or name.split("/")[0] in scoped
            }
            text = _dumps(wanted)
            self._check_secrets(text)
            sets.append("callbacks = %s")
            values.append(text)  # type: ignore[arg-type]
        conn.execute(f"UPDATE {s}.state SET {', '.join(sets)}", tuple(values))

    def _check_lock_held(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse to save under a lock that is gone: the lock's connection ended (a server
        restart, a dropped connection), so another run may hold it now."""
        pid = self._lock_pid
        if pid is None:
            return
        counting = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s",
            (pid,),
        )
        held = counting.fetchone()  # pipelined: this round trip brings earlier results too
        if held is None or int(held[0]) == 0:
            raise StateError(
                f"refusing to save: this run's lock on the PostgreSQL state (schema "
                f"{self.schema}) is gone (the server restarted or dropped its connection), so "
                "another run may hold it now. Nothing of this step was written; run the "
                "command again: requests in doubt are retried under their recorded numbers."
            )

    def _guard(
        self, lineage: str, serial: int, state: State, scoped: frozenset[str] | None
    ) -> None:
        if lineage != state.lineage:
            raise StateError(
                f"refusing to save: PostgreSQL schema {self.schema} holds state lineage "
                f"{lineage}, but this state is lineage {state.lineage}. They are different "
                "state histories. Nothing was written; `reconciler state push --force` "
                "replaces it on purpose."
            )
        # Runs scoped to other merchants raise the serial meanwhile; they wrote other rows.
        if serial > state.serial and scoped is None:
            raise StateError(
                f"refusing to save: PostgreSQL schema {self.schema} is at serial {serial}, but "
                f"this run loaded serial {state.serial}; another run wrote the state "
                "meanwhile. Nothing was written; run the command again."
            )

    def _check_secrets(self, text: str) -> None:
        if SECRET_MARKER in text:
            raise StateError(
                f"refusing to save the state: a value contains {SECRET_MARKER!r}. Secrets "
                "never belong in the state; find where key material leaked into a stock "
                "body. Nothing was written."
            )

    def _prepare(self, change: Delta, *, replace_all: bool) -> _Rows:
        """`change` serialised as the rows it writes, every value checked for secrets."""
        check = self._check_secrets
        stocks: dict[str, tuple[str, str] | None] = {}
        for key, value in change.stocks.items():
            if value is None:
                stocks[key] = None
                continue
            try:
                data = value.model_dump(mode="json")
            except ValueError as exc:  # pydantic's serialisation error is one
                raise StateError(
                    f"refusing to save the state: {exc}; nothing was written"
                ) from None
            text = _dumps(data)
            check(text)
            stocks[key] = (value.merchant, text)
        images = {
            (merchant, sha): _dumps(image.model_dump(mode="json"))
            for merchant, mine in (change.images or {}).items()
            for sha, image in mine.items()
        }
        rows = _Rows(stocks, images, replace_all=replace_all)
        if change.retired is not None:
            rows.retired = _dumps(dict(change.retired))
        if change.retired_stock_ids is not None:
            rows.retired_ids = _dumps(dict(change.retired_stock_ids))
        if change.callbacks is not None:
            rows.callbacks = {
                name: record.model_dump(mode="json") for name, record in change.callbacks.items()
            }
        for text in (*images.values(), rows.retired or "", rows.retired_ids or ""):
            check(text)
        return rows

    def _write_delta(self, conn: psycopg.Connection[Any], rows: _Rows) -> None:
        """Write the stock and image rows of `rows` (inside the caller's transaction)."""
        s = self.schema
        if rows.images:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {s}.images (merchant, sha256, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT (merchant, sha256) DO UPDATE SET data = EXCLUDED.data",
                    [(m, sha, text) for (m, sha), text in rows.images.items()],
                )
        upserts = [(k, v[0], v[1]) for k, v in rows.stocks.items() if v is not None]
        if rows.replace_all:
            conn.execute(
                f"DELETE FROM {s}.stocks WHERE NOT (id = ANY(%s))", ([r[0] for r in upserts],)
            )
        removed = [k for k, v in rows.stocks.items() if v is None]
        if removed:
            conn.execute(f"DELETE FROM {s}.stocks WHERE id = ANY(%s)", (removed,))
        if upserts:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {s}.stocks (id, merchant, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET merchant = EXCLUDED.merchant, "
                    "data = EXCLUDED.data",
                    upserts,
                )

    def _write_all(
        self, conn: psycopg.Connection[Any], state: State, serial: int, check: Callable[[str], None]
    ) -> None:
        s = self.schema
        retired = _dumps(state.retired)
        retired_ids = _dumps(state.retired_stock_ids)
        check(retired)
        check(retired_ids)
        conn.execute(f"DELETE FROM {s}.stocks")
        conn.execute(f"DELETE FROM {s}.images")
        self._write_delta(
            conn,
            self._prepare(Delta(dict(state.stocks), None, images=state.images), replace_all=False),
        )
        callbacks = _dumps({k: v.model_dump(mode="json") for k, v in state.callbacks.items()})
        check(callbacks)
        conn.execute(
            f"INSERT INTO {s}.state (one, lineage, serial, retired, retired_stock_ids, callbacks) "
            "VALUES (true, %s, %s, %s, %s, %s)",
            (state.lineage, serial, retired, retired_ids, callbacks),
        )

    def replace(self, state: State, *, force: bool = False) -> State:
        s = self.schema
        with self._session() as conn, conn.transaction():
            head = conn.execute(f"SELECT lineage, serial FROM {s}.state FOR UPDATE").fetchone()
            serial = state.serial
            if head is not None:
                lineage, current = str(head[0]), int(head[1])
                if not force and lineage != state.lineage:
                    raise StateError(
                        f"refusing to push: PostgreSQL schema {s} holds lineage {lineage} "
                        f"(serial {current}), the file is lineage {state.lineage}: different "
                        "state histories. Nothing was written; add --force to replace it (it "
                        f"is kept in {s}.set_aside)."
                    )
                if not force and current > state.serial:
                    raise StateError(
                        f"refusing to push: PostgreSQL schema {s} is at serial {current}, newer "
                        f"than the file's serial {state.serial}. Nothing was written; add "
                        "--force to go back to the file's version."
                    )
                self._set_aside(conn)
                conn.execute(f"DELETE FROM {s}.state")
                serial = max(serial, current)
            self._write_all(conn, state, serial + 1, self._check_secrets)
        written = state.model_copy(update={"serial": serial + 1})
        self._known = written
        return written

    def _set_aside(self, conn: psycopg.Connection[Any]) -> None:
        """Keep the whole current state (as its JSON export) before a push replaces it."""
        s = self.schema
        head = conn.execute(
            f"SELECT lineage, serial, retired, retired_stock_ids, callbacks FROM {s}.state"
        ).fetchone()
        assert head is not None
        stocks = _stock_rows(conn.execute(f"SELECT data FROM {s}.stocks"), s)
        data = {
            "format_version": 1,
            "lineage": str(head[0]),
            "serial": int(head[1]),
            "retired": json.loads(head[2]),
            "retired_stock_ids": json.loads(head[3]),
            "callbacks": json.loads(head[4]),
            "stocks": stocks,
            "images": _read_images(conn, s),
        }
        conn.execute(
            f"INSERT INTO {s}.set_aside (lineage, serial, data) VALUES (%s, %s, %s) "
            "ON CONFLICT (lineage, serial) DO NOTHING",
            (head[0], head[1], render_state(data)),
        )

    # --- locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self,
        command: str,
        holder: str | None = None,
        *,
        wait_seconds: float = 0.0,
        poll_seconds: float = 0.2,
        merchants: Collection[str] | None = None,
    ) -> Iterator[LockInfo]:
        """Hold the whole state's lock (or, with `merchants`, those merchants' locks and the
        state's lock shared) on a connection of its own for the block."""
        pid, host = os.getpid(), socket.gethostname()
        info = LockInfo(
            lock_id=str(self._lock_id_source()),
            holder=holder or f"{_user()}@{host}:{pid}",
            command=command,
            created_at=self._clock.now(),
            host=host,
            pid=pid,
        )
        with self._session():
            pass  # the schema exists before the lock connection uses it
        conn = self._connect()
        scopes = (
            [_WHOLE] if merchants is None else [f"merchant:{m}" for m in sorted(set(merchants))]
        )
        try:
            self._acquire(
                conn,
                info,
                scopes,
                shared_whole=merchants is not None,
                wait_seconds=wait_seconds,
                poll_seconds=poll_seconds,
            )
            self._held = (info.lock_id, None if merchants is None else frozenset(merchants))
            self._lock_pid = conn.info.backend_pid
            try:
                yield info
            finally:
                self._held = None
                self._lock_pid = None
                with contextlib.suppress(Exception):
                    conn.execute(
                        f"DELETE FROM {self.schema}.locks WHERE lock_id = %s", (info.lock_id,)
                    )
        finally:
            conn.close()  # releases every advisory lock of this session

    def _acquire(
        self,
        conn: psycopg.Connection[Any],
        info: LockInfo,
        scopes: list[str],
        *,
        shared_whole: bool,
        wait_seconds: float,
        poll_seconds: float,
    ) -> None:
        s = self.schema
        deadline = time.monotonic() + wait_seconds
        whole = advisory_key(s, _WHOLE)
        keys = [advisory_key(s, scope) for scope in scopes if scope != _WHOLE]
        while True:
            got: list[tuple[str, int]] = []
            try:
                fn = "pg_try_advisory_lock_shared" if shared_whole else "pg_try_advisory_lock"
                if _fetch_bool(conn, f"SELECT {fn}(%s)", whole):
                    got.append((fn, whole))
                    for key in keys:
                        if not _fetch_bool(conn, "SELECT pg_try_advisory_lock(%s)", key):
                            break
                        got.append(("pg_try_advisory_lock", key))
                if len(got) == 1 + len(keys):
                    backend = conn.info.backend_pid
                    for scope in scopes:
                        conn.execute(
                            f"INSERT INTO {s}.locks (scope, lock_id, backend_pid, info) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT (scope) DO UPDATE SET "
                            "lock_id = EXCLUDED.lock_id, backend_pid = EXCLUDED.backend_pid, "
                            "info = EXCLUDED.info",
                            (scope, info.lock_id, backend, info.model_dump_json()),
                        )
                    return
                for fn, key in reversed(got):
                    unlock = fn.replace("pg_try_advisory_lock", "pg_advisory_unlock")
                    conn.execute(f"SELECT {unlock}(%s)", (key,))
            except Exception as exc:
                import psycopg

                if isinstance(exc, psycopg.Error):
                    raise StateError(
                        f"cannot lock the PostgreSQL state (DSN from {self._source}): "
                        f"{self._scrub(exc)}"
                    ) from None
                raise
            if time.monotonic() >= deadline:
                holders = self._lock_rows(conn, live_only=True)
                current = holders[0] if holders else None
                who = (
                    f"{current.holder}, running `{current.command}`, since "
                    f"{current.created_at.isoformat()}; lock id {current.lock_id}"
                    if current is not None
                    else "another run"
                )
                raise StateLockedError(
                    f"the PostgreSQL state (schema {s}) is locked by {who}.\nWait for that run "
                    "to finish, or retry with a wait time. A run that died releases its lock "
                    "by itself (its connection ends); for a hung connection: "
                    f"reconciler state unlock {current.lock_id if current else 'LOCK_ID'}",
                    lock=current,
                    stale=False,
                )
            time.sleep(max(0.0, min(poll_seconds, deadline - time.monotonic())))

    def _lock_rows(self, conn: psycopg.Connection[Any], *, live_only: bool) -> list[LockInfo]:
        """Recorded locks whose holder's connection is still there, the whole state's first."""
        s = self.schema
        rows = conn.execute(
            f"SELECT l.scope, l.info FROM {s}.locks l"
            + (
                " WHERE EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid)"
                if live_only
                else ""
            )
            + " ORDER BY l.scope <> 'state', l.scope"
        ).fetchall()
        return [LockInfo.model_validate_json(info) for _, info in rows]

    def read_lock(self) -> LockInfo | None:
        with self._session() as conn:
            rows = self._lock_rows(conn, live_only=True)
        return rows[0] if rows else None

    def unlock(self, lock_id: str) -> LockInfo:
        """End the connection that holds lock `lock_id` (its locks go with it)."""
        s = self.schema
        with self._session() as conn:
            row = conn.execute(
                f"SELECT backend_pid, info FROM {s}.locks WHERE lock_id = %s LIMIT 1", (lock_id,)
            ).fetchone()
            if row is None:
                raise StateError(
                    f"the PostgreSQL state (schema {s}) has no lock {lock_id}; nothing to unlock"
                )
            info = LockInfo.model_validate_json(row[1])
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            conn.execute(f"DELETE FROM {s}.locks WHERE lock_id = %s", (lock_id,))
        return info


@dataclass
class _Rows:
    """What one or more saves write, serialised: stock rows by id (None: removed), image rows,
    and the state row's side columns when they changed."""

    stocks: dict[str, tuple[str, str] | None]  # id -> (merchant, JSON)
    images: dict[tuple[str, str], str]  # (merchant, sha256) -> JSON
    retired: str | None = None
    retired_ids: str | None = None
    callbacks: dict[str, Any] | None = None
    replace_all: bool = False
    """Every stock row not in `stocks` is deleted (a save written whole)."""

    def then(self, later: _Rows) -> None:
        """Add the writes of the save queued after these, as if written one after the other."""
        if later.replace_all:
            self.stocks = dict(later.stocks)
            self.replace_all = True
        else:
            self.stocks.update(later.stocks)
        self.images.update(later.images)
        if later.retired is not None:
            self.retired = later.retired
        if later.retired_ids is not None:
            self.retired_ids = later.retired_ids
        if later.callbacks is not None:
            self.callbacks = (self.callbacks or {}) | later.callbacks


@dataclass(eq=False)
class _Queued:
    """A save waiting for its commit."""

    state: State
    rows: _Rows
    done: bool = False
    failure: str | None = None


def _everything(state: State, scoped: frozenset[str] | None) -> Delta:
    """All of `state` as a change (under merchant locks: all of those merchants')."""
    return Delta(
        {k: v for k, v in state.stocks.items() if scoped is None or v.merchant in scoped},
        state.retired if scoped is None else None,
        state.retired_stock_ids if scoped is None else None,
        {m: v for m, v in state.images.items() if scoped is None or m in scoped},
        state.callbacks,
    )


def _durable() -> None:
    """The wait of a save that was durable when it returned."""


def _newer(schema: str, version: object) -> StateError:
    return StateError(
        f"the PostgreSQL state schema {schema} is at version {version}, written by a newer "
        f"reconciler (this one knows version {SCHEMA_VERSION}); upgrade reconciler"
    )


def _stock_rows(rows: Iterable[tuple[Any, ...]], schema: str) -> dict[Any, Any]:
    """The rows of the stocks table as the state's `stocks` object, by id (`read_json`). A
    row that is not a JSON object is a StateError, never a traceback (a row without an id is
    left for the state's validation to name)."""
    stocks: dict[Any, Any] = {}
    for (text,) in rows:
        try:
            value = read_json(text)
        except (ValueError, RecursionError) as exc:
            value = exc
        if not isinstance(value, dict):
            shown = f"is not JSON ({value})" if isinstance(value, Exception) else "is not an object"
            raise StateError(
                f"the PostgreSQL state (schema {schema}) has a row in {schema}.stocks that "
                f"{shown}. Nothing was changed; restore it from a `reconciler state pull` export."
            )
        stocks[value.get("id")] = value
    return stocks


def _read_images(conn: psycopg.Connection[Any], schema: str) -> dict[str, dict[str, Any]]:
    images: dict[str, dict[str, Any]] = {}
    for merchant, sha, text in conn.execute(
        f"SELECT merchant, sha256, data FROM {schema}.images ORDER BY merchant, sha256"
    ):
        images.setdefault(str(merchant), {})[str(sha)] = json.loads(text)
    return images


def _close_all(connections: list[Any]) -> None:
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.close()


def _fetch_bool(conn: psycopg.Connection[Any], query: str, key: int) -> bool:
    row = conn.execute(query, (key,)).fetchone()
    return bool(row and row[0])


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
