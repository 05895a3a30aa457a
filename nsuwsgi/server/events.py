"""What the sans-I/O request parsers (http.py, uwsgi.py) produce, and their limits.

A parser's `feed(data) -> list[event]` yields, per request, one `Head`, zero or more `Body`
pieces (the decoded body, in order; how it is split depends on how the bytes arrived) and
one `End`. Malformed input raises `BadRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Head", "Body", "End", "END", "BadRequest", "Limits"]


@dataclass(slots=True)
class Head:
    """A request's head.

    HTTP fills method/target/version/headers; `vars` is None.
    uwsgi fills `vars` (the packet's key/values, latin-1 decoded, as WSGI wants) and, for
    logging, copies method (REQUEST_METHOD), target (REQUEST_URI, latin-1 encoded) and version
    (SERVER_PROTOCOL) from it; its `headers` is empty.
    """

    method: str = ""                 # "GET"
    target: bytes = b""              # the raw request target: b"/a%20b?x=1"
    version: str = ""                # "HTTP/1.1" or "HTTP/1.0" (SERVER_PROTOCOL)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # raw names, in order
    keep_alive: bool = False         # may the connection carry another request after End
    chunked: bool = False            # the body arrives with Transfer-Encoding: chunked
    content_length: int | None = None  # None: no Content-Length (no body, or chunked)
    expect_continue: bool = False    # HTTP/1.1 "Expect: 100-continue": answer before reading
    vars: dict[str, str] | None = None  # uwsgi only


@dataclass(slots=True)
class Body:
    """A piece of the decoded request body (never empty)."""

    data: bytes


@dataclass(slots=True)
class End:
    """The request is complete (its whole body was delivered)."""


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


@dataclass(frozen=True, slots=True)
class Limits:
    """buffer_size bounds a request head (HTTP: request line + headers + the blank line;
    uwsgi: the vars block), like uWSGI's buffer-size (default 4096). max_body (None: no
    limit) bounds the body: a larger Content-Length/CONTENT_LENGTH, or a chunked body that
    grows past it, is a 413 (uWSGI's limit-post)."""

    buffer_size: int = 4096
    max_body: int | None = None

    def __post_init__(self):
        if not isinstance(self.buffer_size, int) or self.buffer_size <= 0:
            raise ValueError(f"buffer_size must be a positive int, not {self.buffer_size!r}")
        if self.max_body is not None and (not isinstance(self.max_body, int) or
                                          self.max_body < 0):
            raise ValueError(f"max_body must be None or an int >= 0, not {self.max_body!r}")
