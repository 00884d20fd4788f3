"""Small file-system helpers shared by the state store and the emulator's data file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

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
