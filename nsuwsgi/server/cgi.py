"""CGI/1.1 (RFC 3875) as a WSGI app: `cgi =` with `plugins = 0:cgi`, as uWSGI's CGI plugin.

`make_cgi_app(config, log=None)` returns a WSGI callable; the worker serves it like any app.

Options (uWSGI's names):

  cgi               (repeatable) `[MOUNTPOINT=]PATH`. PATH is a script or a directory.
                    Without `=` it is the default (the last one wins, as in uWSGI); with `=`
                    the longest mountpoint that is the request path or a `/`-prefix of it
                    wins; no match and no default: 404.
  cgi-allowed-ext   (repeatable) only scripts ending with one of these run; otherwise 403.
  cgi-helper        (repeatable) `.EXT=PROGRAM`: run matching scripts as [PROGRAM, script]
                    (PROGRAM is looked up in PATH); the first matching suffix wins.
  cgi-timeout       seconds the program may run (default 60), measured from its start.

Mapping (PATH_INFO is the decoded request path; SCRIPT_NAME is what came in, usually ""):

* a script: every request runs it; SCRIPT_NAME = incoming SCRIPT_NAME + the mountpoint (its
  trailing `/` dropped), PATH_INFO = the rest of the path (the whole path without a
  mountpoint). A missing or non-executable script is an exec failure: 500, logged;
* a directory: the path is walked one segment at a time until a file is found; that file is
  the script, the segments after it are PATH_INFO, SCRIPT_NAME covers the segments used.
  `.`/`..` segments, a path that ends at a directory (there is no `cgi-index`), and a missing
  file give 404; a script whose realpath is not under the directory's realpath (a symlink
  out) gives 403 and a `CGI security error` log line; a file that is not executable and has
  no helper gives 403 (uWSGI's access(X_OK) check). The realpath is what runs;
* manage-script-name does not change CGI mapping (uWSGI's CGI plugin ignores it too): the
  mountpoints above already split SCRIPT_NAME/PATH_INFO, and a SCRIPT_NAME set by the web
  server (or by an outer dispatcher) is kept as the prefix.

The program's environment: the worker's environment (PATH, and `env =` settings such as
CGIT_CONFIG; stale CGI meta-variables and systemd's LISTEN_*/NOTIFY_SOCKET removed), then the
request's variables (every upper-case key of the environ: HTTP_* headers, and over the uwsgi
protocol whatever the web server sent; HTTP_PROXY ("httpoxy"), LD_*, PATH and a few shell
variables are never taken from a request), then the CGI/1.1 set: GATEWAY_INTERFACE,
SERVER_SOFTWARE, SERVER_NAME/PORT/PROTOCOL, REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME,
SCRIPT_FILENAME, PATH_INFO, PATH_TRANSLATED (when PATH_INFO is not empty: DOCUMENT_ROOT +
PATH_INFO), QUERY_STRING, REMOTE_ADDR/PORT, CONTENT_TYPE,
CONTENT_LENGTH, DOCUMENT_ROOT (the directory; for a script the worker's cwd, as uWSGI; a
DOCUMENT_ROOT sent by the web server wins), HTTPS=on for https, REDIRECT_STATUS=200 (php-cgi
wants it). A query string without `=` is also passed as argv words (RFC 3875 4.4, split on `+`,
decoded), unless a word starts with `-` (CVE-2012-1823: php-cgi would take it as an option).

Running: through the spawn primitive, in a new session (so a timeout kills the whole process
group) with PDEATHSIG SIGKILL, cwd = the script's directory; stdin is a pipe fed with the
request body, stdout a pipe, stderr the worker's stderr (the log). One poll() loop over both
pipes feeds stdin only as fast as the program reads it and reads stdout as it comes, so a
large body and a large output cannot deadlock; there are no threads. A body of unknown length
(chunked) is spooled first so that CONTENT_LENGTH can be set.

The response: header lines until an empty line (LF or CRLF). `Status: NNN reason` sets the
status (a missing reason is filled in); `Location:` without Status gives 302 (local redirects
too); otherwise 200. Content-Type is required unless the response is a redirect or a 204/304
(500 otherwise). Hop-by-hop headers are dropped. The body is then streamed in chunks as the
WSGI iterable; at its end the pipe is closed and the child reaped through its pidfd; close()
before the end (the client went away, a HEAD request) kills the program.

Failures: exec failure (missing, not executable, bad helper) -> 500 with a log line naming the
script and the SpawnError; no complete header block before EOF, a malformed header line or
status, or a header block over 64 KiB -> 502; still running after cgi-timeout -> SIGKILL to
its process group, `CGI timeout !!!` logged, 504 if the headers were not read yet, otherwise
the response is cut (an exception: the worker closes the connection). Every wait is bounded
by the deadline (poll timeouts; the pidfd for the exit).
"""

