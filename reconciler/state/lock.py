"""The state lock: a `<state>.lock` file that exists while one run may write the state.

The lock file is written in full to a temporary name and then hard-linked to its real name.
`link` fails if the name exists, exactly like `open(O_CREAT | O_EXCL)`, but a reader can never
see a half-written lock file. Where hard links are not supported we fall back to O_EXCL.

A run scoped to merchants (`apply --merchant M`) holds `<state>.lock.<mchid>` for each of its
merchants instead, so runs on different merchants proceed at once, and a whole-state run waits
for all of them. Each side creates its own files first and then looks for the other's: of two
runs starting together at least one sees the other and backs off, so both never hold the
state. Their saves to the one state file take turns under `serialised` (an `flock` on
`<state>.lock.save`, which the kernel releases when a process dies).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictInt, ValidationError

from reconciler.errors import StateError
from reconciler.fsutil import describe_os_error, pid_alive


class LockInfo(BaseModel):
    """Who holds the lock, for what, since when; `host` and `pid` allow stale detection."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lock_id: str
    holder: str
    command: str
    created_at: AwareDatetime
    host: str
    pid: StrictInt


class StateLockedError(StateError):
    """The state is locked by someone else (or the lock file cannot be read)."""

    def __init__(self, message: str, lock: LockInfo | None, stale: bool) -> None:
        super().__init__(message)
        self.lock = lock
        self.stale = stale


def is_stale(info: LockInfo) -> bool:
    """True only when we can tell: same host, and no process with the holder's pid."""
    return info.host == socket.gethostname() and not pid_alive(info.pid)


def read_lock(path: Path) -> LockInfo | None:
    """The current lock, None if there is none; StateError if the file cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read lock file {path}: {exc.strerror}") from exc
    try:
        return LockInfo.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        reason = "it is empty" if not raw else f"it is not a reconciler lock ({type(exc).__name__})"
        raise StateLockedError(
            f"lock file {path} exists but cannot be read: {reason}. Check that no reconciler "
            f"run is active, then delete it by hand: rm {path}",
            lock=None,
            stale=False,
        ) from None


def acquire(
    path: Path,
    info: LockInfo,
    *,
    state_path: Path,
    now: Callable[[], datetime],
    wait_seconds: float = 0.0,
    poll_seconds: float = 0.2,
) -> None:
    """Create the lock file for `info`, polling up to `wait_seconds` while another holds it.

    A lock whose holder is known to be dead (same host, no such pid) is reported at once:
    nobody will ever release it, so waiting could only delay the same error. It is never
    taken over silently; breaking it is the user's decision (`reconciler state unlock`).
    """
    data = info.model_dump_json(indent=2).encode() + b"\n"
    deadline = time.monotonic() + wait_seconds
    while True:
        if _try_create(path, data, info.lock_id):
            scoped = merchant_locks(path)
            if not scoped:
                return
            # Runs scoped to merchants hold parts of the state: wait for them like for a lock.
            _remove(path, "nothing was locked")
            blocker = scoped[0][1]
        else:
            blocker = path
        _held_by_another(blocker, state_path, now, deadline, poll_seconds)


def _held_by_another(
    lock_file: Path,
    state_path: Path,
    now: Callable[[], datetime],
    deadline: float,
    poll_seconds: float,
) -> None:
    """Another run holds `lock_file`: raise when waiting cannot help (a stale lock) or the
    time is up; else sleep one poll (or return at once when it was released meanwhile)."""
    try:
        current = read_lock(lock_file)
    except StateLockedError:
        if time.monotonic() >= deadline:
            raise
    else:
        if current is None:  # released between our attempt and the read: try again now
            return
        if is_stale(current) or time.monotonic() >= deadline:
            raise _locked_error(state_path, current, now())
    time.sleep(max(0.0, min(poll_seconds, deadline - time.monotonic())))


_MERCHANT = re.compile(r"[0-9]{5,32}")


def merchant_lock_path(path: Path, mchid: str) -> Path:
    """The lock file of one merchant's part of the state (`<state>.lock.<mchid>`)."""
    if not _MERCHANT.fullmatch(mchid):
        raise StateError(f"cannot lock merchant {mchid!r}: not a merchant id (5 to 32 digits)")
    return path.with_name(f"{path.name}.{mchid}")


def merchant_locks(path: Path) -> list[tuple[str, Path]]:
    """The merchant locks held beside the whole-state lock `path`, by merchant."""
    prefix = path.name + "."
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(
            f"cannot list the state folder {path.parent}: {describe_os_error(exc, path.parent)}"
        ) from exc
    return sorted(
        (name[len(prefix) :], path.parent / name)
        for name in names
        if name.startswith(prefix) and _MERCHANT.fullmatch(name[len(prefix) :])
    )


