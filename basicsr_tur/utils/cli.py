"""Command-line entry: user-facing failures become one clear line on stderr and exit status 1; anything else is a
bug and keeps its traceback.

User-facing: the project's own error types (utils/errors.py UserError and its subclasses: OptionError, DataError,
CheckpointError, RunError, ...) and the operating system's OSError (a missing file, a full disk, a permission). A
KeyError, RuntimeError, TypeError or any other exception is unexpected: its traceback is printed, followed by one line
saying it is a bug to report (exit status 1).
"""
from __future__ import annotations

import ast
import contextlib
import os
import re
import sys
import traceback
from collections.abc import Callable

from tqdm import tqdm

from basicsr_tur.utils.dist import close_dist
from basicsr_tur.utils.errors import UserError

_USER_ERRORS = (UserError, OSError)
BUG_REPORT = ('this is a bug in basicsr-tur, not in your options or data: please report it with the traceback '
              'above and the command you ran')
# torch.utils.data re-raises an error of a loader worker (or of the pin-memory thread) as the same type with the
# message `Caught <Type> in DataLoader worker process N.\nOriginal Traceback (most recent call last):\n...`.
_WORKER_ERROR = re.compile(r'Caught \w+ in [^\n]*\nOriginal Traceback \(most recent call last\):\n')
_TRACEBACK_HEAD = 'Traceback (most recent call last):\n'
_EXCEPTION_LINE = re.compile(r'(?:[A-Za-z_][\w.]*)(?:: (?P<message>.*))?', re.S)


def error_message(err: BaseException) -> str:
    """The message a user should see for err: a KeyError's own text rather than its repr, and for an error that
    torch re-raised from a loader worker the original message alone, without the worker's traceback."""
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if not _WORKER_ERROR.match(message):
        return message
    # The last traceback block is the exception that was raised (earlier blocks are its chained causes); its
    # frames are indented, and the first line that is not is `<module.Type>: <message>`.
    block = message[message.rindex(_TRACEBACK_HEAD) + len(_TRACEBACK_HEAD):]
    lines = block.splitlines()
    first = next((i for i, line in enumerate(lines) if line and not line[0].isspace()), None)
    if first is None:
        return message
    original = '\n'.join(lines[first:]).strip()
    match = _EXCEPTION_LINE.fullmatch(original)
    if match is None:
        return original
    text = (match.group('message') or type(err).__name__).strip()
    if isinstance(err, KeyError) and text[:1] in '\'"':  # a KeyError's message is printed as its repr
        with contextlib.suppress(ValueError, SyntaxError):
            text = str(ast.literal_eval(text))
    return text


def run_cli(pipeline: Callable[[str], object], root_path: str) -> int:
    """Run pipeline(root_path); known errors print `error: <message>` (BASICSR_TUR_TRACEBACK=1 for the trace)."""
    try:
        pipeline(root_path)
        close_dist()
    except _USER_ERRORS as err:
        if os.environ.get('BASICSR_TUR_TRACEBACK'):
            raise
        # A progress bar left open by the failure would otherwise print its last line after ours, at exit.
        for bar in list(getattr(tqdm, '_instances', ())):
            bar.close()
        print(f'error: {error_message(err)}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except Exception:  # an unexpected exception: a bug, shown whole
        for bar in list(getattr(tqdm, '_instances', ())):
            bar.close()
        traceback.print_exc()
        print(f'error: {BUG_REPORT}', file=sys.stderr)
        return 1
    return 0