from __future__ import annotations

import os
import re
import select
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from http import HTTPStatus

from nsuwsgi import __version__, linux
from nsuwsgi.server.apps import AppLoadError
from nsuwsgi.server.wsgi import unquote_to_bytes     # urllib.parse's, without its imports
from nsuwsgi.spawn import SpawnError, resolve_executable, spawn
from nsuwsgi.spec import ProcessSpec

__all__ = ["make_cgi_app", "CGIApp", "CGIConfigError", "CGITimeout"]

CHUNK = 65536               # pipe reads and body writes (uWSGI's cgi-buffer-size default)
MAX_HEAD = 65536            # the CGI header block must fit in this
REAP_GRACE = 5.0            # seconds to wait for a SIGKILLed program to be reapable
SPOOL_MEMORY = 1 << 20      # a chunked request body above this spools to a temporary file
SERVER_SOFTWARE = f"nsuwsgi/{__version__}"

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_ENV_KEY = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "trailers", "transfer-encoding", "upgrade"}
# Variables the gateway owns: an inherited value would lie to the program.
_META = {"AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "DOCUMENT_ROOT", "GATEWAY_INTERFACE",
         "HTTPS", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REDIRECT_STATUS",
         "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_IDENT", "REMOTE_PORT", "REMOTE_USER",
         "REQUEST_METHOD", "REQUEST_SCHEME", "REQUEST_URI", "SCRIPT_FILENAME", "SCRIPT_NAME",
         "SERVER_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
         "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"}
# Never taken from a request: httpoxy (CVE-2016-5385), and what the dynamic loader or a shell
# would act on (a request var is HTTP_* or whatever the web server sent over uwsgi).
_DROPPED_REQUEST_VARS = {"HTTP_PROXY", "PATH", "IFS", "BASH_ENV", "ENV", "SHELLOPTS", "PS4"}


class CGIConfigError(AppLoadError):
    """A cgi* option that cannot work (reported like an app that cannot load)."""


class CGITimeout(RuntimeError):
    """The program ran past cgi-timeout after its headers were sent: the response is cut."""


class _Refuse(Exception):
    """Answer the request with this status instead of running anything."""

    def __init__(self, status: str, log: str | None = None):
        super().__init__(status)
        self.status = status
        self.log = log


class _Timeout(Exception):
    pass