def acquire_merchants(
    path: Path,
    merchants: Collection[str],
    info: LockInfo,
    *,
    state_path: Path,
    now: Callable[[], datetime],
    wait_seconds: float = 0.0,
    poll_seconds: float = 0.2,
) -> None:
    """Create the lock file of each merchant (in order), polling up to `wait_seconds` while
    another run holds one of them or the whole state (`path`)."""
    data = info.model_dump_json(indent=2).encode() + b"\n"
    wanted = [merchant_lock_path(path, m) for m in sorted(set(merchants))]
    deadline = time.monotonic() + wait_seconds
    while True:
        taken: list[Path] = []
        blocker: Path | None = None
        for lock_file in wanted:
            if not _try_create(lock_file, data, info.lock_id):
                blocker = lock_file
                break
            taken.append(lock_file)
        if blocker is None and not path.exists():
            return
        for lock_file in taken:
            _remove(lock_file, "nothing was locked")
        _held_by_another(blocker or path, state_path, now, deadline, poll_seconds)


def release_merchants(path: Path, merchants: Collection[str], lock_id: str) -> None:
    """Remove our merchant locks; StateError (after removing the rest) if one was broken."""
    problem: StateError | None = None
    for mchid in sorted(set(merchants)):
        try:
            release(merchant_lock_path(path, mchid), lock_id)
        except StateError as exc:
            problem = problem or exc
    if problem is not None:
        raise problem


@contextlib.contextmanager
def serialised(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created when missing) for the block: the saves of
    runs scoped to different merchants take turns. The kernel drops it if the process dies."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not a POSIX system
        raise StateError(
            "runs scoped to merchants need POSIX file locks (flock), which this system lacks; "
            "apply without --merchant"
        ) from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(
            f"cannot open the save lock {path}: {describe_os_error(exc, path.parent)}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def release(path: Path, lock_id: str) -> None:
    """Remove our lock; StateError if it was broken or replaced while we held it."""
    current = read_lock(path)
    if current is None or current.lock_id != lock_id:
        now_held = "no lock" if current is None else f"lock {current.lock_id} of {current.holder}"
        raise StateError(
            f"the lock on the state was broken while this run held it (lock {lock_id}; now "
            f"{now_held}). Another run may have written the state meanwhile: review it "
            "before the next apply."
        )
    _remove(path, f"then run: reconciler state unlock {lock_id}")


def break_lock(path: Path, lock_id: str, *, state_path: Path) -> LockInfo:
    """Delete the lock if its id is `lock_id` (`reconciler state unlock <lock id>`)."""
    current = read_lock(path)
    if current is None:
        raise StateError(f"{state_path} is not locked (no {path}); nothing to unlock")
    if current.lock_id != lock_id:
        raise StateError(
            f"{state_path} is locked under lock id {current.lock_id} by {current.holder} "
            f"(`{current.command}`), not under {lock_id}; nothing removed. Check the id and "
            "that the holder is really gone."
        )
    _remove(path, "nothing was unlocked")
    return current


def _remove(path: Path, then: str) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return  # someone removed it meanwhile: the end state is the one wanted
    except OSError as exc:
        raise StateError(
            f"cannot remove the lock file {path}: {describe_os_error(exc, path.parent)}; {then}"
        ) from exc


def _try_create(path: Path, data: bytes, lock_id: str) -> bool:
    # A read-only folder or a full disk is the user's to fix: say so in one line.
    try:
        return _create_exclusive(path, data, lock_id)
    except OSError as exc:
        raise StateError(
            f"cannot create the lock file {path}: {describe_os_error(exc, path.parent)}"
        ) from exc


def _create_exclusive(path: Path, data: bytes, lock_id: str) -> bool:
    temp = path.with_name(f"{path.name}.{lock_id}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here: plain exclusive create
            return _create_with_o_excl(path, data)
        return True
    finally:
        with contextlib.suppress(OSError):  # a leftover temp is harmless; the error matters
            temp.unlink()


def _create_with_o_excl(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        # A half-written lock of ours would read as "unreadable lock" to everyone else.
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return True


def _locked_error(state_path: Path, info: LockInfo, now: datetime) -> StateLockedError:
    age = _age(now - info.created_at)
    stale = is_stale(info)
    lines = [
        f"{state_path} is locked by {info.holder}, running `{info.command}`, since "
        f"{info.created_at.isoformat()} ({age} ago); lock id {info.lock_id}."
    ]
    if stale:
        lines.append(
            f"The lock is stale: no process {info.pid} is running on this host "
            f"({info.host}); that run died without releasing it, so waiting cannot help."
        )
    else:
        lines.append("Wait for that run to finish, or retry with a wait time.")
    lines.append(
        "If that run is gone, make sure no reconciler is still working on this state, then "
        f"break the lock with:\n  reconciler state unlock {info.lock_id}"
    )
    return StateLockedError("\n".join(lines), lock=info, stale=stale)


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
