"""Sans-I/O parser for the uwsgi binary protocol (what nginx's uwsgi_pass speaks).

A request is a packet, then the body:

    modifier1 (u8) | datasize (u16 LE) | modifier2 (u8) | datasize bytes of vars
    vars: (key_len u16 LE, key, val_len u16 LE, val)*
    then CONTENT_LENGTH bytes of body

    parser = UwsgiParser(Limits())
    events = parser.feed(data)     # -> [Head, Body..., End]; BadRequest on bad input

Same contract as http.py: `Head.vars` is the packet as dict[str, str] (latin-1, as WSGI
wants; a repeated key keeps its last value), Head.method/target/version are copied from
REQUEST_METHOD / REQUEST_URI / SERVER_PROTOCOL for logging, `Head.content_length` is the
CONTENT_LENGTH (missing or empty: 0), `keep_alive` is always False: one request per
connection, like nginx's uwsgi_pass. After End the parser is `closed`; later bytes are
ignored.

Errors (BadRequest, all 400 unless said):
* modifier1 other than 0: "unsupported modifier1 N" (only the WSGI modifier is served);
* datasize larger than limits.buffer_size: uWSGI's "invalid request block size: N (max M)
  ...skip";
* vars that do not exactly fill datasize (a truncated length, key or value);
* CONTENT_LENGTH that is not a decimal number; larger than limits.max_body: 413.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .events import END, BadRequest, Body, End, Head, Limits

__all__ = ["UwsgiParser", "encode_uwsgi_vars", "parse_uwsgi_vars",
           "Head", "Body", "End", "END", "BadRequest", "Limits"]

_HEAD, _BODY, _CLOSED = 0, 1, 2


def parse_uwsgi_vars(block: bytes) -> dict[str, str]:
    """The vars of a packet (without its 4-byte header) -> dict; BadRequest if malformed."""
    s = block.decode("latin-1")
    n = len(block)
    d = {}
    i = 0
    try:
        while i < n:
            j = i + 2 + (block[i] | block[i + 1] << 8)
            k = j + 2 + (block[j] | block[j + 1] << 8)
            d[s[i + 2:j]] = s[j + 2:k]
            i = k
    except IndexError:
        pass  # a length cut short: i < n below
    if i != n:
        raise BadRequest(400, f"invalid uwsgi vars: truncated item at offset {i} "
                              f"(block size {n})")
    return d


def encode_uwsgi_vars(vars: Mapping | Iterable, modifier1: int = 0,
                      modifier2: int = 0) -> bytes:
    """A uwsgi packet (header + vars) from a mapping or (key, value) pairs; keys and values
    are str (latin-1 encoded) or bytes. Append the body (CONTENT_LENGTH bytes) to send a
    request."""
    items = vars.items() if isinstance(vars, Mapping) else vars
    out = bytearray(4)
    for key, val in items:
        for x in (key, val):
            b = x.encode("latin-1") if isinstance(x, str) else bytes(x)
            if len(b) > 0xFFFF:
                raise ValueError(f"uwsgi var longer than 65535 bytes: {b[:40]!r}...")
            out += len(b).to_bytes(2, "little")
            out += b
    size = len(out) - 4
    if size > 0xFFFF:
        raise ValueError(f"uwsgi vars block of {size} bytes (max 65535)")
    if not (0 <= modifier1 <= 255 and 0 <= modifier2 <= 255):
        raise ValueError("modifiers are bytes (0..255)")
    out[0] = modifier1
    out[1:3] = size.to_bytes(2, "little")
    out[3] = modifier2
    return bytes(out)


class UwsgiParser:
    """One per connection. `feed(bytes) -> list[Head | Body | End]`, see the module doc."""

    __slots__ = ("limits", "_limit", "_max_body", "_buf", "_state", "_remaining", "_error")

    def __init__(self, limits: Limits | None = None):
        self.limits = limits = limits if limits is not None else Limits()
        self._limit = limits.buffer_size
        self._max_body = limits.max_body
        self._buf = bytearray()  # a packet split across feed() calls
        self._state = _HEAD
        self._remaining = 0
        self._error: BadRequest | None = None

    @property
    def closed(self) -> bool:
        """The request ended (uwsgi serves one per connection) or the parser failed."""
        return self._state == _CLOSED or self._error is not None

    @property
    def idle(self) -> bool:
        """No byte of a request has arrived yet."""
        return self._state == _HEAD and not self._buf

    def feed(self, data) -> list:
        if self._error is not None:
            self._error.events = []
            raise self._error
        events: list = []
        state = self._state
        if not data or state == _CLOSED:
            return events
        if type(data) is not bytes:
            data = bytes(data)
        pos = 0
        if state == _HEAD:
            if self._buf:
                self._buf += data
                data = self._buf
            n = len(data)
            if n < 4:
                if data is not self._buf:
                    self._buf += data
                return events
            try:
                if data[0] != 0:
                    raise BadRequest(400, f"unsupported modifier1 {data[0]}")
                size = data[1] | data[2] << 8
                if size > self._limit:
                    raise BadRequest(400, f"invalid request block size: {size} "
                                          f"(max {self._limit})...skip")
                pos = 4 + size
                if n < pos:
                    if data is not self._buf:
                        self._buf += data
                    return events
                if data is self._buf:
                    data = bytes(data)
                    self._buf = bytearray()
                vars = parse_uwsgi_vars(data[4:pos])
                cl = vars.get("CONTENT_LENGTH")
                if not cl:
                    cl = 0
                elif cl.isdigit() and cl.isascii():
                    cl = int(cl)
                else:
                    raise BadRequest(400, f"invalid CONTENT_LENGTH {cl[:40]!r}")
                if self._max_body is not None and cl > self._max_body:
                    raise BadRequest(413, f"CONTENT_LENGTH {cl} larger than the limit "
                                          f"({self._max_body})")
            except BadRequest as e:
                self._error = e
                self._buf = bytearray()
                raise
            events.append(Head(vars.get("REQUEST_METHOD", ""),
                               vars.get("REQUEST_URI", "").encode("latin-1"),
                               vars.get("SERVER_PROTOCOL", ""), [], False, False, cl,
                               False, vars))
            if not cl:
                events.append(END)
                self._state = _CLOSED
                return events
            self._state = _BODY
            self._remaining = cl
        n = len(data)
        if pos < n:
            rem = self._remaining
            take = n - pos if n - pos < rem else rem
            events.append(Body(data if pos == 0 and take == n else data[pos:pos + take]))
            self._remaining = rem = rem - take
            if not rem:
                events.append(END)
                self._state = _CLOSED
        return events
