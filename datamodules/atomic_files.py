"""The one way the project publishes files and folders: readers see the old version or the whole new one, never a
partial one, even after ``kill -9``.

- :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_write_json`: one file (caches, reports,
  checkpoints, sidecars, wavs, figures).
- :func:`staged_directory`: a folder built aside and published when complete, either as a whole (``"folder"``: a
  clip folder, a merged model, a built dataset appears complete or not at all) or file by file (``"files"``: the
  adapter folder of a running training never disappears; each of its files is old or new).

It lives in the lowest package (data knows no model) so that metrics, the model, callbacks and tools all share it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

PublishMode = Literal["folder", "files"]
# errno values that mean "this file system takes no more bytes (for this process)".
FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class DiskFullError(OSError):
    """A write failed for lack of space (a full disk, a quota or a file-size limit). The message names the path
    and says that the previous version is unchanged; nothing partial is left at the path."""

    def __str__(self) -> str:
        return str(self.strerror)


def _full(error: OSError, path: Path) -> DiskFullError:
    return DiskFullError(
        error.errno,
        f"could not write {path}: {error.strerror or error} (no space left, a quota, or a file-size limit). The "
        f"previous version of {path.name} is unchanged. Free space on {path.parent} (or raise the limit) and run "
        "again; a training run resumes from its last checkpoint with --ckpt_path.",
    )


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, even after ``kill -9``.

    A hidden temporary file in the same directory (so the rename never crosses file systems) is written, flushed to
    disk and renamed over ``path`` with ``os.replace``, atomic on POSIX; the directory is then synced so that the
    rename itself survives a power cut. A failure removes the temporary file and leaves ``path`` as it was; lack of
    space is raised as :class:`DiskFullError`, which names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would make published files private
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            raise _full(error, path) from error
        raise
    _sync_directory(path.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """:func:`atomic_write_bytes` of ``text`` in ``encoding``."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, value: Any, indent: int | None = 2, sort_keys: bool = False,
                      default: Any = None) -> None:
    """``value`` as JSON (UTF-8, one trailing newline), written with :func:`atomic_write_bytes`."""
    text = json.dumps(value, indent=indent, sort_keys=sort_keys, default=default, ensure_ascii=False)
    atomic_write_text(path, text + "\n")


def ensure_publishable(final: str | Path, overwrite: bool) -> None:
    """Refuse, before anything is built, a ``final`` that is a file, or a folder holding files unless ``overwrite``.

    Raises:
        FileExistsError: the message names ``final`` and the way out.
    """
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final} exists and is not a folder.")
    if not overwrite and final.is_dir() and any(final.iterdir()):
        raise FileExistsError(f"{final} already holds files; choose a new folder or allow overwriting it.")


@contextlib.contextmanager
def staged_directory(final: str | Path, mode: PublishMode = "folder", overwrite: bool = True) -> Iterator[Path]:
    """Build a folder aside and publish it as ``final`` when the block ends without error.

    Yields a private, empty staging folder beside ``final`` (same file system, so publishing is renames only). On an
    error (or Ctrl-C) the staging folder is deleted and ``final`` is left exactly as it was.

    Args:
        mode: ``"folder"`` renames the whole folder into place: a new ``final`` appears complete or not at all; an
            existing one is moved aside first, then deleted (a reader sees old or new, with a gap of one rename).
            ``"files"`` moves each file into ``final`` with ``os.replace`` (sub-folders kept): ``final`` never
            disappears and holds, for each file, its old or its new version; files not rewritten stay.
        overwrite: whether an existing ``final`` that holds files may be replaced (checked before the block and
            again at publishing, so that a folder another process published meanwhile is never clobbered).

    Raises:
        FileExistsError: ``final`` is a file, or holds files and ``overwrite`` is false.
        DiskFullError: the disk, a quota or a file-size limit refused the bytes; ``final`` is as it was.
    """
    final = Path(final)
    ensure_publishable(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
        ensure_publishable(final, overwrite)
        if mode == "files":
            _publish_files(staging, final)
        else:
            _publish_folder(staging, final)
    except OSError as error:
        if error.errno in FULL_ERRNOS and not isinstance(error, DiskFullError):
            raise _full(error, final) from error
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_files(staging: Path, final: Path) -> None:
    final.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = final / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o666 & ~_umask())
            os.replace(path, target)
    _sync_directory(final)


def _publish_folder(staging: Path, final: Path) -> None:
    staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the published folder private
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        final.rename(old / "old")
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)
    _sync_directory(final.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_directory(directory: Path) -> None:
    """fsync a directory's entries (where the OS allows opening a directory; a no-op elsewhere)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