class _BadOutput(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Mapping:
    mountpoint: str         # "" for the default; else as configured, latin-1 (URL) form
    path: str               # absolute filesystem path (a script or a directory)
    value: str              # the option's value, for messages


@dataclass(frozen=True)
class _Target:
    script: str             # what runs (filesystem form; the realpath for directory mode)
    script_name: str        # URL form (latin-1)
    path_info: str          # URL form (latin-1)
    docroot: str            # filesystem form
    directory: bool = False  # found by walking a directory (else a configured script)


def parse_mappings(values) -> tuple[tuple[Mapping, ...], Mapping | None]:
    """(mountpoints sorted longest first, the default) from the `cgi` values."""
    mounts: dict[str, Mapping] = {}
    default = None
    for value in values:
        mountpoint, sep, path = value.partition("=")
        if not sep:
            mountpoint, path = "", value
        if not path:
            raise CGIConfigError("cgi", value, "no script or directory is given",
                                 "write cgi = [/MOUNTPOINT=]PATH")
        if sep and not mountpoint.startswith("/"):
            raise CGIConfigError("cgi", value, f"the mountpoint '{mountpoint}' does not "
                                 "start with '/'", "write cgi = /MOUNTPOINT=PATH")
        mapping = Mapping(mountpoint.encode("utf-8").decode("latin-1"),
                          os.path.abspath(path), value)
        if sep:
            mounts[mapping.mountpoint] = mapping         # a repeated mountpoint: the last
        else:
            default = mapping                           # uWSGI: the last default wins
    ordered = sorted(mounts.values(), key=lambda m: len(m.mountpoint.rstrip("/")),
                     reverse=True)
    return tuple(ordered), default


def parse_helpers(values) -> tuple[tuple[str, str], ...]:
    helpers = []
    for value in values:
        ext, sep, program = value.partition("=")
        if not sep or not ext or not program:
            raise CGIConfigError("cgi-helper", value, "invalid CGI helper syntax",
                                 "write cgi-helper = .EXT=PROGRAM, e.g. .php=php-cgi")
        helpers.append((ext, program))
    return tuple(helpers)


def make_cgi_app(config, log=None) -> "CGIApp":
    """The WSGI app for the `cgi*` options of `config` (a Config or a mapping)."""
    mounts, default = parse_mappings(config["cgi"])
    if not mounts and default is None:
        raise CGIConfigError("cgi", "", "no CGI script or directory is configured",
                             "add cgi = PATH")
    timeout = config["cgi-timeout"]
    if timeout is None or timeout <= 0:
        raise CGIConfigError("cgi-timeout", str(timeout), "must be a positive number of "
                             "seconds")
    return CGIApp(mounts, default, allowed_ext=tuple(config["cgi-allowed-ext"]),
                  helpers=parse_helpers(config["cgi-helper"]), timeout=float(timeout),
                  log=log or _stderr_log)


def _stderr_log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _base_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in _META and not k.startswith("HTTP_")}


# --------------------------------------------------------------------------- the app

