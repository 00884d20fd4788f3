"""Reading and writing the state file: crash-safe, guarded by lineage, serial and a lock.

A save never modifies the state file in place. The new version is written to a temporary
file in the same directory and fsynced; the current file is hard-linked to `<name>.backup`;
then `os.replace` swaps the new file in and the directory is fsynced. A crash at any moment
leaves either the old or the new complete file under the state's name (and `.backup` holds
the version before it), never a mixture and never nothing.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

from reconciler.errors import StateError
from reconciler.fsutil import describe_os_error, fsync_directory, remove_stale_temps, temp_path
from reconciler.state import lock as _lock
from reconciler.state.lock import LockInfo
from reconciler.state.model import FORMAT_VERSION, State, StateDataError

SECRET_MARKER = "PRIVATE KEY"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class StateStore:
    """The state file at `path`, its `.backup` and its `.lock`.

    `clock` stamps locks; `lineage_source` and `lock_id_source` provide the randomness (inject
    fixed ones in tests).
    """

    def __init__(
        self,
        path: Path,
        clock: Clock,
        lineage_source: Callable[[], UUID] = uuid4,
        lock_id_source: Callable[[], UUID] = uuid4,
    ) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._clock = clock
        self._lineage_source = lineage_source
        self._lock_id_source = lock_id_source

    # --- reading ----------------------------------------------------------------------------

    def load(self, *, create_if_missing: bool = False) -> State:
        """The state on disk. A missing file is a new empty state (serial 0, fresh lineage)
        only with `create_if_missing`; a damaged file is always an error, never "empty"."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if create_if_missing:
                return State.new(str(self._lineage_source()))
            backup = (
                f" (a backup exists: cp {self.backup_path} {self.path})"
                if self.backup_path.exists()
                else ""
            )
            raise StateError(
                f"state file {self.path} does not exist. A new project has none until the first "
                f"`reconciler apply` writes it. If it should exist, restore it{backup}; going on "
                "without it would forget the stock_id of every created stock."
            ) from None
        except OSError as exc:
            raise StateError(
                f"cannot read state file {self.path}: {describe_os_error(exc, self.path.parent)}"
            ) from exc
        try:
            return parse_state(raw)
        except StateError as exc:
            raise StateError(f"state file {self.path} {exc}\n{self._way_out()}") from None

    def init(self) -> State:
        """Write a new empty state (fresh lineage, serial 1); refuses if the file exists."""
        if self.path.exists():
            raise StateError(f"state file {self.path} already exists; not overwriting it")
        return self.save(State.new(str(self._lineage_source())))

    # --- writing ----------------------------------------------------------------------------

    def save(self, state: State) -> State:
        """Atomically write `state` with serial + 1 and return what was written.

        Refuses (StateError) when the file on disk belongs to another lineage or has a higher
        serial than `state` (someone else wrote it since it was loaded), when the file on disk
        cannot be read, and when any value looks like a private key.

        Temporary files of saves by dead processes of this host are removed. Every
        file-system failure is a one-line StateError; the previous file stays intact.
        """
        written = state.model_copy(update={"serial": state.serial + 1})
        data = written.to_data()
        try:
            text = render_state(data)
        except ValueError as exc:
            raise StateError(f"refusing to save the state: {exc}; nothing was written") from exc
        if SECRET_MARKER in text:  # the marker needs no JSON escaping, so this finds them all
            _refuse_secrets(data, "")
        self._check_disk(state)
        remove_stale_temps(self.path)
        remove_stale_temps(self.backup_path)
        try:
            self._write_atomically((text + "\n").encode("utf-8"))
        except OSError as exc:
            raise StateError(
                f"could not write state file {self.path}: "
                f"{describe_os_error(exc, self.path.parent)}. The previous version is intact; "
                "fix the cause and run the command again."
            ) from exc
        return written

    def _check_disk(self, state: State) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateError(
                f"cannot read state file {self.path}: {describe_os_error(exc, self.path.parent)}"
            ) from exc
        try:
            header = json.loads(raw)
            lineage, serial = header["lineage"], header["serial"]
            if not isinstance(serial, int) or not isinstance(lineage, str):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            raise StateError(
                f"refusing to save: state file {self.path} became unreadable after this run "
                f"loaded it (serial {state.serial}). Something else is writing it; find out "
                "what before saving again."
            ) from None
        if lineage != state.lineage:
            raise StateError(
                f"refusing to save: {self.path} belongs to state lineage {lineage}, but this "
                f"state is lineage {state.lineage}. They are different state histories (another "
                "project's file, or it was re-initialised). Nothing was written; if you really "
                "mean to replace it, move the file away first."
            )
        if serial > state.serial:
            raise StateError(
                f"refusing to save: {self.path} is at serial {serial}, but this run loaded "
                f"serial {state.serial}; another run wrote the state meanwhile. Nothing was "
                "written; run the command again so it starts from the newer state."
            )

    def _write_atomically(self, content: bytes) -> None:
        directory = self.path.parent
        # Not mkstemp: its 0600 would make a first state file unreadable to the group; with
        # 0666 the umask decides, as for any other file the user creates.
        temp = temp_path(self.path)  # names its owner, so a killed save's leftover is found
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileNotFoundError):
                os.chmod(temp, self.path.stat().st_mode & 0o777)
            self._keep_backup(directory)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        fsync_directory(directory)

    def _keep_backup(self, directory: Path) -> None:
        # The backup is a second name for the current file, made under a temporary name and
        # renamed over the old backup, so `.backup` is always some complete earlier version.
        if not self.path.exists():
            return
        temp = temp_path(self.backup_path)
        try:
            try:
                os.link(self.path, temp)
            except OSError:  # no hard links here: copy instead
                shutil.copy2(self.path, temp)
                with temp.open("rb") as f:
                    os.fsync(f.fileno())
            os.replace(temp, self.backup_path)
            # rename() between two names of one file succeeds without removing the source
            # (e.g. the backup already is the current file, after a failed save).
            temp.unlink(missing_ok=True)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise

    # --- locking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self,
        command: str,
        holder: str | None = None,
        *,
        wait_seconds: float = 0.0,
        poll_seconds: float = 0.2,
    ) -> Iterator[LockInfo]:
        """Hold `<state>.lock` for the block. Contention raises StateLockedError naming the
        holder and the unlock command, after polling up to `wait_seconds`."""
        pid, host = os.getpid(), socket.gethostname()
        info = LockInfo(
            lock_id=str(self._lock_id_source()),
            holder=holder or f"{_user()}@{host}:{pid}",
            command=command,
            created_at=self._clock.now(),
            host=host,
            pid=pid,
        )
        self._make_folder()
        _lock.acquire(
            self.lock_path,
            info,
            state_path=self.path,
            now=self._clock.now,
            wait_seconds=wait_seconds,
            poll_seconds=poll_seconds,
        )
        try:
            yield info
        except BaseException:
            # Keep the original error; a broken lock is reported only when nothing else is.
            with contextlib.suppress(StateError):
                _lock.release(self.lock_path, info.lock_id)
            raise
        _lock.release(self.lock_path, info.lock_id)

    def _make_folder(self) -> None:
        # The state's folder may not exist yet on a project's first apply.
        folder = self.lock_path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the state folder {folder}: {describe_os_error(exc, folder.parent)}"
            ) from exc

    def read_lock(self) -> LockInfo | None:
        return _lock.read_lock(self.lock_path)

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock whose id is `lock_id`; returns what it said. Refuses another id."""
        return _lock.break_lock(self.lock_path, lock_id, state_path=self.path)

    # --- messages ---------------------------------------------------------------------------

    def _way_out(self) -> str:
        stop = (
            "Nothing was changed. Do not delete the file to start afresh: it holds the "
            "stock_id of every created stock."
        )
        if not self.backup_path.exists():
            return (
                f"There is no backup ({self.backup_path} does not exist). Restore the file from "
                f"your own copy (CI artifact, version control). {stop}"
            )
        try:
            backup = parse_state(self.backup_path.read_bytes())
        except (StateError, OSError) as exc:
            return (
                f"The backup {self.backup_path} is unusable too ({exc}). Restore the file from "
                f"your own copy (CI artifact, version control). {stop}"
            )
        return (
            f"The previous version is in {self.backup_path} (serial {backup.serial}). Make sure "
            f"no reconciler run is active, then restore it with:\n  cp {self.backup_path} "
            f"{self.path}\nThe last write may be missing from it; the next plan shows what "
            f"differs. {stop}"
        )


def parse_state(raw: bytes) -> State:
    """Bytes of a state file -> State; StateError saying what is wrong (no file name)."""
    if not raw.strip():
        raise StateError("is empty" + (" (0 bytes)" if not raw else " (only whitespace)"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(
            f"is not UTF-8 text (bad byte at offset {exc.start}); it is not a state file"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Our files are one object, so every proper prefix of one fails at its very end (or
        # inside a string that runs to the end).
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise StateError(
                f"is truncated: its JSON ends early at line {exc.lineno} column {exc.colno} "
                "(an interrupted copy or a full disk?)"
            ) from None
        raise StateError(
            f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if isinstance(data, dict) and "format_version" in data:
        version = data["format_version"]
        if type(version) is int and version > FORMAT_VERSION:
            raise StateError(
                f"has format_version {version}, but this reconciler reads format_version "
                f"{FORMAT_VERSION} only: it was written by a newer reconciler. Upgrade "
                "reconciler; do not edit the version by hand"
            )
        if type(version) is not int or version != FORMAT_VERSION:
            raise StateError(
                f"has format_version {version!r}, which no reconciler writes (this one writes "
                f"{FORMAT_VERSION}); it is damaged or not a reconciler state file"
            )
    elif isinstance(data, dict):
        raise StateError("has no format_version; it is not a reconciler state file")
    try:
        return State.from_data(data)
    except StateDataError as exc:
        shown = exc.problems[:10]
        more = f" (and {len(exc.problems) - 10} more)" if len(exc.problems) > 10 else ""
        raise StateError("does not match the state format: " + "; ".join(shown) + more) from None


def _refuse_secrets(value: Any, path: str) -> None:
    # Defence in depth: state holds bodies and ids only, never key material.
    if isinstance(value, str) and SECRET_MARKER in value:
        raise StateError(
            f"refusing to save the state: the value at {path or '(top level)'} contains "
            f"{SECRET_MARKER!r}. Secrets never belong in the state file; find where key "
            "material leaked into a stock body. Nothing was written."
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_secrets(key, f"{path} (one of its keys)")  # never echo the key itself
            _refuse_secrets(item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_secrets(item, f"{path}[{index}]")


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _compact(value: object) -> str:
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )


def render_state(data: dict[str, Any]) -> str:
    """Deterministic JSON with one stock per line.

    Python's JSON encoder drops to pure Python as soon as it indents, which made a save of
    1,000 stocks cost about 0.2 s; each stock encoded compactly (in C) on a line of its own
    is ten times faster and keeps a state-branch diff readable per stock.
    """
    head = [f"  {_compact(k)}: {_compact(v)}" for k, v in sorted(data.items()) if k != "stocks"]
    stocks = data.get("stocks", {})
    lines = [f"    {_compact(sid)}: {_compact(stocks[sid])}" for sid in sorted(stocks)]
    body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    entries = sorted([*head, f'  "stocks": {body}'])
    return "{\n" + ",\n".join(entries) + "\n}"
