"""Stage scripts' error reporting: a bad dataset or setting gives one line, not a traceback.

A user whose raw folder is missing needs "ingest: error: raw_dir ... does not exist", not
forty lines of stack; a bug in the code still needs its traceback, so only the exception
types that this project raises for bad input are shortened.
"""

from __future__ import annotations

import os
import reprlib
import sys
from types import TracebackType

# Bad data, settings or files. ``jmrn.records.ReadError`` is a ValueError. KeyError (a params
# key looked up that is not there) and everything else are bugs and keep their traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)
DEBUG_VARIABLE = "JMRN_DEBUG"
SHOWN_CHARACTERS = 100  # of a value quoted in a message

_REPR = reprlib.Repr()  # bounded at every level: a huge value costs no more than a small one
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, SHOWN_CHARACTERS, 40, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 8


def show_value(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)`` for an error message, at most ``limit`` characters and built in bounded
    time: a value made of nested YAML aliases can stand for billions of items, and formatting
    it whole once took 41 s and 2.7 GB before a MemoryError."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_user_error(error: BaseException) -> bool:
    """True for an error about the input (one line is enough), False for a bug."""
    return isinstance(error, USER_ERRORS)


def debug_enabled() -> bool:
    """JMRN_DEBUG set to anything but empty, 0, false or no asks for full tracebacks."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def concise_errors(stage: str) -> None:
    """Make an uncaught input error end the stage with one line on stderr and exit status 1.

    Installs a ``sys.excepthook``; call it once, right after the stage script's imports.
    With JMRN_DEBUG=1, and for errors that are not input errors, Python's usual traceback
    is printed.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException,
             traceback: TracebackType | None) -> None:  # fmt: skip
        if not is_user_error(error) or debug_enabled():
            previous(kind, error, traceback)
            return
        print(f"{stage}: error: {str(error) or type(error).__name__}", file=sys.stderr)
        print(f"(set {DEBUG_VARIABLE}=1 for the full traceback)", file=sys.stderr)
        sys.stderr.flush()
        # The uncaught exception already makes the exit status 1.

    sys.excepthook = hook
