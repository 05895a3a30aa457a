"""What the sans-I/O request parsers (http.py, uwsgi.py) produce, and their limits.

A parser's `feed(data) -> list[event]` yields, per request, one `Head`, zero or more `Body`
pieces (the decoded body, in order; how it is split depends on how the bytes arrived) and
one `End`. Malformed input raises `BadRequest`.

The events are records.Record classes (slots, explicit __init__), not dataclasses: the master
imports this module at every start, and dataclasses cost milliseconds there (records.py).
"""

from __future__ import annotations

from nsuwsgi.records import Frozen, Record, set_field

__all__ = ["Head", "Body", "End", "END", "BadRequest", "Limits"]


class Head(Record):
    """A request's head.

    HTTP fills method/target/version/headers; `vars` is None.
    uwsgi fills `vars` (the packet's key/values, latin-1 decoded, as WSGI wants) and, for
    logging, copies method (REQUEST_METHOD), target (REQUEST_URI, latin-1 encoded) and version
    (SERVER_PROTOCOL) from it; its `headers` is empty.
    """

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "chunked",
                 "content_length", "expect_continue", "vars")

    def __init__(self, method: str = "", target: bytes = b"", version: str = "",
                 headers: list[tuple[bytes, bytes]] | None = None, keep_alive: bool = False,
                 chunked: bool = False, content_length: int | None = None,
                 expect_continue: bool = False, vars: dict[str, str] | None = None):
        self.method = method                # "GET"
        self.target = target                # the raw request target: b"/a%20b?x=1"
        self.version = version              # "HTTP/1.1" or "HTTP/1.0" (SERVER_PROTOCOL)
        self.headers = [] if headers is None else headers   # raw names, in order
        self.keep_alive = keep_alive        # may the connection carry another request after End
        self.chunked = chunked              # the body arrives with Transfer-Encoding: chunked
        self.content_length = content_length    # None: no Content-Length (no body, or chunked)
        self.expect_continue = expect_continue  # "Expect: 100-continue": answer before reading
        self.vars = vars                    # uwsgi only


class Body(Record):
    """A piece of the decoded request body (never empty)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class End(Record):
    """The request is complete (its whole body was delivered)."""

    __slots__ = ()


END = End()  # the parsers emit this one instance; End() == END


class BadRequest(Exception):
    """Malformed or over-limit input. `status` is the HTTP status to answer with (400, 413,
    414, 431, 505), `reason` a short text for the log.

    `events` holds the events the failing feed() call produced before the error: requests
    through their End are complete and valid (pipelined ahead of the bad one); a trailing
    Head/Body without End belongs to the rejected request. A parser that raised keeps raising
    the same error (with `events` empty) on every later feed().
    """

    def __init__(self, status: int, reason: str):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.events: list = []

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class Limits(Frozen):
    """buffer_size bounds a request head (HTTP: request line + headers + the blank line;
    uwsgi: the vars block), like uWSGI's buffer-size (default 4096). max_body (None: no
    limit) bounds the body: a larger Content-Length/CONTENT_LENGTH, or a chunked body that
    grows past it, is a 413 (uWSGI's limit-post)."""

    __slots__ = ("buffer_size", "max_body")

    def __init__(self, buffer_size: int = 4096, max_body: int | None = None):
        if not isinstance(buffer_size, int) or buffer_size <= 0:
            raise ValueError(f"buffer_size must be a positive int, not {buffer_size!r}")
        if max_body is not None and (not isinstance(max_body, int) or max_body < 0):
            raise ValueError(f"max_body must be None or an int >= 0, not {max_body!r}")
        set_field(self, "buffer_size", buffer_size)
        set_field(self, "max_body", max_body)
