"""Sans-I/O HTTP/1.x request parser on httptools (llhttp, strict mode).

    parser = HttpParser(Limits())
    events = parser.feed(data)     # -> [Head, Body..., End, Head, ...]; BadRequest on bad input

Contract (see nsuwsgi/server/__init__.py and events.py):

* `feed()` consumes all of `data` and returns the events it completes, in order. Pipelined
  requests are parsed in the same call: one list may hold several whole requests
  (Head, Body..., End, Head, ...) and the start of the next one. A request's events never
  depend on how its bytes were split across feed() calls, except for how the body is cut
  into Body pieces.
* After an End with `keep_alive` False (HTTP/1.0 without keep-alive, `Connection: close`,
  an Upgrade or CONNECT request), the parser is `closed`: later bytes are ignored and feed()
  returns []. The caller answers that request and closes the connection.
* Malformed input raises `BadRequest(status, reason)`; `exc.events` holds the events of that
  call before the error (earlier pipelined requests that are complete stay valid). The
  parser then stays failed.

Limits and decisions:

* The head (request line, headers, the blank line; and empty lines before it) must fit in
  `limits.buffer_size` bytes: otherwise 414 while the request line is still unfinished,
  431 after it (400 if it was all empty lines). Exactly buffer_size bytes is accepted.
* Bodies: Content-Length, or Transfer-Encoding ending in `chunked` (decoded: Body carries the
  chunk data, extensions and trailers are dropped). Both together, several Content-Length
  fields (even equal ones), a Transfer-Encoding not ending in chunked: 400 (smuggling).
  `limits.max_body`: a larger Content-Length, or a chunked body growing past it, is a 413.
  A chunk-size line longer than buffer_size is a 400, a trailer section longer than
  buffer_size a 431.
* Strict syntax (llhttp without leniencies): CRLF line ends only, obs-fold and whitespace
  before a header colon are 400, and so are invalid methods, targets, header names and
  values. HTTP versions other than 1.0 and 1.1 are 505.
* Header names and values are raw bytes (names as received; values without surrounding
  whitespace); the WSGI layer builds the HTTP_* names.
* keep-alive: HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
  `Connection: keep-alive`. Upgrade and CONNECT requests are served as plain requests (their
  body, if they announce one, is delivered) with keep_alive False: no upgrade support.
* `Head.expect_continue`: an HTTP/1.1 request sent `Expect: 100-continue`; the worker should
  answer "100 Continue" before it reads the body (or a final status instead).

How: one httptools parser per connection, reused across keep-alive requests. llhttp parses
whole streams, but its callbacks do not tell where in the fed bytes a message ended, and the
head limit needs that position. So feed() hands llhttp pieces that end exactly where a
request's part ends: a head ends at the first CRLFCRLF (llhttp requires CRLF, so this is
exact), a Content-Length body after its length, a chunked body where a small framing scanner
(sizes, trailers) finds its end. llhttp remains the validator and the decoder; if it ever
disagrees with the scanner about where a body ends, that is a 400, never a desync.
"""

from __future__ import annotations

import re

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from .events import END, BadRequest, Body, End, Head, Limits

__all__ = ["HttpParser", "Head", "Body", "End", "END", "BadRequest", "Limits"]

# connection states
_HEAD, _CL, _CHUNKED, _CLOSED = 0, 1, 2, 3
# chunked-framing scanner states
_C_SIZE, _C_DATA, _C_TRAILER = 0, 1, 2

