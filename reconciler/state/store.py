"""Reading and writing the state file: crash-safe, guarded by lineage, serial and a lock.

A save never modifies the state file in place. The new version is written to a temporary
file in the same directory and fsynced; the current file is hard-linked to `<name>.backup`;
then `os.replace` swaps the new file in and the directory is fsynced. A crash at any moment
leaves either the old or the new complete file under the state's name (and `.backup` holds
the version before it), never a mixture and never nothing.

A missing state file is never taken for an empty state while a file beside it shows that a
state existed (a backup, a lock of another run, a temporary file of a save, a journal); and a
backup of another state history is set aside under its own name instead of being overwritten.

With `journal=True` (how a workspace opens it), a save of a few changed stocks does not
rewrite the file: it appends one line to `<state>.journal` and fsyncs it (`journal.py`), so a
save costs O(changed stocks). Loading applies the journal to the file. Releasing the lock
compacts: the whole state is written as above, the journal removed and `.backup` made a copy
of the result, so between runs `state.json` alone is the state, as it always was.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pydantic_core

from reconciler.errors import StateError
from reconciler.fsutil import (
    describe_os_error,
    fsync_directory,
    remove_stale_temps,
    temp_path,
    write_atomic,
)
from reconciler.parsecache import CheckedStates
from reconciler.state import lock as _lock
from reconciler.state.backend import (
    Delta,
    Listed,
    StateMissingError,
    WallClock,
    delta,
    iter_merchants,
    tracked_delta,
)
from reconciler.state.journal import Journal, header_line, parse_journal, record_line, replay
from reconciler.state.lock import LockInfo, is_stale
from reconciler.state.model import FORMAT_VERSION, State, StateDataError

SECRET_MARKER = "PRIVATE KEY"
INIT_STATE_FLAG = "--init-state"


__all__ = ["StateMissingError", "StateStore", "parse_state", "render_state"]

# A save that changes more stocks than this (and more than a quarter of them) rewrites the
# snapshot instead: replaying a journal that is most of the state gains nothing.
JOURNAL_MAX_RECORD_STOCKS = 256


class StateStore:
    """The state file at `path`, its `.backup` and its `.lock`.

    `clock` stamps locks; `lineage_source` and `lock_id_source` provide the randomness (inject
    fixed ones in tests). `journal`: saves of a few stocks append to `<state>.journal` and the
    lock's release compacts it (see the module's docstring); without it every save rewrites
    the file (a journal left by another instance is still read, and removed by the next save).
    `checked`: where the files whose recorded bodies passed the digest check are kept, so the
    same bytes are not checked again (a file with a journal always is).
    """

    def __init__(
        self,
        path: Path,
        clock: WallClock,
        lineage_source: Callable[[], UUID] = uuid4,
        lock_id_source: Callable[[], UUID] = uuid4,
        *,
        journal: bool = False,
        checked: CheckedStates | None = None,
    ) -> None:
        self.path = Path(path)
        self._checked = checked
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self._journal = journal
        # What this instance last loaded or wrote, and the stat of the file and the journal
        # then: while they are unchanged nobody else wrote, and a save may append to the
        # journal without reading anything.
        self._known: State | None = None
        self._known_lists: Listed | None = None  # the same, listed, for the next delta
        self._known_files: tuple[_Signature, _Signature] | None = None
        self._journal_length = 0
        # Group commit (`save_deferred`): journal lines written but maybe not yet fsynced. The
        # epoch counts journals (a snapshot or a new journal is durable when written, so a
        # line of an older epoch is durable); `_synced` is how much of this one surely is.
        self._sync_lock = threading.Lock()
        self._fsync_lock = threading.Lock()
        self._epoch = 0
        self._synced = 0
        self._sync_failure: tuple[int, int, str] | None = None  # (epoch, durable length, why)
        self._cuts = 0  # journals cut after a failed fsync: a save begun before one refuses
        self._clock = clock
        self._lineage_source = lineage_source
        self._lock_id_source = lock_id_source
        # The lock this instance holds right now: its own lock file is no sign of a lost state.
        self._held_lock_id: str | None = None
        # The merchants whose locks this instance holds (a scoped run); None: the whole state.
        self._scoped: frozenset[str] | None = None
        self.save_lock_path = self.path.with_name(self.path.name + ".lock.save")
        # The lineage `.backup` is known to hold (checked or written by this instance) and the
        # backup's stat when it was known: a save re-reads the backup only when it changed, not
        # on every create.
        self._known_backup: tuple[_Signature, str] | None = None

    # --- reading ----------------------------------------------------------------------------

    def load(self, *, create_if_missing: bool = False, init: bool = False) -> State:
        """The state on disk; a damaged file is always an error, never "empty".

        A missing file is a new empty state (serial 0, fresh lineage) only with
        `create_if_missing`, and only while nothing shows that a state was kept here: a
        `.backup`, a backup set aside as `.backup.<lineage>.<serial>`, a lock file other than
        the one this instance holds, or a temporary file of a save. Otherwise it raises
        StateMissingError naming each file and the way out. `init=True` (the CLI's
        `--init-state`) starts a new state even then; it implies `create_if_missing`, keeps
        every file it found, and never replaces an existing state file, which is loaded as
        usual.

        Under merchant locks (a scoped run), reading takes turns with the other runs' saves,
        and a missing state is written at once, so that runs starting together share it.
        """
        if self._scoped is not None:
            with _lock.serialised(self.save_lock_path):
                state = self._load(create_if_missing=create_if_missing, init=init)
                if state.serial == 0 and not self.path.exists():
                    state = self._save_whole(state)
                return state
        return self._load(create_if_missing=create_if_missing, init=init)

    def _load(self, *, create_if_missing: bool = False, init: bool = False) -> State:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if init or create_if_missing:
                return self._new_state(init=init)
            backup = (
                f" (a backup exists: cp {self.backup_path} {self.path})"
                if self.backup_path.exists()
                else ""
            )
            raise StateMissingError(
                f"state file {self.path} does not exist. A new project has none until the first "
                f"`reconciler apply` writes it. If it should exist, restore it{backup}; going on "
                "without it would forget the stock_id of every created stock.",
                evidence=[path for path, _ in self._evidence()],
            ) from None
        except OSError as exc:
            raise StateError(
                f"cannot read state file {self.path}: {describe_os_error(exc, self.path.parent)}"
            ) from exc
        try:
            data = parse_state_data(raw)
        except StateError as exc:
            raise StateError(f"state file {self.path} {exc}\n{self._way_out()}") from None
        journal = self._read_journal()
        if journal is not None:
            try:
                data = replay(data, journal)
            except StateError as exc:
                raise StateError(f"journal {self.journal_path} {exc}\n{self._way_out()}") from None
        checked = self._checked if journal is None else None
        key, keys = (checked.key(raw), checked.keys()) if checked is not None else ("", [])
        known = key in keys
        try:
            state = state_from_data(data, digests_checked=known)
        except StateError as exc:
            where = f"state file {self.path}" + (
                f" with its journal {self.journal_path}" if journal is not None else ""
            )
            raise StateError(f"{where} {exc}\n{self._way_out()}") from None
        if checked is not None and not known:
            checked.add(key, keys)
        self._remember(state, journal)
        return state

    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        """Nothing to release: every save is durable when it returns."""

    def _read_journal(self) -> Journal | None:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(
                f"cannot read the journal {self.journal_path}: "
                f"{describe_os_error(exc, self.path.parent)}"
            ) from exc
        try:
            return parse_journal(raw)
        except StateError as exc:
            raise StateError(f"journal {self.journal_path} {exc}\n{self._way_out()}") from None

    def _remember(self, state: State, journal: Journal | None) -> None:
        self._known = state
        self._known_lists = None
        with self._sync_lock:
            self._journal_length = 0 if journal is None else journal.valid_length
            self._epoch += 1
            self._synced = self._journal_length  # what was read back is what is there
        self._known_files = (_signature(self.path), _signature(self.journal_path))

    def _new_state(self, *, init: bool) -> State:
        if not init:
            evidence = self._evidence()
            if evidence:
                raise StateMissingError(self._missing_message(evidence), [p for p, _ in evidence])
        return State.new(str(self._lineage_source()))

    def _evidence(self) -> list[tuple[Path, str]]:
        """Files beside the (missing) state file that show a state was kept here, each with
        what it is."""
        directory = self.path.parent
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(
                f"cannot list the state folder {directory}: {describe_os_error(exc, directory)}"
            ) from exc
        found = []
        for name in names:
            note = self._evidence_note(name)
            if note is not None:
                found.append((directory / name, note))
        return found

    def _evidence_note(self, name: str) -> str | None:
        if name == self.backup_path.name:
            return "the backup of the state's previous version"
        if name.startswith(self.backup_path.name + "."):
            return "a backup of an earlier state history, set aside by a save"
        if name.startswith(f".{self.path.name}.") and name.endswith(".tmp"):
            return "a temporary file of a save that was interrupted or is under way"
        if name == self.lock_path.name:
            return self._lock_note()
        if name == self.journal_path.name:
            return "the journal of the saves since the state file was last written whole"
        return None

    def _lock_note(self) -> str | None:
        try:
            info = _lock.read_lock(self.lock_path)
        except StateError:  # unreadable: still a sign that a run was here
            return "a lock file that cannot be read"
        if info is None or info.lock_id == self._held_lock_id:
            return None
        gone = "; that process is gone, the lock is stale" if is_stale(info) else ""
        return (
            f"the lock of {info.holder}, running `{info.command}` since "
            f"{info.created_at.isoformat()}, lock id {info.lock_id}{gone}"
        )

    def _missing_message(self, evidence: list[tuple[Path, str]]) -> str:
        lines = [
            f"state file {self.path} does not exist, but the files beside it show that a "
            "state was kept here (or that a run is writing it):",
            *(f"  {path}  ({note})" for path, note in evidence),
            "Going on with an empty state would create every stock again. Nothing was changed.",
            "If a reconciler run is active, wait for it to finish.",
        ]
        backups = [p for p, _ in evidence if p.name.startswith(self.backup_path.name)]
        if backups:
            lines.append(f"To restore the last backup:\n  cp {backups[0]} {self.path}")
        else:
            lines.append(
                f"Otherwise restore {self.path} from your own copy (CI artifact, version "
                "control); a stale lock is removed with `reconciler state unlock LOCK_ID`."
            )
        lines.append(
            f"To start a new, empty state on purpose instead, run the command again with "
            f"{INIT_STATE_FLAG} (the files above are kept)."
        )
        return "\n".join(lines)

    def init(self) -> State:
        """Write a new empty state (fresh lineage, serial 1); refuses if the file exists."""
        if self.path.exists():
            raise StateError(f"state file {self.path} already exists; not overwriting it")
        return self.save(State.new(str(self._lineage_source())))

    # --- writing ----------------------------------------------------------------------------

    def save(self, state: State, *, previous: State | None = None) -> State:
        written, durable = self.save_deferred(state, previous=previous)
        durable()
        return written

    def save_deferred(
        self, state: State, *, previous: State | None = None
    ) -> tuple[State, Callable[[], None]]:
        """`save`, in two steps for group commit: write `state` (serial + 1) and return what
        was written with a function that returns once it is durable. Saves are made one at a
        time, as ever; their waits may overlap, so one fsync makes several appended saves
        durable at once. Nothing may act on a save (send its request) before its wait returned.
        A failed wait raises StateError for every save not durable yet; those lines are cut
        off the journal, and the next save writes the state whole.

        What `save` does:

        Refuses (StateError) when the state on disk belongs to another lineage or has a
        higher serial than `state` (someone else wrote it since it was loaded), when it cannot
        be read, and when any value looks like a private key.

        With the journal on, a save of few changed stocks (compared with `previous`, or with
        what this instance last loaded or wrote) appends them to the journal; otherwise the
        whole file is rewritten:

        A `.backup` that is not a version of `state`'s lineage (left by a deleted state, or
        unreadable) is never overwritten: it is renamed to `.backup.<lineage>.<serial>` (or
        `.backup.unreadable.<digest>`) first, and if that name holds other bytes already the
        save is refused. Temporary files of saves by dead processes of this host are removed.
        Every file-system failure is a one-line StateError; the previous file stays intact.

        Under merchant locks, see `_save_scoped`.
        """
        if self._scoped is not None:
            return self._save_scoped(state, previous, self._scoped), _durable
        if self._journal:
            cuts = self._cuts
            base = self._journal_base(state, previous)
            if base is not None:
                new: Listed | None = None
                change = tracked_delta(base, state)
                if change is None:  # not derived from `base` by pure updates: compare all
                    listed = self._known_lists
                    new = Listed.of(state)
                    known = listed if listed is not None and listed.state is base else base
                    change = delta(known, new)
                if change.size <= max(JOURNAL_MAX_RECORD_STOCKS, len(state.stocks) // 4):
                    written, ticket = self._append(state, change, cuts)
                    self._known_lists = (
                        None if new is None else Listed(written, new.keys, new.values)
                    )
                    return written, lambda: self._sync(ticket)
        return self._save_whole(state), _durable

    def _save_whole(self, state: State) -> State:
        """Rewrite the state file whole (serial + 1), durable when it returns."""
        written = state.model_copy(update={"serial": state.serial + 1})
        self._check_disk(state)
        self._write_snapshot(written)
        return written

    def _save_scoped(self, state: State, previous: State | None, scoped: frozenset[str]) -> State:
        """A save of a run holding the locks of `scoped` merchants only: other runs, scoped to
        other merchants, write the same file meanwhile. Under the save lock, the stocks this
        run changed (all of its merchants) are appended to the journal as the next serial on
        disk; the rest of the state is theirs and never written from this run's copy."""
        with _lock.serialised(self.save_lock_path):
            known = self._known
            if known is None or (known.lineage, known.serial) != (state.lineage, state.serial):
                known = previous
            if known is not None and (known.lineage, known.serial) != (
                state.lineage,
                state.serial,
            ):
                known = None
            files = (_signature(self.path), _signature(self.journal_path))
            if known is not None and files == self._known_files:
                on_disk = known.serial  # nobody wrote since this run's last save
            else:
                on_disk = self._disk_serial(state.lineage)
            if known is None:
                current = self._load()
                change = Delta(
                    {
                        **{
                            k: v
                            for k, v in state.stocks.items()
                            if v.merchant in scoped and current.stocks.get(k) != v
                        },
                        **{
                            k: None
                            for k, v in current.stocks.items()
                            if v.merchant in scoped and k not in state.stocks
                        },
                    },
                    None,
                )
                base = current
            else:
                change, base = delta(known, state), known
            outside = sorted(set(iter_merchants(change, base)) - scoped)
            if outside or change.retired is not None or change.retired_stock_ids is not None:
                what = f"stocks of {', '.join(outside)}" if outside else "the retired numbers"
                raise StateError(
                    f"refusing to save: this run holds the locks of merchant(s) "
                    f"{', '.join(sorted(scoped))} only, but changed {what}. Nothing was written."
                )
            self._known_lists = None
            self._known_files = (_signature(self.path), _signature(self.journal_path))
            written, _ = self._append(
                state.model_copy(update={"serial": on_disk}), change, self._cuts
            )
            # Durable before the save lock passes to another run's save, which follows it.
            try:
                _fsync(self.journal_path)
            except OSError as exc:
                raise StateError(
                    f"could not make the journal {self.journal_path} durable: "
                    f"{describe_os_error(exc, self.path.parent)}. Nothing more is sent; fix "
                    "the cause and run the command again."
                ) from exc
            return written

    def _disk_serial(self, lineage: str) -> int:
        """The serial of the state on disk now (the file and its journal), checking it is of
        `lineage`; remembers where the journal's complete records end, for the next append."""
        try:
            header = _header(self.path.read_bytes())
        except OSError as exc:
            raise StateError(
                f"cannot read state file {self.path}: {describe_os_error(exc, self.path.parent)}"
            ) from exc
        if header is None or header[0] != lineage:
            raise StateError(
                f"refusing to save: {self.path} is not the state this run loaded (another "
                "lineage, or unreadable). Nothing was written."
            )
        journal = self._read_journal()
        if journal is None or journal.lineage != lineage or journal.last_serial <= header[1]:
            self._journal_length = 0 if journal is None else journal.valid_length
            return header[1]
        self._journal_length = journal.valid_length
        return journal.last_serial

    def replace(self, state: State, *, force: bool = False) -> State:
        """Write `state` (read from an export) in place of the stored one (`state push`).

        Refuses a stored state of another lineage, or of the same lineage at a higher serial,
        unless `force`. The state it replaces becomes `.backup` (and a backup of another
        lineage is set aside, as by any save). The written serial is above both, so a plan
        made from either is refused by apply."""
        try:
            current: State | None = self.load(create_if_missing=True)
        except StateMissingError:
            if not force:
                raise
            current = None
        except StateError:
            if not force:
                raise
            current = None
        if current is not None and current.serial > 0 and not force:
            if current.lineage != state.lineage:
                raise StateError(
                    f"refusing to push: {self.path} holds lineage {current.lineage} (serial "
                    f"{current.serial}), the file is lineage {state.lineage}: different state "
                    "histories. Nothing was written; add --force to replace it (it is kept as "
                    "a backup)."
                )
            if current.serial > state.serial:
                raise StateError(
                    f"refusing to push: {self.path} is at serial {current.serial}, newer than "
                    f"the file's serial {state.serial}. Nothing was written; add --force to go "
                    "back to the file's version."
                )
        serial = max(state.serial, current.serial if current is not None else 0) + 1
        written = state.model_copy(update={"serial": serial})
        self._write_snapshot(written)
        return written

    def _journal_base(self, state: State, previous: State | None) -> State | None:
        """What `state` may be diffed against for an append: a state known to be the one on
        disk (same lineage and serial as `state`), while the files are as this instance left
        them; None when only a full write is safe."""
        known = self._known
        if known is None or (known.lineage, known.serial) != (state.lineage, state.serial):
            known = previous  # what the caller says is stored, when this instance knows nothing
        if known is None or (known.lineage, known.serial) != (state.lineage, state.serial):
            return None
        files = (_signature(self.path), _signature(self.journal_path))
        if files[0] is None or self._known_files != files:
            return None
        return known

    def _append(self, state: State, change: Delta, cuts: int) -> tuple[State, tuple[int, int]]:
        """Append `change` as one journal line (not fsynced: see `_sync`); returns what was
        written and the (epoch, length) the journal must be durable to."""
        written = state.model_copy(update={"serial": state.serial + 1})
        try:
            line = record_line(written.serial, change)
        except (ValueError, TypeError) as exc:
            raise StateError(f"refusing to save the state: {exc}; nothing was written") from exc
        if SECRET_MARKER.encode() in line:
            _refuse_secrets(json.loads(line.partition(b" ")[2]), "")
        # `_journal_base` found the files as this instance left them (unless a failed group
        # commit cut the journal since).
        known_files = self._known_files
        if known_files is None or self._cuts != cuts:
            raise StateError(
                "refusing to save: an earlier save of this run did not become durable; "
                "nothing was written"
            )
        state_file, journal = known_files
        try:
            if journal is None:
                head = header_line(state.lineage, state.serial)
                self._create_journal(head + line)  # durable when written
                with self._sync_lock:
                    self._epoch += 1
                    self._synced = self._journal_length = len(head) + len(line)
                    ticket = (self._epoch, self._journal_length)
                    self._known = written
                    self._known_files = (state_file, _signature(self.journal_path))
                return written, ticket
            with self._sync_lock:  # not while a failed group commit cuts the journal
                if self._cuts != cuts:
                    raise StateError(
                        "refusing to save: an earlier save of this run did not become "
                        "durable; nothing was written"
                    )
                self._journal_length, journal = self._append_line(line)
                ticket = (self._epoch, self._journal_length)
                self._known = written
                self._known_files = (state_file, journal)
            return written, ticket
        except OSError as exc:
            raise StateError(
                f"could not write the journal {self.journal_path}: "
                f"{describe_os_error(exc, self.path.parent)}. The previous state is intact; "
                "fix the cause and run the command again."
            ) from exc

    def _create_journal(self, content: bytes) -> None:
        # Written whole under a temporary name and renamed: a journal never lacks its header.
        write_atomic(self.journal_path, content)

    def _append_line(self, line: bytes) -> tuple[int, _Signature]:
        fd = os.open(self.journal_path, os.O_WRONLY)
        try:
            # Cut off a torn last line of an interrupted save (and anything a failed append
            # of ours left), so every record follows a complete one.
            if os.fstat(fd).st_size != self._journal_length:
                os.ftruncate(fd, self._journal_length)
            os.lseek(fd, self._journal_length, os.SEEK_SET)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._journal_length)
                raise
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return self._journal_length + len(line), (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        )

    def _sync(self, ticket: tuple[int, int]) -> None:
        """Return once the journal is durable up to `ticket`. One fsync covers every line
        written before it, so saves that wait together share it (group commit)."""
        epoch, length = ticket
        with self._fsync_lock:  # one fsync at a time; who waited for it may need none
            with self._sync_lock:
                failed = self._sync_failure
                if failed is not None and failed[0] == epoch and length > failed[1]:
                    raise StateError(failed[2])
                if epoch != self._epoch or self._synced >= length:
                    return  # durable already, or held by a later (durable) snapshot
                target = self._journal_length
            try:
                _fsync(self.journal_path)
            except OSError as exc:
                message = (
                    f"could not make the journal {self.journal_path} durable: "
                    f"{describe_os_error(exc, self.path.parent)}. Saves since the last durable "
                    "one may be lost, so nothing more is sent. Fix the cause and run the "
                    "command again: requests in doubt are retried under their recorded numbers."
                )
                self._cut_after_failure(epoch, message)
                raise StateError(message) from exc
            with self._sync_lock:
                if epoch == self._epoch:
                    self._synced = max(self._synced, target)

    def _cut_after_failure(self, epoch: int, message: str) -> None:
        # The lines after the durable length were never acknowledged: nothing acted on them.
        # Cut them off, so the journal says what is durable, and write whole next time.
        with self._sync_lock:
            if epoch != self._epoch:
                return
            self._sync_failure = (epoch, self._synced, message)
            self._cuts += 1
            with contextlib.suppress(OSError):
                os.truncate(self.journal_path, self._synced)
            self._journal_length = self._synced
            self._known = None
            self._known_lists = None
            self._known_files = None

    def compact(self) -> State | None:
        """Write the state whole and remove the journal (when there is one): afterwards the
        state file alone is the state. Returns the state, or None when there was no journal."""
        if not self.journal_path.exists():
            return None
        if self._scoped is not None:
            # Other scoped runs wrote this journal too: compact what is on disk, in turn.
            with _lock.serialised(self.save_lock_path):
                if not self.journal_path.exists():
                    return None
                return self._compact_from(self._load())
        known = self._known
        files = (_signature(self.path), _signature(self.journal_path))
        current = known if known is not None and files == self._known_files else self.load()
        return self._compact_from(current)

    def _compact_from(self, current: State) -> State:
        self._write_snapshot(current)
        # The file replaced was the run's starting point; the backup's job is to be a recent
        # complete version, so it becomes this one (the journal it replaces held the same).
        try:
            self._copy_to_backup()
        except OSError as exc:
            raise StateError(
                f"wrote {self.path}, but could not refresh its backup {self.backup_path}: "
                f"{describe_os_error(exc, self.path.parent)}"
            ) from exc
        with contextlib.suppress(OSError):
            self._known_backup = (_signature(self.backup_path), current.lineage)
        return current

    def _write_snapshot(self, written: State) -> None:
        # Not while a group commit fsyncs the journal this may remove.
        with self._fsync_lock:
            self._write_snapshot_now(written)

    def _write_snapshot_now(self, written: State) -> None:
        data = written.to_data()
        try:
            text = render_state(data)
        except (ValueError, TypeError) as exc:
            raise StateError(f"refusing to save the state: {exc}; nothing was written") from exc
        if SECRET_MARKER in text:  # the marker needs no JSON escaping, so this finds them all
            _refuse_secrets(data, "")
        self._set_aside_foreign_backup(written.lineage)
        remove_stale_temps(self.path)
        remove_stale_temps(self.backup_path)
        remove_stale_temps(self.journal_path)
        try:
            self._write_atomically((text + "\n").encode("utf-8"))
            # The file now holds every record of the journal (a crash before this leaves
            # records at or below its serial, which loading skips).
            if self.journal_path.exists():
                self.journal_path.unlink()
                fsync_directory(self.path.parent)
        except OSError as exc:
            raise StateError(
                f"could not write state file {self.path}: "
                f"{describe_os_error(exc, self.path.parent)}. The previous version is intact; "
                "fix the cause and run the command again."
            ) from exc
        # `.backup` is now absent or the file just replaced, which _check_disk found to be
        # of this lineage.
        with contextlib.suppress(OSError):
            self._known_backup = (_signature(self.backup_path), written.lineage)
        self._remember(written, None)

    def _set_aside_foreign_backup(self, lineage: str) -> None:
        try:
            signature = _signature(self.backup_path)
            if signature is None or self._known_backup == (signature, lineage):
                return
            raw = self.backup_path.read_bytes()
        except OSError as exc:
            raise StateError(
                f"refusing to save: cannot read the backup {self.backup_path} to check whose it "
                f"is: {describe_os_error(exc, self.path.parent)}. Nothing was written."
            ) from exc
        header = _header(raw)
        if header is not None and header[0] == lineage:
            self._known_backup = (signature, lineage)
            return
        kept = self.backup_path.with_name(
            f"{self.backup_path.name}.{header[0]}.{header[1]}"
            if header is not None
            else f"{self.backup_path.name}.unreadable.{hashlib.sha256(raw).hexdigest()[:16]}"
        )
        try:
            _move_without_overwrite(self.backup_path, kept, raw)
        except OSError as exc:
            raise StateError(
                f"refusing to save: cannot set aside the backup {self.backup_path} (another "
                f"state history) as {kept}: {describe_os_error(exc, self.path.parent)}. "
                "Nothing was written."
            ) from exc

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
        journal = self._read_journal()
        if (
            journal is not None
            and journal.lineage == lineage
            and journal.last_serial > state.serial
        ):
            raise StateError(
                f"refusing to save: {self.path} with its journal is at serial "
                f"{journal.last_serial}, but this run loaded serial {state.serial}; another run "
                "wrote the state meanwhile. Nothing was written; run the command again so it "
                "starts from the newer state."
            )

    def _write_atomically(self, content: bytes) -> None:
        directory = self.path.parent

        def keep_mode_and_backup(temp: Path) -> None:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(temp, self.path.stat().st_mode & 0o777)
            self._keep_backup(directory)

        # Not mkstemp: its 0600 would make a first state file unreadable to the group; with
        # 0666 the umask decides, as for any other file the user creates.
        write_atomic(self.path, content, before_replace=keep_mode_and_backup)

    def _copy_to_backup(self) -> None:
        # A copy, not a second name: the state file could then be edited in place (a `cp` of
        # a restore, a hand edit) without changing its backup too.
        temp = temp_path(self.backup_path)
        try:
            shutil.copyfile(self.path, temp)
            with temp.open("rb") as f:
                os.fsync(f.fileno())
            os.replace(temp, self.backup_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        fsync_directory(self.path.parent)

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
        merchants: Collection[str] | None = None,
    ) -> Iterator[LockInfo]:
        """Hold `<state>.lock` for the block. Contention raises StateLockedError naming the
        holder and the unlock command, after polling up to `wait_seconds`. With `merchants`,
        hold only those merchants' locks (`<state>.lock.<mchid>`), so that runs on other
        merchants proceed at once; their saves take turns (see `_save_scoped`). Before the
        lock is released, the journal is compacted into the state file."""
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
        if merchants is None:
            _lock.acquire(
                self.lock_path,
                info,
                state_path=self.path,
                now=self._clock.now,
                wait_seconds=wait_seconds,
                poll_seconds=poll_seconds,
            )

            def release() -> None:
                _lock.release(self.lock_path, info.lock_id)
        else:
            scope = frozenset(merchants)
            _lock.acquire_merchants(
                self.lock_path,
                scope,
                info,
                state_path=self.path,
                now=self._clock.now,
                wait_seconds=wait_seconds,
                poll_seconds=poll_seconds,
            )
            self._scoped = scope

            def release() -> None:
                _lock.release_merchants(self.lock_path, scope, info.lock_id)

        self._held_lock_id = info.lock_id
        try:
            yield info
        except BaseException:
            # Keep the original error; a broken lock is reported only when nothing else is.
            # The journal keeps every save if compacting fails too.
            with contextlib.suppress(StateError):
                self.compact()
            self._held_lock_id = None
            self._scoped = None
            with contextlib.suppress(StateError):
                release()
            raise
        try:
            self.compact()
        finally:
            self._held_lock_id = None
            self._scoped = None
            self._known = None  # this run saw its merchants only
            release()

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
        """Break the lock whose id is `lock_id` (the whole state's, or a scoped run's merchant
        locks); returns what it said. Refuses another id."""
        found: LockInfo | None = None
        for _mchid, lock_file in _lock.merchant_locks(self.lock_path):
            try:
                info = _lock.read_lock(lock_file)
            except StateError:
                continue
            if info is not None and info.lock_id == lock_id:
                found = _lock.break_lock(lock_file, lock_id, state_path=self.path)
        if found is not None:
            return found
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
    return state_from_data(parse_state_data(raw))


