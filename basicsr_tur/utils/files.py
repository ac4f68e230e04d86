"""Result files and folders written whole or not at all: one atomic writer for bytes, text, encoded images and
checkpoints (atomic_write), one for folders (atomic_dir).

Every file a run produces (tables, images, options copies, checkpoints) goes through `atomic_write`: the content is
written to `<path>.tmp<pid>` in the same folder, flushed to disk, then renamed over `path`. A full disk, a file size
limit or a crash therefore leaves the previous file (if any) as it was and no partial file under the final name.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator
from os import path as osp

import cv2
import numpy as np

from basicsr_tur.utils.errors import DataError

try:
    import resource
except ImportError:  # not on Windows, which has no file size limit to report
    resource = None

# `<name>.tmp<pid>`: the temporary name of atomic_write, so that a stale one names the process that left it.
_TEMP_RE = re.compile(r'\.tmp(\d+)$')


def temp_name(path: str) -> str:
    """The temporary file atomic_write writes before renaming it to `path`."""
    return f'{path}.tmp{os.getpid()}'


def _reason(err: BaseException, tmp: str) -> str:
    """Why a write failed, in words: the errno's text, else a full disk or the file size limit, else the message.

    torch.save reports ENOSPC/EFBIG as RuntimeError('[enforce fail at inline_container.cc] . unexpected pos ...'),
    with no errno, so the disk and the size limit are checked directly.
    """
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
    limited = resource is not None and limit != resource.RLIM_INFINITY
    too_large = f'{os.strerror(errno.EFBIG)} (file size limit {limit} bytes)'
    if isinstance(err, OSError) and err.errno:
        return too_large if err.errno == errno.EFBIG and limited else os.strerror(err.errno)
    try:
        if shutil.disk_usage(osp.dirname(tmp) or '.').free < 64 * 1024:
            return os.strerror(errno.ENOSPC)
    except OSError:
        pass
    if limited and osp.exists(tmp) and osp.getsize(tmp) >= limit:
        return too_large
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def atomic_write(path: str, content: bytes | str | Callable[[str], None], what: str = 'write') -> None:
    """Write `content` to `path` through a temporary file in the same folder, fsync and os.replace.

    content: bytes, text (UTF-8), or a function writing the file it is given (e.g. `lambda f: torch.save(x, f)`:
    torch writes a path with its own C++ writer, faster than through a Python file object).
    Folders are created. Raises OSError, one line: `could not <what> <path>: <reason> (the previous file, if any,
    is intact)`, after removing the temporary file; OSError and RuntimeError (how torch reports a full disk) are
    both caught.
    """
    tmp = temp_name(path)
    try:
        os.makedirs(osp.dirname(path) or '.', exist_ok=True)
        if callable(content):
            content(tmp)
        with open(tmp, 'r+b' if callable(content) else 'wb') as f:
            if not callable(content):
                f.write(content.encode('utf-8') if isinstance(content, str) else content)
                f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        reason = _reason(err, tmp)
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise OSError(f'could not {what} {path}: {reason} (the previous file, if any, is intact)') from None
    except BaseException:  # Ctrl-C or an error in `content`: no temporary file stays behind either
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def encode_image(path: str, img: np.ndarray) -> bytes:
    """Encode an 8/16-bit BGR (H, W, 3) or gray (H, W) image in the format of `path`'s extension (.png, .jpg...).

    cv2.imwrite reports success on a truncated file, so images are encoded here and written by atomic_write.
    Raises ValueError naming `path` when OpenCV cannot encode that format or array.
    """
    ext = osp.splitext(path)[1].lower() or '.png'
    try:
        ok, buf = cv2.imencode(ext, img)
    except cv2.error as err:
        ok, buf = False, str(err).strip().splitlines()[-1:]
    if not ok:
        raise DataError(f'could not encode image {path} as {ext} ({img.dtype}, shape {tuple(img.shape)})')
    return buf.tobytes()


def write_image(path: str, img: np.ndarray) -> None:
    """Write an OpenCV (BGR) image to `path` atomically, in the format of its extension (folders created)."""
    atomic_write(path, encode_image(path, img), what='write image')


def process_start(pid: int) -> str | None:
    """Start time of process `pid` in clock ticks since boot (Linux /proc), to tell a reused PID from its first
    owner; None where /proc has no such entry."""
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8') as f:
            # The command name (field 2) may hold spaces and brackets: count fields after its closing bracket.
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` runs on this host (a process of another user counts); with `start` (process_start's
    value when the PID was recorded), only if it is still that process and not a later one given the same PID."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start(pid) if start is not None else None
    return now is None or now == start


def remove_stale_temps(folder: str) -> list[str]:
    """Delete `*.tmp<pid>` files under `folder` left by processes that are gone (a run killed while saving).

    A file carrying this process's own PID is stale too (called before this process writes anything: its PID was
    reused). Returns the paths removed.
    """
    removed = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            match = _TEMP_RE.search(name)
            if match and (int(match.group(1)) == os.getpid() or not pid_alive(int(match.group(1)))):
                path = osp.join(dirpath, name)
                try:
                    os.remove(path)
                except FileNotFoundError:
                    continue
                removed.append(path)
    return sorted(removed)


@contextlib.contextmanager
def atomic_dir(out_dir: str) -> Iterator[str]:
    """Yield `<out_dir>.partial` to fill; rename it to out_dir on success, remove it on failure (the folder twin of
    atomic_write: a crash or a failed step never leaves a half-written folder under the final name).

    Raises FileExistsError when out_dir exists (nothing is replaced); a `.partial` left by an earlier crash is removed.
    """
    if osp.exists(out_dir):
        raise FileExistsError(f'{out_dir} already exists; remove it or choose another output')
    tmp = out_dir.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