_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_METHODS = {m.encode(): m for m in (
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")}
# a chunk-size line as llhttp accepts it (leading zeros allowed; extensions checked by llhttp)
_CHUNK_LINE = re.compile(rb"0*([0-9A-Fa-f]{1,16})(?:;[^\r\n]*)?\r\n\Z")
_CRLFCRLF = b"\r\n\r\n"


class _Abort(Exception):
    """Raised inside an llhttp callback; the real error is in HttpParser._error."""


class _BodyRelay:
    """llhttp callbacks for the body of an Upgrade/CONNECT request (see on_message_complete)."""

    __slots__ = ("on_body", "on_message_complete")

    def __init__(self, owner: HttpParser):
        self.on_body = owner.on_body
        self.on_message_complete = owner.on_message_complete


class HttpParser:
    """One per connection. `feed(bytes) -> list[Head | Body | End]`, see the module doc."""

    __slots__ = ("limits", "_limit", "_max_body", "_p", "_events", "_state", "_error",
                 "_head_len", "_tail", "_line_done", "_head_started",
                 "_url", "_headers", "_cl", "_te", "_expect", "_keep_alive", "_upgrade_body",
                 "_remaining", "_body_total", "_cs", "_crem", "_cline", "_clen", "_ctrail")

    def __init__(self, limits: Limits | None = None):
        self.limits = limits = limits if limits is not None else Limits()
        self._limit = limits.buffer_size
        self._max_body = limits.max_body
        self._p = HttpRequestParser(self)
        self._events: list = []
        self._state = _HEAD
        self._error: BadRequest | None = None
        # head accounting: bytes of the current head so far, the last <= 3 bytes of a head
        # split across feed() calls (a CRLFCRLF may straddle two), request line seen whole
        self._head_len = 0
        self._tail = b""
        self._line_done = False
        self._head_started = False
        # the message being parsed
        self._url = b""
        self._headers: list | None = None
        self._cl: int | None = None
        self._te: bytes | None = None
        self._expect = False
        self._keep_alive = False
        self._upgrade_body = False
        self._remaining = 0      # Content-Length bytes still to come
        self._body_total = 0     # chunked bytes so far (for max_body)
        # chunk scanner: state, bytes left of data+CRLF, a partial size line (or the first
        # byte of a partial trailer line) and its length, trailer section length
        self._cs = _C_SIZE
        self._crem = 0
        self._cline = b""
        self._clen = 0
        self._ctrail = 0

    # ---- public API

    @property
    def closed(self) -> bool:
        """An End with keep_alive False was produced (or the parser failed): stop reading."""
        return self._state == _CLOSED or self._error is not None

    @property
    def idle(self) -> bool:
        """Between requests: no byte of a next request has arrived yet (a keep-alive timeout
        may close silently); False while a request is partly read."""
        return self._state == _HEAD and self._head_len == 0

    def feed(self, data) -> list:
        if self._error is not None:
            self._error.events = []
            raise self._error
        events = self._events = []
        if not data or self._state == _CLOSED:
            return events
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        pos = 0
        try:
            while pos < n:
                st = self._state
                if st == _HEAD:
                    pos = self._feed_head(data, pos, n)
                elif st == _CL:
                    pos = self._feed_cl(data, pos, n)
                elif st == _CHUNKED:
                    pos = self._feed_chunked(data, pos, n)
                else:  # closed: the rest is ignored
                    break
        except BadRequest as e:
            self._error = e
            e.events = events
            raise
        except (HttpParserError, _Abort) as e:
            err = self._error
            if err is None:
                reason = str(e) or type(e).__name__
                err = self._error = BadRequest(400, reason)
            err.events = events
            raise err from None
        return events

    # ---- feeding pieces to llhttp

    def _feed_head(self, data: bytes, pos: int, n: int) -> int:
        tail = self._tail
        cut = -1
        if tail:  # only at pos 0: a head split across feeds
            j = (tail + data[:3]).find(_CRLFCRLF)
            if j >= 0:
                cut = j + 4 - len(tail)
        if cut < 0:
            j = data.find(_CRLFCRLF, pos)
            if j >= 0:
                cut = j + 4
        end = cut if cut >= 0 else n
        size = self._head_len + end - pos
        if size > self._limit:
            self._head_overflow(data[pos:pos + self._limit - self._head_len])
        piece = data if pos == 0 and end == n else data[pos:end]
        if cut < 0:  # the head goes on in a later feed()
            if not self._line_done:
                self._line_done = self._sees_line_end(piece)
            self._head_len = size
            self._tail = (tail + piece)[-3:]
            self._p.feed_data(piece)
            return n
        self._head_len = size  # stays if the piece held only empty lines
        self._tail = b""
        try:
            self._p.feed_data(piece)
        except HttpParserUpgrade:
            pass  # an Upgrade/CONNECT request ended (callbacks ran); served as a plain one
        return end

    def _sees_line_end(self, piece: bytes) -> bool:
        if not self._head_started:
            piece = piece.lstrip(b"\r\n")  # empty lines before a request are skipped
            if not piece:
                return False
            self._head_started = True
        return b"\n" in piece

    def _head_overflow(self, allowed: bytes):
        # llhttp sees the bytes within the limit first: garbage is a 400 whatever its size
        self._p.feed_data(allowed)
        if self._line_done or self._sees_line_end(allowed):
            raise BadRequest(431, f"request head larger than buffer-size ({self._limit})")
        if not self._head_started:
            raise BadRequest(400, f"more empty lines than buffer-size ({self._limit})")
        raise BadRequest(414, f"request line larger than buffer-size ({self._limit})")

    def _feed_cl(self, data: bytes, pos: int, n: int) -> int:
        rem = self._remaining
        end = pos + rem
        if end > n:
            end = n
        self._remaining = rem = rem - (end - pos)
        self._p.feed_data(data if pos == 0 and end == n else memoryview(data)[pos:end])
        if (self._state == _CL) != (rem > 0):
            self._desync()
        return end

    def _feed_chunked(self, data: bytes, pos: int, n: int) -> int:
        end, outcome = self._scan_chunked(data, pos, n)
        if end > pos:
            self._p.feed_data(data if pos == 0 and end == n else memoryview(data)[pos:end])
        if outcome is None:
            if self._state != _CHUNKED:
                self._desync()
        elif outcome is True:
            if self._state == _CHUNKED:
                self._desync()
        else:
            raise outcome
        return end

    def _desync(self):
        raise BadRequest(400, "malformed body framing")

    # ---- chunked framing scanner: where does the body end?

    def _scan_chunked(self, data: bytes, pos: int, n: int):
        """Advance over data[pos:n] -> (end, outcome): outcome None: the body goes on after
        n (end == n); True: it ends at `end`; a BadRequest: raise it after feeding to `end`
        (llhttp, fed first, may find an earlier error)."""
        limit = self._limit
        while pos < n:
            cs = self._cs
            if cs == _C_DATA:
                rem = self._crem
                if n - pos < rem:
                    self._crem = rem - (n - pos)
                    return n, None
                pos += rem
                self._cs = _C_SIZE
                continue
            j = data.find(b"\n", pos)
            if cs == _C_SIZE:
                have = self._clen
                if j < 0 or have + j + 1 - pos > limit:
                    if have + n - pos > limit:
                        return pos + limit - have, BadRequest(
                            400, f"chunk size line larger than buffer-size ({limit})")
                    self._cline += data[pos:n]
                    self._clen = have + n - pos
                    return n, None
                line = self._cline + data[pos:j + 1] if have else data[pos:j + 1]
                self._cline = b""
                self._clen = 0
                m = _CHUNK_LINE.match(line)
                if m is None:
                    return j + 1, BadRequest(400, "invalid chunk size line")
                size = int(m[1], 16)
                pos = j + 1
                if size:
                    self._cs = _C_DATA
                    self._crem = size + 2  # the data and its CRLF (llhttp checks the CRLF)
                else:
                    self._cs = _C_TRAILER
                    self._ctrail = 0
            else:  # trailer section: lines until an empty one
                have = self._ctrail
                stop = n if j < 0 else j + 1
                if have + stop - pos > limit:
                    return pos + limit - have, BadRequest(
                        431, f"chunked trailers larger than buffer-size ({limit})")
                self._ctrail = have + stop - pos
                if self._clen == 0:
                    first = data[pos:pos + 1]
                else:
                    first = self._cline
                linelen = self._clen + stop - pos
                if j < 0:
                    self._cline = first
                    self._clen = linelen
                    return n, None
                self._cline = b""
                self._clen = 0
                pos = stop
                if linelen == 2 and first == b"\r":
                    return pos, True
        return n, None

    # ---- llhttp callbacks (called by httptools during feed_data; not for callers)

    def on_message_begin(self):
        self._headers = []
        self._url = b""
        self._cl = None
        self._te = None
        self._expect = False

    def on_url(self, url: bytes):
        self._url = self._url + url if self._url else url

    def on_header(self, name: bytes, value: bytes):
        headers = self._headers
        if headers is None:
            return  # a trailer: dropped
        if value and value[-1] in (32, 9):
            value = value.rstrip(b" \t")
        headers.append((name, value))
        ln = len(name)
        if ln == 14:
            if name.lower() == b"content-length":
                self._cl = int(value)  # llhttp allows digits only, and one such field
        elif ln == 17:
            if name.lower() == b"transfer-encoding":
                self._te = value
        elif ln == 6:
            if name.lower() == b"expect" and value.lower() == b"100-continue":
                self._expect = True

    def _fail(self, status: int, reason: str):
        self._error = BadRequest(status, reason)
        raise _Abort

    def on_headers_complete(self):
        p = self._p
        version = _VERSIONS.get(p.get_http_version())
        if version is None:
            self._fail(505, f"HTTP version {p.get_http_version()} not supported")
        method = p.get_method()
        method = _METHODS.get(method) or method.decode("ascii")
        headers = self._headers
        self._headers = None
        cl = self._cl
        chunked = False
        te = self._te
        if te is not None:
            if te.rpartition(b",")[2].strip().lower() != b"chunked":
                self._fail(400, "Transfer-Encoding without chunked last")
            chunked = True
        if cl is not None and self._max_body is not None and cl > self._max_body:
            self._fail(413, f"Content-Length {cl} larger than the limit ({self._max_body})")
        upgrade = p.should_upgrade()
        keep_alive = not upgrade and p.should_keep_alive()
        self._keep_alive = keep_alive
        self._events.append(Head(method, self._url, version, headers, keep_alive, chunked, cl,
                                 self._expect and version == "HTTP/1.1"))
        self._head_len = 0
        self._line_done = self._head_started = False
        if chunked:
            self._state = _CHUNKED
            self._cs = _C_SIZE
            self._cline = b""
            self._clen = 0
            self._body_total = 0
            self._upgrade_body = upgrade
        elif cl:
            self._state = _CL
            self._remaining = cl
            self._upgrade_body = upgrade

    def on_body(self, body: bytes):
        max_body = self._max_body
        if max_body is not None and self._state == _CHUNKED:
            total = self._body_total + len(body)
            if total > max_body:
                allowed = max_body - self._body_total
                if allowed > 0:
                    self._events.append(Body(body[:allowed]))
                self._body_total = max_body
                self._fail(413, f"chunked body larger than the limit ({max_body})")
            self._body_total = total
        self._events.append(Body(body))

    def on_message_complete(self):
        if self._upgrade_body:
            # llhttp ended an Upgrade/CONNECT request at its head and would hand the rest
            # over as another protocol; we serve it as a plain request, so its body is
            # decoded by a fresh llhttp parser primed with an equivalent head.
            self._upgrade_body = False
            p = HttpRequestParser(_BodyRelay(self))
            if self._state == _CHUNKED:
                p.feed_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                p.feed_data(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % self._remaining)
            self._p = p
            return
        self._events.append(END)
        self._state = _HEAD if self._keep_alive else _CLOSED
