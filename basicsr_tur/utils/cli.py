"""Command-line entry: user-facing failures become one clear line on stderr and exit status 1."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

_USER_ERRORS = (ValueError, KeyError, FileNotFoundError, OSError, RuntimeError)


def run_cli(pipeline: Callable[[str], object], root_path: str) -> int:
    """Run pipeline(root_path); known errors print `error: <message>` (BASICSR_TUR_TRACEBACK=1 for the trace)."""
    try:
        pipeline(root_path)
    except _USER_ERRORS as err:
        if os.environ.get('BASICSR_TUR_TRACEBACK'):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f'error: {message}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    return 0

