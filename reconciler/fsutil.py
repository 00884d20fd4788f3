"""Small file-system helpers shared by the state store and the emulator's data file.

Temporary files of an atomic save are named `.<file>.<host tag>.<pid>.<random>.tmp`: the
name says which process on which host wrote it, so a later save can remove the leftovers of a
killed process (and only those) without any registry of its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

_HOST_TAG_CHARS = 8
_ADVICE = {
    errno.EACCES: "make the folder {folder} writable",
    errno.EPERM: "make the folder {folder} writable",
    errno.EROFS: "the file system is read-only; put {folder} on a writable one",
    errno.ENOSPC: "free some space on the disk of {folder}",
    errno.EDQUOT: "free some space (the disk quota of {folder} is used up)",
}


def fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX); best effort where it is not possible."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def describe_os_error(exc: OSError, folder: Path) -> str:
    """`<reason>; <what to do>` for a failed file operation in `folder`, for one-line errors."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = _ADVICE.get(exc.errno or 0, "check the folder {folder} and its file system")
    return f"{reason}; {advice.format(folder=folder)}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (zombies count as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def host_tag(host: str | None = None) -> str:
    """A short file-name-safe stand-in for a host name (host names may hold any character)."""
    name = socket.gethostname() if host is None else host
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HOST_TAG_CHARS]


def temp_path(target: Path, *, pid: int | None = None, host: str | None = None) -> Path:
    """A new temporary name beside `target`, owned by `pid` on `host` (default: this process)."""
    owner = os.getpid() if pid is None else pid
    return target.with_name(f".{target.name}.{host_tag(host)}.{owner}.{secrets.token_hex(8)}.tmp")


def remove_stale_temps(target: Path) -> list[Path]:
    """Delete the temporary files of `target` left by dead processes of this host.

    A pid can only be checked on its own host, so files of other hosts stay, and so do names
    without an owner (written by older versions). Best effort: a file that cannot be removed
    is harmless and is left for the next save.
    """
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.{host_tag()}\.([1-9][0-9]{{0,9}})\.[0-9a-f]{{16}}\.tmp"
    )
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        found = pattern.fullmatch(name)
        if found is None or pid_alive(int(found.group(1))):
            continue
        with contextlib.suppress(OSError):
            (target.parent / name).unlink()
            removed.append(target.parent / name)
    return removed


def write_atomic(
    path: Path,
    content: bytes,
    *,
    mode: int = 0o666,
    before_replace: Callable[[Path], None] | None = None,
    durable: bool = True,
) -> None:
    """Write `content` to `path` whole or not at all: a temporary file named by `temp_path`
    (so a killed writer's leftover is found), fsynced, then renamed over `path`, and the folder
    fsynced. `mode` is the new file's (the umask applies; 0o600 for files that hold keys);
    `before_replace(temp)` runs just before the rename. On any failure the temporary file is
    removed and `path` is untouched. `durable=False` skips both fsyncs, for a file whose loss
    in a crash costs nothing but work (the rename still keeps readers from a torn file)."""
    temp = temp_path(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(temp)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    if durable:
        fsync_directory(path.parent)
