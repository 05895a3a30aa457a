"""Errors a user can cause, and the exit codes nsuwsgi promises.

Bad input must never produce a traceback: every problem is a `UserError` that knows where it
came from (file and line, or the command line), which option it concerns, what is wrong and
how to fix it. The CLI prints each as one line and exits with the code below. The exit code
table is the single source for the troubleshooting docs.
"""

from __future__ import annotations

import errno
import io
import sys

from nsuwsgi.records import Frozen, set_field

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_CONTROL_DAEMON = 3

EXIT_CODES = {
    EXIT_OK: "clean shutdown (SIGTERM, SIGINT, SIGQUIT) or a command such as --help finished",
    EXIT_RUNTIME: "a runtime failure after the configuration was accepted "
    "(for example the stats socket could not be bound); the log says which",
    EXIT_CONFIG: "the configuration was rejected; one line per problem names file:line, "
    "the option and a fix; nothing was started",
    EXIT_CONTROL_DAEMON: "a daemon marked `control` ended, so the instance shut itself down",
}


class Origin(Frozen):
    """Where a config value came from: a file and line, or the command line/environment."""

    __slots__ = ("file", "line", "source")

    def __init__(self, file: str | None = None, line: int | None = None,
                 source: str = "command line"):
        set_field(self, "file", file)
        set_field(self, "line", line)
        set_field(self, "source", source)

    def __str__(self) -> str:
        if self.file is None:
            return self.source
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}"


COMMAND_LINE = Origin()


class UserError(Exception):
    """A problem the user can fix. `str()` is the one-line message printed by the CLI."""

    def __init__(self, message: str, *, origin: Origin | None = None,
                 option: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.option = option
        self.hint = hint

    def __str__(self) -> str:
        parts = []
        if self.origin is not None:
            parts.append(str(self.origin))
        if self.option:
            parts.append(self.option)
        parts.append(self.message)
        text = ": ".join(parts)
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class ConfigErrors(Exception):
    """Every problem found in one validation pass, reported together."""

    def __init__(self, errors: list[UserError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class ValueProblem(ValueError):
    """Raised by option value parsers: what is wrong with the value, and how to fix it.

    The caller adds the origin and option name, so parsers stay free of bookkeeping.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def did_you_mean(word: str, candidates, n: int = 1) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    import difflib                  # only on the error path
    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class JailError(Exception):
    """A jail op failed in the child; the spawn primitive reports it as `stage:errno:detail`."""

    def __init__(self, stage: str, err: int, detail: str):
        super().__init__(f"{stage}:{errno.errorcode.get(err, err)}:{detail}")
        self.stage, self.errno, self.detail = stage, err, detail


WHOLE = object()     # format_traceback's default: the exception's own traceback


def format_traceback(exc: BaseException, tb=WHOLE) -> str:
    """`exc`'s traceback as text, as Python prints it at exit; `tb` replaces the exception's
    own (a trimmed one, or None for the message alone).

    CPython's own printer (sys.__excepthook__, written in C) does the work, into a buffer:
    an error path then needs no import. After a jail or a privilege drop the stdlib may be
    out of reach, and the traceback module (with linecache, tokenize and textwrap) was
    ~2.5 ms of every jailed cold start when it had to be imported up front. The printer only
    writes to sys.stderr, so that is the buffer for the moment it prints.
    """
    whole = exc.__traceback__
    buffer = io.StringIO()
    saved = sys.stderr
    try:
        if tb is not WHOLE:
            exc.__traceback__ = tb          # the printer reads it from the exception
        sys.stderr = buffer
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
    finally:
        sys.stderr = saved
        exc.__traceback__ = whole
    return buffer.getvalue()
