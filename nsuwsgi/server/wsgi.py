"""PEP 3333 on the request path: environ building, wsgi.input, start_response, HTTP framing.

This module is the per-request path of the worker, so it does the least work it can per
request. What is fixed per worker or per connection is computed once:

  environ_base(...)          the keys that do not change on a connection (server and peer
                             address, wsgi.* constants); copied, not rebuilt, per request;
  environ_from(base, head, body)   adds the request: for an HTTP head, method, target, version
                             and headers (header names are mapped through a cache); for a uwsgi
                             head, the web server's vars are copied as they are;
  Response(sock, ...)        one per request: `start_response` validates the status and the
                             headers once and encodes them once; the status line comes from a
                             cache; `serialize` appends the framing headers;
  write_response(sock, response, result)   sends headers and body with as few syscalls as
                             possible: a list/tuple body goes out with its Content-Length in one
                             send; a FileWrapper over a regular file goes out with sendfile.

Framing rules (HTTP/1.1, RFC 9112):

* the app's Content-Length is used when it sets one (a longer body is cut at that length; a
  shorter one closes the connection, since the client cannot tell where the body ends);
* a list/tuple body or a regular file gets an exact Content-Length from us;
* otherwise HTTP/1.1 clients get `Transfer-Encoding: chunked`, HTTP/1.0 clients get the body
  delimited by closing the connection;
* whenever the connection is closed after the response the response says
  `Connection: close` (uWSGI closes without saying so); an HTTP/1.0 client that asked for
  keep-alive gets `Connection: keep-alive`;
* HEAD responses carry the headers a GET would (including a computed Content-Length) and no
  body; 1xx, 204 and 304 carry no body, and 1xx/204 no Content-Length;
* hop-by-hop headers set by the app are dropped (PEP 3333 forbids them); `Connection: close`
  from the app is honoured;
* over the uwsgi protocol the response is raw HTTP as well (nginx's uwsgi_pass wants a status
  line), never chunked, and the connection always closes after it.

Errors: an exception from the app before any byte of the response was sent gives a short 500
(logged with its traceback through `log`); after that, the connection is closed so the client
sees a truncated response rather than a wrong one. A client that went away is not an app
error: the connection is dropped without a traceback.
"""

from __future__ import annotations

import os
import re
import select
import socket
import stat
import sys
import time

from nsuwsgi.errors import format_traceback

__all__ = [
    "BodyReader", "FileWrapper", "Response", "ClientGone",
    "environ_base", "environ_from", "build_environ",
    "write_response", "call_app", "error_response",
]

_CACHE_MAX = 2048           # bound for the caches keyed by client-chosen strings
_SMALL = 65536              # below this, header + body are joined and sent in one send()
_ERROR_BODY = b"Internal Server Error\n"
_MSG_MORE = getattr(socket, "MSG_MORE", 0)


class ClientGone(ConnectionError):
    """The client closed the connection (or timed out) while we were writing to it."""


# --------------------------------------------------------------------------- wsgi.input