def parse_state_data(raw: bytes) -> dict[str, Any]:
    """Bytes of a state file -> its JSON object, format checked; not validated yet."""
    if not raw.strip():
        raise StateError("is empty" + (" (0 bytes)" if not raw else " (only whitespace)"))
    data = read_json(raw, _parse_standard)
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
    if not isinstance(data, dict):
        state_from_data(data)  # says what the top level is instead
        raise StateError("is not a JSON object")
    return data


def read_json(raw: bytes | str, standard: Callable[[Any], Any] = json.loads) -> Any:
    """JSON of a state (a file, a PostgreSQL row). pydantic's Rust parser reads a large state
    in half the time, and shares the short strings repeated across stocks. Anything it refuses
    goes to `standard`, the standard parser, which accepts the same documents (lone surrogates
    aside) and says where one breaks."""
    try:
        return pydantic_core.from_json(raw, allow_inf_nan=True, cache_strings="all")
    except ValueError:
        return standard(raw)


def _parse_standard(raw: bytes) -> Any:
    """`raw` read by the standard JSON parser; StateError saying where it breaks."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(
            f"is not UTF-8 text (bad byte at offset {exc.start}); it is not a state file"
        ) from None
    try:
        return json.loads(text)
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
    except (ValueError, RecursionError) as exc:  # a number too long to convert; deep nesting
        raise StateError(f"is not a state file reconciler can read: {exc}") from None


def state_from_data(data: object, *, digests_checked: bool = False) -> State:
    """Validated State from parsed JSON; StateError listing the problems (no file name).
    `digests_checked`: see `State.from_data`."""
    try:
        return State.from_data(data, digests_checked=digests_checked)
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


_Signature = tuple[int, int, int, int] | None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable() -> None:
    """The wait of a save that was durable when it returned."""


def _signature(path: Path) -> _Signature:
    """What changes when a file is rewritten or replaced; None when there is no file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _header(raw: bytes) -> tuple[str, int] | None:
    """(lineage, serial) of a state file's bytes; None when they are not readable as one."""
    try:
        data = json.loads(raw)
        lineage, serial = data["lineage"], data["serial"]
        # A UUID (checked, as it becomes part of a file name) and a plain int serial.
        if type(serial) is not int or str(UUID(lineage)) != lineage:
            return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return lineage, serial


def _move_without_overwrite(source: Path, target: Path, content: bytes) -> None:
    """Rename `source` (holding `content`) to `target`; if `target` exists with the same bytes
    just drop `source`, with other bytes refuse. The lock keeps others out between the two."""
    try:
        existing = target.read_bytes()
    except FileNotFoundError:
        os.rename(source, target)
    else:
        if existing != content:
            raise StateError(
                f"refusing to save: the backup {source} belongs to another state history and "
                f"must be kept, but {target} already exists with other content. Nothing was "
                "written; move one of them somewhere safe, then run the command again."
            )
        source.unlink()
    fsync_directory(source.parent)


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
    nested = ("stocks", "images")  # one stock, or one merchant's images, per line
    head = [f"  {_compact(k)}: {_compact(v)}" for k, v in sorted(data.items()) if k not in nested]
    entries = list(head)
    for name in nested:
        if name not in data and name != "stocks":
            continue
        inner = data.get(name, {})
        lines = [f"    {_compact(key)}: {_compact(inner[key])}" for key in sorted(inner)]
        body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
        entries.append(f"  {_compact(name)}: {body}")
    return "{\n" + ",\n".join(sorted(entries)) + "\n}"