class CGIApp:
    """The WSGI callable: map the request, run the program, relay its response."""

    def __init__(self, mounts: tuple[Mapping, ...], default: Mapping | None, *,
                 allowed_ext: tuple[str, ...] = (), helpers: tuple[tuple[str, str], ...] = (),
                 timeout: float = 60.0, log=_stderr_log):
        self.mounts = mounts
        self.default = default
        self.allowed_ext = allowed_ext
        self.helpers = helpers
        self.timeout = timeout
        self.log = log
        self.base_env = _base_environment()
        self.cwd = os.getcwd()

    def __call__(self, environ, start_response):
        try:
            target = self.resolve(environ)
            self.check(target)
        except _Refuse as refused:
            if refused.log:
                self.log(refused.log)
            return _simple(start_response, refused.status)
        helper = self.helper_for(target.script)
        if helper is None and target.directory and not os.access(target.script, os.X_OK):
            self.log(f"CGI: {target.script} is not executable and has no cgi-helper")
            return _simple(start_response, "403 Forbidden")
        body, length = _request_body(environ)
        try:
            env = self.environment(environ, target, length)
        except ValueError as exc:
            _close_body(body)
            self.log(f"CGI: refusing {environ.get('REQUEST_URI', '')!r}: {exc}")
            return _simple(start_response, "400 Bad Request")
        argv = ([helper] if helper else []) + [target.script] + _isindex_args(
            environ.get("QUERY_STRING", ""))
        executable = resolve_executable(argv[0], self.base_env)
        run = _Run(argv, executable, env, os.path.dirname(target.script), body, length,
                   self.timeout, self.log, target.script)
        try:
            run.start()
        except SpawnError as err:
            _close_body(body)
            self.log(f"CGI: cannot run {target.script}"
                     + (f" (helper {helper})" if helper else "") + f": {err.describe()} "
                     f"[{err}]")
            return _simple(start_response, "500 Internal Server Error")
        try:
            status, headers, first = self.read_head(run, target)
        except _Timeout:
            run.kill()
            self.log(f"CGI timeout !!! {target.script} produced no complete header block in "
                     f"{self.timeout:g} s; killed")
            run.close()
            return _simple(start_response, "504 Gateway Timeout")
        except _BadOutput as bad:
            run.kill()
            self.log(f"invalid CGI response !!! {target.script}: {bad.reason}")
            run.close()
            return _simple(start_response, bad.status)
        except BaseException:
            run.close()
            raise
        try:
            start_response(status, headers)
        except BaseException:
            run.close()
            raise
        return _Body(run, first, target.script)

    # ---- mapping

    def resolve(self, environ) -> _Target:
        path = environ.get("PATH_INFO", "") or ""
        prefix = environ.get("SCRIPT_NAME", "") or ""
        if "\0" in path:
            raise _Refuse("400 Bad Request")
        mapping, rest = self.choose(path)
        if mapping is None:
            raise _Refuse("404 Not Found")
        script_name = prefix + mapping.mountpoint.rstrip("/")
        try:
            is_dir = os.path.isdir(mapping.path)
        except (OSError, ValueError):
            is_dir = False
        if not is_dir:
            return _Target(mapping.path, script_name, rest,
                           environ.get("DOCUMENT_ROOT") or self.cwd)
        return self.walk(mapping, script_name, rest)

    def choose(self, path: str) -> tuple[Mapping | None, str]:
        for mapping in self.mounts:
            stripped = mapping.mountpoint.rstrip("/")
            if path == stripped or path.startswith(stripped + "/"):
                return mapping, path[len(stripped):]
        if self.default is not None:
            return self.default, path
        return None, path

    @staticmethod
    def walk(mapping: Mapping, script_name: str, rest: str) -> _Target:
        """Directory mode: the first segment naming a file is the script."""
        docroot = mapping.path
        parts = rest.split("/")
        if parts and parts[0] == "":
            parts = parts[1:]
        current = docroot
        used: list[str] = []
        for index, segment in enumerate(parts):
            if segment in (".", ".."):
                raise _Refuse("404 Not Found")
            if segment == "":
                if index == len(parts) - 1:
                    break               # a trailing "/": a directory was asked for
                continue
            candidate = os.path.join(current, _fs(segment))
            try:
                st = os.stat(candidate)
            except (OSError, ValueError):
                raise _Refuse("404 Not Found") from None
            used.append(segment)
            if stat.S_ISDIR(st.st_mode):
                current = candidate
                continue
            real = os.path.realpath(candidate)
            root = os.path.realpath(docroot)
            if not real.startswith(root.rstrip("/") + "/"):
                raise _Refuse("403 Forbidden",
                              f"CGI security error: {real} is not under {root}")
            tail = parts[index + 1:]
            path_info = "/" + "/".join(tail) if tail else ""
            return _Target(real, script_name + "/" + "/".join(used), path_info, docroot,
                           directory=True)
        raise _Refuse("404 Not Found")

    def check(self, target: _Target) -> None:
        if self.allowed_ext and not any(target.script.endswith(ext)
                                        for ext in self.allowed_ext):
            raise _Refuse("403 Forbidden", f"CGI: {target.script} does not end with an "
                          f"allowed extension ({', '.join(self.allowed_ext)})")

    def helper_for(self, script: str) -> str | None:
        for ext, program in self.helpers:
            if script.endswith(ext):
                return program
        return None

    # ---- the environment

    def environment(self, environ, target: _Target, length: int | None) -> tuple[str, ...]:
        env = dict(self.base_env)
        for key, value in environ.items():
            if type(value) is str and _ENV_KEY.match(key) \
                    and key not in _DROPPED_REQUEST_VARS and not key.startswith("LD_"):
                env[key] = _native(value)
        env.pop("CONTENT_LENGTH", None)
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST", "")
        server_name = environ.get("SERVER_NAME") or _host_name(host) or "localhost"
        server_port = environ.get("SERVER_PORT") or _host_port(host) or (
            "443" if scheme == "https" else "80")
        path_info = target.path_info
        request_uri = environ.get("REQUEST_URI")
        if not request_uri:
            request_uri = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                request_uri += "?" + environ["QUERY_STRING"]
        docroot = target.docroot
        env.update({
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "SERVER_NAME": _native(server_name),
            "SERVER_PORT": _native(server_port),
            "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL") or "HTTP/1.0",
            "REQUEST_METHOD": _native(environ.get("REQUEST_METHOD") or "GET"),
            "REQUEST_URI": _native(request_uri),
            "SCRIPT_NAME": _native(target.script_name),
            "SCRIPT_FILENAME": target.script,
            "PATH_INFO": _native(path_info),
            "QUERY_STRING": _native(environ.get("QUERY_STRING", "")),
            "REMOTE_ADDR": _native(environ.get("REMOTE_ADDR", "")),
            "REMOTE_PORT": _native(str(environ.get("REMOTE_PORT", ""))),
            "DOCUMENT_ROOT": docroot if "DOCUMENT_ROOT" not in environ
            else _native(environ["DOCUMENT_ROOT"]),
            "REDIRECT_STATUS": "200",
        })
        if path_info:
            env["PATH_TRANSLATED"] = env["DOCUMENT_ROOT"].rstrip("/") + _native(path_info)
        else:
            env.pop("PATH_TRANSLATED", None)
        if scheme == "https":
            env.setdefault("HTTPS", "on")
        if not environ.get("CONTENT_TYPE"):
            env.pop("CONTENT_TYPE", None)
        if length or environ.get("CONTENT_LENGTH"):
            env["CONTENT_LENGTH"] = str(length)
        items = []
        for key, value in env.items():
            if "\0" in value or "\0" in key or "=" in key:
                raise ValueError(f"variable {key} contains a NUL byte")
            items.append(f"{key}={value}")
        return tuple(items)

    # ---- the response head

    def read_head(self, run: "_Run", target: _Target) -> tuple[str, list, bytes]:
        buf = bytearray()
        while True:
            end = _head_end(buf)
            if end is not None:
                head_len, body_start = end
                status, headers = _parse_head(bytes(buf[:head_len]))
                return status, headers, bytes(buf[body_start:])
            if len(buf) > MAX_HEAD:
                raise _BadOutput("502 Bad Gateway", f"the header block is larger than "
                                 f"{MAX_HEAD} bytes")
            data = run.read_chunk()
            if not data:
                code = run.finish()
                raise _BadOutput("502 Bad Gateway", "the program ended without a complete "
                                 "header block" + _exit_text(code)
                                 + (f"; it wrote {bytes(buf[:200])!r}" if buf else ""))
            buf += data