class BodyReader:
    """`wsgi.input`: the request body as a file-like object, pulled from the connection.

    `source()` returns the next chunk of body bytes, or b"" at the end of the body (the worker
    feeds it from the parser's Body events, and returns b"" after End). `expect_continue`, if
    given, is called once, just before the first chunk is pulled (the worker uses it to send
    `100 Continue` only when the app really reads the body, as PEP 3333 recommends).
    """

    __slots__ = ("_source", "_buf", "_pos", "_eof", "_expect")

    def __init__(self, source, expect_continue=None):
        self._source = source
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._expect = expect_continue

    def _more(self) -> bytes:
        if self._eof:
            return b""
        if self._expect is not None:
            callback, self._expect = self._expect, None
            callback()
        chunk = self._source()
        if not chunk:
            self._eof = True
            return b""
        return chunk if type(chunk) is bytes else bytes(chunk)

    @property
    def continue_pending(self) -> bool:
        """The client waits for `100 Continue`, not sent yet: it has not sent the body."""
        return self._expect is not None

    @property
    def exhausted(self) -> bool:
        """True once the end of the body was seen and everything was consumed."""
        return self._eof and self._pos >= len(self._buf)

    def read(self, size: int | None = -1) -> bytes:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if size is None or size < 0:
            parts = [buf[pos:]] if avail else []
            while chunk := self._more():
                parts.append(chunk)
            self._buf, self._pos = b"", 0
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if size <= avail:
            self._pos = pos + size
            return buf[pos:pos + size]
        parts = [buf[pos:]] if avail else []
        self._buf, self._pos = b"", 0
        need = size - avail
        while need > 0:
            chunk = self._more()
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                break
            parts.append(chunk)
            need -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else -1
        buf, pos = self._buf, self._pos
        end = buf.find(b"\n", pos)
        if end >= 0:
            end += 1
            if 0 <= limit < end - pos:
                end = pos + limit
            self._pos = end
            return buf[pos:end]
        avail = len(buf) - pos
        if 0 <= limit <= avail:
            self._pos = pos + limit
            return buf[pos:pos + limit]
        parts = [buf[pos:]] if avail else []
        got = avail
        self._buf, self._pos = b"", 0
        while True:
            chunk = self._more()
            if not chunk:
                break
            newline = chunk.find(b"\n")
            take = newline + 1 if newline >= 0 else len(chunk)
            if limit >= 0 and got + take > limit:
                take = limit - got
            if take < len(chunk):
                parts.append(chunk[:take])
                self._buf, self._pos = chunk, take
                break
            parts.append(chunk)
            got += take
            if newline >= 0 or got == limit:
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self, limit: int | None = None) -> bool:
        """Discard the rest of the body; True if its end was reached within `limit` bytes.

        The worker calls it after the response when the app left part of the body unread,
        so the next request on a keep-alive connection starts at the right byte (False: too
        much is left, close the connection instead).
        """
        left = len(self._buf) - self._pos
        self._buf, self._pos = b"", 0
        while not self._eof:
            if limit is not None and left > limit:
                return False
            left += len(self._more())
        return limit is None or left <= limit


# --------------------------------------------------------------------------- file_wrapper

class FileWrapper:
    """`wsgi.file_wrapper`: iterates a file-like object in blocks; served with sendfile by
    write_response when the object is a regular file with a fileno()."""

    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike, blksize: int = 8192):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


# --------------------------------------------------------------------------- environ

_METHODS = {m.encode(): m for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS",
                                    "PATCH", "CONNECT", "TRACE")}
_METHODS.update({m: m for m in list(_METHODS.values())})
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0",
              (1, 1): "HTTP/1.1", (1, 0): "HTTP/1.0", "HTTP/1.1": "HTTP/1.1",
              "HTTP/1.0": "HTTP/1.0", b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0",
              "0.9": "HTTP/0.9", (0, 9): "HTTP/0.9"}
# Header name (as received) -> environ key, or "" for a header we drop. Filled on demand.
_HEADER_KEYS: dict[bytes, str] = {}
_SPECIAL_HEADERS = {"CONTENT_TYPE", "CONTENT_LENGTH"}


def _header_key(name) -> str:
    """`User-Agent` -> `HTTP_USER_AGENT`; Content-Type/-Length without the prefix.

    Names containing `_` are dropped: after the `-` -> `_` mapping, `X_Forwarded_For` would be
    indistinguishable from a proxy's `X-Forwarded-For` (nginx and gunicorn drop them too).
    """
    text = name.decode("latin-1") if type(name) is not str else name
    if "_" in text:
        key = ""
    else:
        key = text.upper().replace("-", "_")
        if key not in _SPECIAL_HEADERS:
            key = "HTTP_" + key
    if len(_HEADER_KEYS) < _CACHE_MAX:
        _HEADER_KEYS[name] = key
    return key


def _protocol(version) -> str:
    proto = _PROTOCOLS.get(version)
    if proto is None:
        if isinstance(version, tuple):
            proto = "HTTP/%d.%d" % version
        else:
            text = version.decode("latin-1") if isinstance(version, bytes) else str(version)
            proto = text if text.startswith("HTTP/") else "HTTP/" + text
    return proto


