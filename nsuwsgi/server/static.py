"""`static-map = /prefix=/dir` (repeatable): files served before the app, with sendfile.

As in uWSGI (core/protocol.c, uwsgi_file_serve):

* the maps are checked in config order, against PATH_INFO after manage-script-name;
* the first map whose file exists serves it; when no map has the file, the request goes to
  the app (a missing static file is the app's to answer, usually with its 404);
* the target may be a single file (`static-map = /favicon.ico=/srv/favicon.ico`);
* Content-Type from the file's extension, Last-Modified from its mtime, If-Modified-Since
  answered with 304.

Where we differ, on purpose:

* the prefix matches on a path boundary: `/static` serves `/static/x` but not `/staticx`
  (uWSGI would look for `<dir>x`);
* a path whose real location (after `..` and symlinks are resolved) is outside the directory
  is never served, the request goes to the app. uWSGI makes the same check with a plain
  string prefix test, which lets `/srv/static2/x` pass for `/srv/static`; we compare on a
  path boundary. Symlinks that stay inside the directory are followed;
* a directory is not served (uWSGI's static-index is not implemented): it goes to the app;
* only GET and HEAD are served from files; other methods go to the app.

The response is a FileWrapper, so write_response sends it with sendfile(2), and HEAD,
keep-alive and Connection follow the same rules as an app's response.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from email.utils import mktime_tz, parsedate_tz

from nsuwsgi.server.wsgi import FileWrapper, http_date

__all__ = ["StaticMap", "parse_static_map"]

_TYPES: dict[bytes, str] = {}
_DEFAULT_TYPE = "application/octet-stream"


def parse_static_map(value: str) -> tuple[str, str]:
    """`/prefix=/dir` -> ("/prefix", "/dir"); ValueError with a fix when malformed."""
    prefix, sep, target = value.partition("=")
    prefix, target = prefix.strip(), target.strip()
    if not sep or not prefix or not target:
        raise ValueError(f"'{value}' is not PREFIX=DIR")
    if not prefix.startswith("/"):
        raise ValueError(f"the prefix '{prefix}' must start with /")
    return prefix, target


def _content_type(path: bytes) -> str:
    ext = os.path.splitext(path)[1].lower()
    ctype = _TYPES.get(ext)
    if ctype is None:
        ctype = mimetypes.guess_type("f" + ext.decode("latin-1"), strict=False)[0] \
            or _DEFAULT_TYPE
        if len(_TYPES) < 1024:
            _TYPES[ext] = ctype
    return ctype


def _parse_http_date(text: str) -> int | None:
    try:
        parsed = parsedate_tz(text)
        return None if parsed is None else mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None


class _Map:
    __slots__ = ("prefix", "target", "root", "is_file")

    def __init__(self, prefix: str, target: str):
        # PATH_INFO holds the request's bytes as latin-1; compare in the same form
        self.prefix = prefix.rstrip("/").encode("utf-8").decode("latin-1")
        self.target = os.fsencode(os.path.abspath(target))
        self.root: bytes | None = None
        self.is_file = False

    def resolve_root(self) -> bytes | None:
        """The target's real path, once it exists (it may be created after start-up)."""
        if self.root is None:
            try:
                real = os.path.realpath(self.target, strict=True)
                self.is_file = stat.S_ISREG(os.stat(real).st_mode)
            except OSError:
                return None
            self.root = real
        return self.root


class StaticMap:
    """The static-map entries of one app server, in config order."""

    def __init__(self, entries):
        mimetypes.init()
        self.maps = [_Map(prefix, target) for prefix, target in entries]

    def __bool__(self) -> bool:
        return bool(self.maps)

    def find(self, path_info: str) -> bytes | None:
        """The real path of the file serving `path_info`, or None (then the app answers)."""
        for entry in self.maps:
            prefix = entry.prefix
            if not path_info.startswith(prefix):
                continue
            rest = path_info[len(prefix):]
            if rest and rest[0] != "/":
                continue                        # /static must not match /staticx
            root = entry.resolve_root()
            if root is None:
                continue
            if entry.is_file:
                if rest.strip("/"):
                    continue
                return root
            if "\x00" in rest:
                return None
            full = os.path.realpath(root + rest.encode("latin-1"))
            if full != root and not full.startswith(root + b"/") and root != b"/":
                continue                        # .. or a symlink leading out of the dir
            try:
                if stat.S_ISREG(os.stat(full).st_mode):
                    return full
            except OSError:
                continue
        return None

    def serve(self, environ: dict, start_response):
        """A WSGI response for the file, or None when no map has one (the app answers)."""
        method = environ.get("REQUEST_METHOD")
        if method != "GET" and method != "HEAD":
            return None
        path = self.find(environ.get("PATH_INFO", ""))
        if path is None:
            return None
        try:
            f = open(path, "rb", buffering=0)
        except OSError:
            return None
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                f.close()
                return None
            mtime = int(st.st_mtime)
            last_modified = http_date(mtime)
            since = environ.get("HTTP_IF_MODIFIED_SINCE")
            if since:
                when = _parse_http_date(since)
                if when is not None and mtime <= when:
                    f.close()
                    start_response("304 Not Modified", [("Last-Modified", last_modified)])
                    return []
            start_response("200 OK", [("Content-Type", _content_type(path)),
                                      ("Content-Length", str(st.st_size)),
                                      ("Last-Modified", last_modified)])
        except BaseException:
            f.close()
            raise
        return FileWrapper(f)