# --------------------------------------------------------------------------- one run

class _Run:
    """One program: its pipes, its pidfd, its deadline."""

    def __init__(self, argv, executable, env, cwd, body, length, timeout, log, label):
        self.label = label          # the script, for log lines
        self.argv = tuple(argv)
        self.executable = executable
        self.env = env
        self.cwd = cwd or "/"
        self.body = body
        self.left = length or 0
        self.timeout = timeout
        self.log = log
        self.child = None
        self.stdin = None           # our write end
        self.stdout = None          # our read end
        self.pending = b""
        self.deadline = 0.0
        self.status = None          # the wait status once reaped
        self.poller = None
        self.killed = False

    def start(self) -> None:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
        except OSError:
            os.close(in_r)
            os.close(in_w)
            raise
        try:
            spec = ProcessSpec(argv=self.argv, executable=self.executable, env=self.env,
                               cwd=self.cwd, stdin_fd=in_r, stdin_devnull=False,
                               stdout_fd=out_w, new_session=True, pdeathsig=signal.SIGKILL)
            now = time.monotonic()
            self.child = spawn(spec, now)
            self.deadline = now + self.timeout
        except BaseException:
            for fd in (in_w, out_r):
                os.close(fd)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        os.set_blocking(in_w, False)
        os.set_blocking(out_r, False)
        self.stdin, self.stdout = in_w, out_r
        self.poller = select.poll()
        self.poller.register(out_r, select.POLLIN)
        if self.left > 0:
            self.poller.register(in_w, select.POLLOUT)
        else:
            self._close_stdin()

    # ---- the pump

    def read_chunk(self) -> bytes:
        """The next bytes of the program's stdout (b"" at EOF), feeding stdin meanwhile."""
        if self.stdout is None:
            return b""
        while True:
            if self.stdin is not None and not self.pending:
                self._refill()
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout()
            events = self.poller.poll(max(1, int(remaining * 1000 + 0.999)))
            data = None
            for fd, event in events:
                if fd == self.stdin:
                    self._feed(event)
                elif fd == self.stdout:
                    try:
                        data = os.read(fd, CHUNK)
                    except BlockingIOError:
                        continue
            if data is not None:
                return data

    def _refill(self) -> None:
        if self.left <= 0:
            self._close_stdin()
            return
        data = self.body.read(min(CHUNK, self.left))
        if not data:
            self.left = 0           # the client sent less than CONTENT_LENGTH
            self._close_stdin()
            return
        self.left -= len(data)
        self.pending = memoryview(data)

    def _feed(self, event: int) -> None:
        if event & (select.POLLERR | select.POLLHUP) and not event & select.POLLOUT:
            self._close_stdin()     # the program closed its stdin: it wants no more
            return
        try:
            written = os.write(self.stdin, self.pending)
        except BlockingIOError:
            return
        except OSError:             # EPIPE: the program closed its stdin
            self._close_stdin()
            return
        self.pending = self.pending[written:]
        if not self.pending and self.left <= 0:
            self._close_stdin()

    def _close_stdin(self) -> None:
        self.pending = b""
        if self.stdin is not None:
            if self.poller is not None:
                try:
                    self.poller.unregister(self.stdin)
                except KeyError:
                    pass
            os.close(self.stdin)
            self.stdin = None

    # ---- the end

    def finish(self) -> int | None:
        """stdout is at EOF: close the pipes, wait (bounded) for the exit, reap."""
        self._close_pipes()
        if self.child is None or self.status is not None:
            return self.status
        if not self._wait_exit(self.deadline - time.monotonic()):
            self.log(f"CGI timeout !!! {self.label} closed its output but was still running "
                     f"after {self.timeout:g} s; killed")
            self.kill()
        return self._reap()

    def kill(self) -> None:
        """SIGKILL the program's process group (it leads its own session), then reap it."""
        child = self.child
        if child is None or self.status is not None or self.killed:
            return
        self.killed = True
        try:
            os.killpg(child.pid, signal.SIGKILL)    # not reaped yet: the pgid is still ours
        except (ProcessLookupError, PermissionError):
            pass
        try:
            linux.pidfd_send_signal(child.pidfd, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass
        self._close_pipes()
        if not self._wait_exit(REAP_GRACE):
            self.log(f"CGI: pid {child.pid} did not die within {REAP_GRACE:g} s of SIGKILL")
        self._reap()

    def close(self) -> None:
        """Idempotent: whatever state we are in, leave no process and no fd behind."""
        if self.child is not None and self.status is None and self.child.pidfd >= 0:
            if self._wait_exit(0):
                self._reap()
            else:
                self.kill()
        self._close_pipes()
        if self.child is not None and self.child.pidfd >= 0:
            os.close(self.child.pidfd)      # unreapable (stuck in the kernel): give it up
            self.child.pidfd = -1
        _close_body(self.body)
        self.body = None

    def _close_pipes(self) -> None:
        self._close_stdin()
        if self.stdout is not None:
            os.close(self.stdout)
            self.stdout = None

    def _wait_exit(self, timeout: float) -> bool:
        poller = select.poll()
        poller.register(self.child.pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))

    def _reap(self) -> int | None:
        if self.status is not None or self.child is None:
            return self.status
        status = linux.reap_pidfd(self.child.pidfd)
        if status is None and self._wait_exit(0):
            status = -1             # someone else reaped it
        if status is not None:
            self.status = status
            os.close(self.child.pidfd)
            self.child.pidfd = -1
        return status