def environ_base(*, server_name: str, server_port, remote_addr: str = "", remote_port="",
                 url_scheme: str = "http", script_name: str = "",
                 errors_stream=None) -> dict:
    """The part of the environ that is the same for every request on one connection."""
    return {
        "SCRIPT_NAME": script_name,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": str(remote_port),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": errors_stream if errors_stream is not None else sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
    }


def environ_from(base: dict, head, body_stream) -> dict:
    """The environ for one request: `base` (from environ_base) plus what `head` says.

    `head` is an HTTP head (method, target, version, headers) or a uwsgi head (vars).
    """
    env = base.copy()
    uvars = getattr(head, "vars", None)
    if uvars is not None:
        return _uwsgi_environ(env, uvars, body_stream)
    env["wsgi.input"] = body_stream
    method = head.method
    env["REQUEST_METHOD"] = _METHODS.get(method) or (
        method.decode("latin-1") if type(method) is bytes else method)
    env["SERVER_PROTOCOL"] = _protocol(head.version)
    target = head.target
    if type(target) is not bytes:
        target = target.encode("latin-1")
    env["REQUEST_URI"] = target.decode("latin-1")
    if b"#" in target:
        target = target.partition(b"#")[0]
    path, _, query = target.partition(b"?")
    if path[:1] != b"/":
        path = _origin_path(path)
    env["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
    env["QUERY_STRING"] = query.decode("latin-1")
    keys = _HEADER_KEYS
    for name, value in head.headers:
        key = keys.get(name)
        if key is None:
            key = _header_key(name)
        if key:
            text = value.decode("latin-1") if type(value) is bytes else value
            if env.setdefault(key, text) is not text:
                sep = "; " if key == "HTTP_COOKIE" else ","
                env[key] = env[key] + sep + text
    return env


def _origin_path(path: bytes) -> bytes:
    """The path of an absolute-form target (`http://host/p`), `*` as is, fragments dropped."""
    if path == b"*":
        return path
    scheme, sep, rest = path.partition(b"://")
    if sep:
        slash = rest.find(b"/")
        return rest[slash:] if slash >= 0 else b"/"
    return path


def _uwsgi_environ(env: dict, uvars: dict, body_stream) -> dict:
    """The web server computed the CGI variables; take them as they are (PEP 3333 keys only
    get defaults when it left them out)."""
    env.update(uvars)
    env["wsgi.input"] = body_stream
    scheme = uvars.get("UWSGI_SCHEME")
    if scheme:
        env["wsgi.url_scheme"] = scheme
    else:
        https = uvars.get("HTTPS")
        if https and (https[0] == "1" or https[:2].lower() == "on"):
            env["wsgi.url_scheme"] = "https"
    if "REQUEST_METHOD" not in env:
        env["REQUEST_METHOD"] = "GET"
    if "PATH_INFO" not in env:
        env["PATH_INFO"] = ""
    if "QUERY_STRING" not in env:
        env["QUERY_STRING"] = ""
    if "SERVER_PROTOCOL" not in env:
        env["SERVER_PROTOCOL"] = "HTTP/1.1"
    return env


def build_environ(head, *, server_name: str, server_port, remote_addr: str, remote_port,
                  url_scheme: str = "http", script_name: str = "", body_stream,
                  errors_stream) -> dict:
    """One-shot form of environ_base + environ_from (the worker keeps the base per
    connection and calls environ_from per request)."""
    base = environ_base(server_name=server_name, server_port=server_port,
                        remote_addr=remote_addr, remote_port=remote_port,
                        url_scheme=url_scheme, script_name=script_name,
                        errors_stream=errors_stream)
    return environ_from(base, head, body_stream)


# --------------------------------------------------------------------------- response

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# header kinds: 0 plain, 1 Content-Length, 2 Connection, 3 other hop-by-hop (dropped), 4 Date
_KIND_BY_LOWER = {"content-length": 1, "connection": 2, "keep-alive": 3,
                  "proxy-authenticate": 3, "proxy-authorization": 3, "te": 3, "trailer": 3,
                  "trailers": 3, "transfer-encoding": 3, "upgrade": 3, "date": 4}
_HEADER_KINDS: dict[str, int] = {}
_STATUS_LINES: dict[str, tuple[bytes, int]] = {}
_date = [0, b""]
_time = time.time


def _header_kind(name) -> int:
    if type(name) is not str:
        raise TypeError(f"header name {name!r} must be str, not {type(name).__name__}")
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    kind = _KIND_BY_LOWER.get(name.lower(), 0)
    if len(_HEADER_KINDS) < _CACHE_MAX:
        _HEADER_KINDS[name] = kind
    return kind


def _status_line(status) -> tuple[bytes, int]:
    if type(status) is not str:
        raise TypeError(f"status must be str, not {type(status).__name__}")
    code = status[:3]
    if (len(status) < 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 599
            or (len(status) > 3 and status[3] != " ") or "\r" in status or "\n" in status):
        raise ValueError(f"invalid status {status!r} (write it as '200 OK')")
    try:
        line = ("HTTP/1.1 " + status + "\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"status {status!r} is not latin-1") from None
    entry = (line, int(code))
    if len(_STATUS_LINES) < _CACHE_MAX:
        _STATUS_LINES[status] = entry
    return entry


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """RFC 9110's IMF-fixdate (email.utils.formatdate costs ~15 ms of imports at startup)."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


_HEX = {f"{i:02x}".encode(): bytes([i]) for i in range(256)}
_HEX.update({f"{i:02X}".encode(): bytes([i]) for i in range(256)})


def unquote_to_bytes(data: bytes) -> bytes:
    """Percent-decoding, as urllib.parse's (whose import costs ~5 ms): bad escapes stay."""
    pieces = data.split(b"%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        byte = _HEX.get(piece[:2])
        out.append(byte + piece[2:] if byte is not None else b"%" + piece)
    return b"".join(out)


def _date_line() -> bytes:
    now = int(_time())
    if now != _date[0]:
        _date[1] = b"Date: " + http_date(now).encode() + b"\r\n"
        _date[0] = now
    return _date[1]


class Response:
    """One response: `start_response` for the app, then `serialize` for the head bytes.

    `http11`: the client spoke HTTP/1.1 (chunked allowed, keep-alive the default);
    `keep_alive`: the client wants the connection kept (the parser's verdict);
    `head_request`: a HEAD request (headers only); `uwsgi`: the request came over the uwsgi
    protocol (never chunked, always closed, no Date header: the web server adds one).
    After the response, `keep_alive` says whether the connection may serve another request.
    """

    __slots__ = ("sock", "http11", "keep_alive", "head_request", "uwsgi", "status_line",
                 "code", "header_bytes", "content_length", "add_date", "chunked",
                 "headers_sent", "no_body", "sent", "gone", "log", "head_size")

    def __init__(self, sock, *, http11: bool = True, keep_alive: bool = True,
                 head_request: bool = False, uwsgi: bool = False, log=None):
        self.sock = sock
        self.http11 = http11
        self.keep_alive = keep_alive and not uwsgi
        self.head_request = head_request
        self.uwsgi = uwsgi
        self.log = log
        self.status_line = None
        self.code = 0
        self.header_bytes = b""
        self.content_length = None
        self.add_date = not uwsgi
        self.chunked = False
        self.headers_sent = False
        self.no_body = head_request
        self.sent = 0
        self.head_size = 0          # bytes of the status line and headers (stats: tx)
        self.gone = False

    @classmethod
    def for_environ(cls, sock, environ: dict, *, keep_alive: bool, uwsgi: bool = False,
                    log=None) -> "Response":
        return cls(sock, http11=environ["SERVER_PROTOCOL"] == "HTTP/1.1",
                   keep_alive=keep_alive, head_request=environ["REQUEST_METHOD"] == "HEAD",
                   uwsgi=uwsgi, log=log)

    @property
    def status(self) -> str | None:
        if self.status_line is None:
            return None
        return self.status_line[9:-2].decode("latin-1")

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status_line is not None:
            raise AssertionError("start_response() was already called "
                                 "(a second call must pass exc_info)")
        entry = _STATUS_LINES.get(status)
        if entry is None:
            entry = _status_line(status)
        line, code = entry
        lines = []
        length = None
        close = False
        add_date = not self.uwsgi
        kinds = _HEADER_KINDS
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = _header_kind(name)
            if kind:
                if kind == 1:
                    if type(value) is not str or not (value.isascii() and value.isdigit()):
                        raise ValueError(f"invalid Content-Length {value!r}")
                    if length is not None and int(value) != length:
                        raise ValueError("two different Content-Length headers")
                    length = int(value)
                    if code == 204 or code < 200:
                        continue
                elif kind == 2:
                    if type(value) is str and "close" in value.lower():
                        close = True
                    continue
                elif kind == 3:
                    continue
                else:
                    add_date = False
            try:
                if "\n" in value or "\r" in value:
                    raise ValueError(f"header {name!r} has a line break in its value")
                lines.append(name + ": " + value + "\r\n")
            except TypeError:
                raise TypeError(f"the value of header {name!r} must be str, not "
                                f"{type(value).__name__}") from None
        if lines:
            try:
                self.header_bytes = "".join(lines).encode("latin-1")
            except UnicodeEncodeError:
                bad = next(n for n, v in headers if not v.isascii() and not _latin1(v))
                raise ValueError(f"header {bad!r} is not latin-1 (PEP 3333); "
                                 "encode it (RFC 8187) first") from None
        else:
            self.header_bytes = b""
        self.status_line = line
        self.code = code
        self.content_length = None if code == 204 or code < 200 else length
        self.add_date = add_date
        if close:
            self.keep_alive = False
        self.no_body = self.head_request or code in (204, 304) or code < 200
        return self.write

    def serialize(self, length: int | None = None) -> bytes:
        """The status line and headers, with the framing decided.

        `length` is the exact body length when we know it (list body, regular file).
        """
        parts = [self.status_line, self.header_bytes]
        code = self.code
        if self.content_length is not None or code == 204 or code < 200:
            pass
        elif code == 304:
            pass
        elif length is not None:
            self.content_length = length
            parts.append(b"Content-Length: %d\r\n" % length)
        elif self.head_request:
            pass
        elif self.http11 and not self.uwsgi:
            self.chunked = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
        else:
            self.keep_alive = False
        if not self.keep_alive:
            parts.append(b"Connection: close\r\n")
        elif not self.http11:
            parts.append(b"Connection: keep-alive\r\n")
        if self.add_date:
            parts.append(_date[1] if int(_time()) == _date[0] else _date_line())
        parts.append(b"\r\n")
        self.headers_sent = True
        head = b"".join(parts)
        self.head_size = len(head)
        return head

    def reset(self) -> None:
        """Forget the app's status and headers (nothing was sent yet): for the 500 page."""
        self.status_line = None
        self.header_bytes = b""
        self.content_length = None
        self.chunked = False
        self.no_body = self.head_request

    # --- sending (ClientGone when the peer is gone)

    def _send(self, data) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.gone = True
            raise ClientGone(str(exc)) from exc

    def _send_parts(self, head: bytes, body) -> None:
        if len(body) < _SMALL:
            self._send(head + body if head else body)
            return
        try:
            _sendmsg_all(self.sock, [head, body] if head else [body])
        except OSError as exc:
            self.gone = True
            raise ClientGone(str(exc)) from exc

    def _body(self, data, head: bytes = b"") -> None:
        """Send one body chunk (after `head` if the headers still go out), framed."""
        if self.no_body or not data:
            if head:
                self._send(head)
            return
        if self.chunked:
            self.sent += len(data)
            if len(data) < _SMALL:
                self._send(b"".join((head, b"%x\r\n" % len(data), data, b"\r\n")))
            else:
                try:
                    _sendmsg_all(self.sock, [head + b"%x\r\n" % len(data), data, b"\r\n"])
                except OSError as exc:
                    self.gone = True
                    raise ClientGone(str(exc)) from exc
            return
        if self.content_length is not None:
            room = self.content_length - self.sent
            if len(data) > room:
                data = data[:room]
                if not data:
                    if head:
                        self._send(head)
                    return
        self.sent += len(data)
        self._send_parts(head, data)

    def write(self, data) -> None:
        """The legacy write() callable returned by start_response."""
        if self.status_line is None:
            raise AssertionError("write() called before start_response()")
        if type(data) is not bytes:
            data = _as_bytes(data)
        if self.gone:
            raise ClientGone("the client is gone")
        if not self.headers_sent:
            self._body(data, self.serialize(None))
        else:
            self._body(data)

    def finish(self) -> bool:
        """After the last chunk: close the chunked body; say whether to keep the connection."""
        if self.chunked:
            self._send(b"0\r\n\r\n")
        elif self.content_length is not None and not self.no_body \
                and self.sent < self.content_length:
            if self.log is not None:
                self.log(f"the app declared Content-Length {self.content_length} but sent "
                         f"{self.sent} bytes; closing the connection")
            self.keep_alive = False
        return self.keep_alive


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
        return True
    except UnicodeEncodeError:
        return False


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"the response body must be bytes, not {type(data).__name__}"
                    + (" (encode the str first)" if isinstance(data, str) else ""))


def _wait_writable(sock) -> None:
    timeout = sock.gettimeout()
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    if not poller.poll(None if timeout is None else timeout * 1000):
        raise TimeoutError("timed out writing the response")


def _sendmsg_all(sock, buffers: list) -> None:
    views = [memoryview(b) for b in buffers if len(b)]
    while views:
        try:
            sent = sock.sendmsg(views)
        except BlockingIOError:
            _wait_writable(sock)
            continue
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if sent:
            views[0] = views[0][sent:]


def _sendfile_all(sock, fd: int, offset: int, count: int) -> int:
    """os.sendfile until `count` bytes went out or the file ended; returns bytes sent."""
    out = sock.fileno()
    done = 0
    while done < count:
        try:
            sent = os.sendfile(out, fd, offset + done, count - done)
        except BlockingIOError:
            _wait_writable(sock)
            continue
        if sent == 0:
            break
        done += sent
    return done


# --------------------------------------------------------------------------- the cycle

def error_response(response: Response, log=None, message: str | None = None) -> bool:
    """Send a 500 if nothing was sent yet; otherwise the connection must close (False)."""
    if message is not None and log is not None:
        log(message)
    if response.headers_sent or response.gone:
        return False
    response.reset()
    response.start_response("500 Internal Server Error",
                            [("Content-Type", "text/plain; charset=utf-8")])
    try:
        head = response.serialize(len(_ERROR_BODY))
        body = b"" if response.no_body else _ERROR_BODY
        response.sent = len(body)
        response._send_parts(head, body)
    except ClientGone:
        return False
    return response.keep_alive


def _describe(environ: dict | None) -> str:
    if not environ:
        return "the request"
    target = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    return f"{environ.get('REQUEST_METHOD', '?')} {target}"


def _format_exc() -> str:
    """The current exception's traceback as text (nothing to import: errors.format_traceback)."""
    return format_traceback(sys.exc_info()[1])


def on_app_exception(callback) -> None:
    """Call `callback()` each time an app raises (the worker counts them in its stats)."""
    global _exception_hook
    _exception_hook = callback


_exception_hook = None


def _note_exception() -> None:
    if _exception_hook is not None:
        _exception_hook()


def _app_error(response: Response, log, environ, what: str) -> bool:
    if response.gone or isinstance(sys.exc_info()[1], ClientGone):
        return False        # the client went away (writing, or while the app read the body)
    _note_exception()
    text = _format_exc()
    return error_response(response, log, f"{what} for {_describe(environ)}:\n{text.rstrip()}")


def call_app(app, environ: dict, response: Response, log=None) -> bool:
    """Run the app for one request and send its response; True to keep the connection."""
    try:
        result = app(environ, response.start_response)
    except Exception:
        return _app_error(response, log, environ, "the app raised")
    return write_response(response.sock, response, result, log, environ)


def write_response(sock, response: Response, result, log=None, environ=None) -> bool:
    """Send what the app returned, then close() it; True to keep the connection."""
    rtype = type(result)
    if (rtype is list or rtype is tuple) and response.status_line is not None \
            and not response.headers_sent:
        return _write_sequence(response, result, log, environ)
    try:
        if rtype is FileWrapper or isinstance(result, FileWrapper):
            done = _write_file(response, result, log, environ)
            if done is not None:
                return done
        return _write_iterable(response, result, log, environ)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                _note_exception()
                if log is not None:
                    log(f"the app's close() raised for {_describe(environ)}:\n"
                        f"{_format_exc().rstrip()}")


def _write_sequence(response: Response, result, log, environ) -> bool:
    """The common case (`return [body]`): one send with an exact Content-Length."""
    try:
        if len(result) == 1:
            body = result[0]
            if type(body) is not bytes:
                body = _as_bytes(body)
        else:
            body = b"".join(result)
    except TypeError as exc:
        return error_response(response, log, f"bad response body for {_describe(environ)}: "
                                              f"{exc}")
    declared = response.content_length
    if declared is not None and len(body) != declared and not response.no_body:
        if len(body) > declared:
            body = body[:declared]
        else:
            response.keep_alive = False
            if log is not None:
                log(f"the app declared Content-Length {declared} but sent {len(body)} bytes; "
                    f"closing the connection")
    try:
        head = response.serialize(len(body))
        if response.no_body:
            response._send(head)
        else:
            response.sent = len(body)
            response._send_parts(head, body)
    except ClientGone:
        return False
    return response.keep_alive


def _write_file(response: Response, wrapper: FileWrapper, log, environ) -> bool | None:
    """sendfile for a FileWrapper over a regular file; None: not one, iterate it instead."""
    if response.status_line is None or response.headers_sent:
        return None
    filelike = wrapper.filelike
    try:
        fd = filelike.fileno()
        st = os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        offset = filelike.tell() if hasattr(filelike, "tell") else os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return None
    count = max(st.st_size - offset, 0)
    declared = response.content_length
    if declared is not None:
        if declared > count:
            response.keep_alive = False
        count = min(count, declared)
    try:
        head = response.serialize(count)
        if response.no_body or count == 0:
            response._send(head)
            return response.keep_alive
        try:
            # MSG_MORE: on TCP the head waits for the file's first bytes (one segment)
            response.sock.sendall(head, _MSG_MORE)
            response.sent = _sendfile_all(response.sock, fd, offset, count)
        except OSError as exc:
            response.gone = True
            raise ClientGone(str(exc)) from exc
    except ClientGone:
        return False
    if response.sent < (declared if declared is not None else count):
        response.keep_alive = False        # the file shrank under us: the body is short
    return response.keep_alive


def _write_iterable(response: Response, result, log, environ) -> bool:
    """Any iterable: headers go with the first non-empty chunk (PEP 3333), then stream."""
    try:
        iterator = iter(result)
        first = b""
        for chunk in iterator:
            if type(chunk) is not bytes:
                chunk = _as_bytes(chunk)
            if chunk:
                first = chunk
                break
        else:
            iterator = None
        if response.status_line is None:
            raise RuntimeError("the app returned without calling start_response()")
    except Exception:
        return _app_error(response, log, environ, "the app raised")
    try:
        if iterator is None:                    # the whole body was empty (or all of it
            if not response.headers_sent:       # went out through write())
                response._send(response.serialize(0))
            return response.finish()
        response._body(first, b"" if response.headers_sent else response.serialize(None))
        if response.no_body:
            return response.keep_alive
    except ClientGone:
        return False
    try:
        for chunk in iterator:
            if type(chunk) is not bytes:
                chunk = _as_bytes(chunk)
            if chunk:
                response._body(chunk)
        return response.finish()
    except ClientGone:
        return False
    except Exception:
        _note_exception()
        if log is not None:
            log(f"the app raised while streaming {_describe(environ)} (headers already "
                f"sent; closing the connection):\n{_format_exc().rstrip()}")
        return False
