"""A run's output folders: one run per name at a time (a lock file), and a start that fails leaves things as it found
them (folders it archived are put back, only folders it created are removed)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from os import path as osp

from basicsr_tur.utils.errors import RunError
from basicsr_tur.utils.files import pid_alive, process_start


def lock_path(run_dir: str) -> str:
    """The lock file of a run folder: `<parent>/.<name>.lock`, beside the folder, so it outlives the folder's
    archiving and exists before the folder does."""
    parent, name = osp.split(osp.normpath(run_dir))
    return osp.join(parent, f'.{name}.lock')


def _read_holder(path: str) -> dict | None:
    """The lock's content ({pid, host, started, proc_start}); None when it is gone, {} when unreadable."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _try_create(path: str, made_parent: list[str]) -> bool:
    """Create the lock file with O_EXCL, holding this process's PID, host and start time; False if it exists."""
    parent = osp.dirname(path)
    if not osp.isdir(parent):
        os.makedirs(parent, exist_ok=True)
        made_parent.append(parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    holder = {'pid': os.getpid(), 'host': socket.gethostname(), 'started': time.strftime('%Y-%m-%d %H:%M:%S'),
              'proc_start': process_start(os.getpid())}
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(holder, f)
    return True


@contextlib.contextmanager
def run_lock(run_dir: str, enabled: bool = True) -> Iterator[list[str]]:
    """Hold the lock of `run_dir` (e.g. experiments/<name>) for the block: a second run with the same name is refused
    before it touches anything; a lock left by a dead process on this host is taken over.

    Yields the lines to log once the run's logger exists (a lock taken over); logging here, before the log file is
    known, would set basicsr's root logger up without its file.

    enabled: False for processes that must not lock (ranks other than 0). Released when the block ends, however it
    ends (return, error, Ctrl-C); a killed process leaves a stale lock that the next run takes over. Raises
    RuntimeError, one line, naming the folder, the holder's PID, host and start time.
    """
    notes: list[str] = []
    if not enabled:
        yield notes
        return
    path, made_parent = lock_path(run_dir), []
    while not _try_create(path, made_parent):
        holder = _read_holder(path)
        if holder is None:  # released between our attempt and the read: try again
            continue
        host = holder.get('host', '?')
        # the holder is gone when its PID no longer runs, or runs another process (another start time)
        if holder and host == socket.gethostname() and not pid_alive(holder.get('pid'), holder.get('proc_start')):
            notes.append(f"{run_dir}: took over the lock {path} of PID {holder.get('pid')} "
                         f"(started {holder.get('started', '?')}), which is no longer running")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        if not holder:
            raise RunError(f'{run_dir} is locked by {path}, which cannot be read; if no run uses this name, '
                               'delete that file')
        raise RunError(f"{run_dir} is in use by PID {holder.get('pid')} on host {host} (started "
                           f"{holder.get('started', '?')}); choose another name or stop that run"
                           + ('' if host == socket.gethostname() else f' (if it is gone, delete {path})'))
    try:
        yield notes
    finally:
        holder = _read_holder(path)
        if holder and holder.get('pid') == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        for parent in made_parent:
            with contextlib.suppress(OSError):
                os.rmdir(parent)  # only if this run left nothing else in it


def _archive_name(path: str, stamp: str) -> str:
    """`<path>_archived_<stamp>`, with a counter if that name is taken (two archivings within one second)."""
    name, n = f'{path}_archived_{stamp}', 1
    while osp.exists(name):
        name, n = f'{path}_archived_{stamp}_{n}', n + 1
    return name


def _top_missing(path: str) -> str:
    """The outermost folder of `path` (itself included) that does not exist yet."""
    top = path
    while not osp.exists(osp.dirname(top)) and osp.dirname(top) != top:
        top = osp.dirname(top)
    return top


def _remove_made(path: str, top: str) -> None:
    """Remove `path` (made by this run), then the folders above it up to `top` that are left empty."""
    shutil.rmtree(path, ignore_errors=True)
    folder = osp.dirname(path)
    while path != top and len(folder) >= len(top):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only when empty: never another run's files
        path, folder = folder, osp.dirname(folder)


@contextlib.contextmanager
def fresh_run_dirs(archive: list[str], create: list[str]) -> Iterator[list[str]]:
    """Archive the folders of `archive` that exist (renamed to `*_archived_<time>`, as basicsr does), make the
    folders of `create`, and run the block; if the block fails, remove what this run made there and rename the
    archived folders back, so that the earlier run is exactly where it was (and `--auto_resume` finds it).

    archive: the run's own folders (experiments/<name>, tb_logger/<name>, results/<name>): whatever is in them
    after archiving was made by this run, including folders the block makes later (a tensorboard writer's).
    create: folders to make (inside the archived ones, or new ones).
    Yields the lines to log once the run's logger exists (what was archived where).
    """
    stamp = time.strftime('%Y%m%d_%H%M%S')
    moved: list[tuple[str, str]] = []
    made: list[tuple[str, str]] = []
    notes: list[str] = []
    try:
        for path in archive:
            if osp.exists(path):
                target = _archive_name(path, stamp)
                os.rename(path, target)
                moved.append((path, target))
                notes.append(f'{path} exists: renamed to {target}')
            made.append((path, _top_missing(path)))
        for path in create:
            if not osp.exists(path):
                made.append((path, _top_missing(path)))
                os.makedirs(path, exist_ok=True)
        yield notes
    except BaseException:
        for path, top in made:
            _remove_made(path, top)
        for path, target in moved:
            if not osp.exists(path):
                os.rename(target, path)
        raise


def output_dirs(path_opt: dict, root_key: str) -> list[str]:
    """The folders a run writes: `path_opt[root_key]` (experiments_root or results_root) and the other output folders
    of `path` (models, training_states, log, visualization), as basicsr's make_exp_dirs makes them."""
    inputs = ('strict_load', 'pretrain_network', 'resume', 'param_key')
    others = [p for k, p in path_opt.items()
              if k not in (root_key, 'experiments_root', 'results_root') and isinstance(p, str)
              and not any(word in k for word in inputs)]
    return [path_opt[root_key]] + others