class _Body:
    """The response body as a WSGI iterable: the bytes after the head, then the pipe."""

    def __init__(self, run: _Run, first: bytes, script: str):
        self.run = run
        self.first = first
        self.script = script
        self.done = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.first:
            first, self.first = self.first, b""
            return first
        if self.done:
            raise StopIteration
        try:
            data = self.run.read_chunk()
        except _Timeout:
            self.done = True
            self.run.kill()
            self.run.log(f"CGI timeout !!! {self.script} still running after "
                         f"{self.run.timeout:g} s; killed, response cut")
            raise CGITimeout(f"{self.script} ran longer than cgi-timeout "
                             f"({self.run.timeout:g} s); the response was cut") from None
        if data:
            return data
        self.done = True
        code = self.run.finish()
        if code:
            self.run.log(f"CGI: {self.script}{_exit_text(code)}")
        raise StopIteration

    def close(self) -> None:
        self.done = True
        self.run.close()


# --------------------------------------------------------------------------- helpers

def _simple(start_response, status: str):
    body = status.encode("latin-1") + b"\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _request_body(environ) -> tuple[object, int]:
    """(a readable body, its length). Unknown length (chunked): spooled to learn it."""
    stream = environ.get("wsgi.input")
    text = environ.get("CONTENT_LENGTH", "")
    if stream is None:
        return None, 0
    if text:
        try:
            length = int(text)
        except ValueError:
            length = 0
        return stream, max(length, 0)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    total = 0
    try:
        while chunk := stream.read(CHUNK):
            spool.write(chunk)
            total += len(chunk)
    except BaseException:
        spool.close()
        raise
    if not total:
        spool.close()
        return None, 0
    spool.seek(0)
    return spool, total


def _close_body(body) -> None:
    if isinstance(body, tempfile.SpooledTemporaryFile):
        body.close()


def _fs(url_text: str) -> str:
    """A latin-1 (PEP 3333) path segment as a filesystem string."""
    return os.fsdecode(url_text.encode("latin-1", "surrogateescape"))


def _native(value: str) -> str:
    """An environ value (latin-1 str) as the str whose fsencode() is the original bytes."""
    try:
        return os.fsdecode(value.encode("latin-1"))
    except UnicodeEncodeError:
        return value


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _host_port(host: str) -> str:
    if host.startswith("["):
        rest = host.partition("]")[2]
        return rest[1:] if rest.startswith(":") else ""
    return host.rpartition(":")[2] if ":" in host else ""


def _isindex_args(query: str) -> list[str]:
    """RFC 3875 4.4: a query string without '=' is a search: its words become argv."""
    if not query or "=" in query:
        return []
    words = [unquote_to_bytes(w.encode("latin-1", "surrogateescape"))
             for w in query.split("+") if w]
    if any(w.startswith(b"-") or b"\0" in w for w in words):
        return []
    return [os.fsdecode(w) for w in words]


def _head_end(buf: bytearray) -> tuple[int, int] | None:
    """(length of the header lines, offset of the body) once an empty line was seen."""
    if buf[:1] == b"\n":
        return 0, 1
    if buf[:2] == b"\r\n":
        return 0, 2
    best = None
    for sep in (b"\n\n", b"\n\r\n"):
        at = buf.find(sep)
        if at >= 0 and (best is None or at < best[0]):
            best = (at + 1, at + len(sep))
    return best


def _parse_head(block: bytes) -> tuple[str, list[tuple[str, str]]]:
    status = None
    location = False
    content_type = False
    headers: list[tuple[str, str]] = []
    for raw in block.split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if not headers:
                raise _BadOutput("502 Bad Gateway", f"a continuation line first: {line!r}")
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip().decode("latin-1"))
            continue
        name, sep, value = line.partition(b":")
        name = name.strip()
        if not sep or not _TOKEN.match(name):
            raise _BadOutput("502 Bad Gateway", f"not a header line: {line[:200]!r}")
        if b"\r" in value or b"\0" in value:
            raise _BadOutput("502 Bad Gateway", f"a control character in {line[:200]!r}")
        text = value.strip().decode("latin-1")
        lower = name.lower()
        if lower == b"status":
            status = _status(text)
            continue
        if lower in _HOP_BY_HOP_BYTES:
            continue
        if lower == b"content-length" and not (text.isascii() and text.isdigit()):
            raise _BadOutput("502 Bad Gateway", f"invalid Content-Length {text!r}")
        if lower == b"location":
            location = True
        elif lower == b"content-type":
            content_type = True
        headers.append((name.decode("latin-1"), text))
    if status is None:
        status = "302 Found" if location else "200 OK"
    code = int(status[:3])
    if not content_type and not location and code not in (204, 304) and code >= 200:
        raise _BadOutput("500 Internal Server Error", "no Content-Type header")
    return status, headers


_HOP_BY_HOP_BYTES = {h.encode() for h in _HOP_BY_HOP}


def _status(text: str) -> str:
    code, _, reason = text.partition(" ")
    if not (len(code) == 3 and code.isascii() and code.isdigit()) \
            or not 100 <= int(code) <= 599:
        raise _BadOutput("502 Bad Gateway", f"invalid Status {text!r}")
    reason = reason.strip()
    if not reason:
        try:
            reason = HTTPStatus(int(code)).phrase
        except ValueError:
            reason = "Unknown"
    return f"{code} {reason}"


def _exit_text(status: int | None) -> str:
    if status is None or status < 0:
        return ""
    if status & 0xFF00 or not status & 0x7F:
        return f" (exit status {status >> 8})"
    try:
        name = signal.Signals(status & 0x7F).name
    except ValueError:
        name = str(status & 0x7F)
    return f" (killed by {name})"

