"""The tenant's WSGI apps: loaded as uWSGI's python plugin loads them, chosen per request.

Options (uWSGI's names; `settings` is a Config or any mapping of option name -> value):

  chdir               change to this directory first (relative paths below start from it)
  virtualenv / home / venv / pyhome
                      add DIR/lib/pythonX.Y/site-packages (this interpreter's X.Y, .pth files
                      honoured) in front of our own site-packages
  pythonpath / python-path / pp   (repeatable, globs expanded)
                      each inserted at the front of sys.path, in config order, as uWSGI does
                      (so the last one listed is searched first); "." is added too, as in uWSGI
  wsgi-file / file    exec this file as a module, take `callable`
  module / wsgi / w   import "pkg.mod" (callable `callable`) or "pkg.mod:name"
  callable            the callable's name, default "application"
  mount               "/prefix=file.py" or "/prefix=pkg.mod[:name]" (repeatable)
  manage-script-name  split SCRIPT_NAME/PATH_INFO at the mountpoint (below)
  no-default-app      do not send unmatched requests to the first app
  static-map          "/prefix=/dir" (repeatable), see static.py

Which app answers (uWSGI's core/protocol.c and uwsgi_get_app_id):

* with manage-script-name, for a PATH_INFO longer than "/": the longest mountpoint (its
  trailing "/" ignored) equal to the path or followed in it by "/" wins; SCRIPT_NAME becomes
  the mountpoint as configured and PATH_INFO what follows it. With mounts /foo, /foobis/ and
  /footris/: /foo, /foo/, /foo/x -> "/foo"; /foobis, /foobis/, /foobis/x -> "/foobis/";
  /fooanything, /foobisis/, /foofighters -> "" (the default app);
* then the app whose mountpoint equals SCRIPT_NAME (which over the uwsgi protocol the web
  server may send), else the default app: the first one loaded (wsgi-file/module, then the
  mounts in order) unless no-default-app; with none, 404.

Loading errors raise AppLoadError naming the option and value, with a fix; the app's own
traceback (for an exception in its code) is kept in `.traceback` for the log.
"""

from __future__ import annotations

import glob
import importlib
import importlib.machinery
import importlib.util
import os
import site
import sys
from collections.abc import Callable

from nsuwsgi.errors import UserError, format_traceback
from nsuwsgi.records import Frozen, set_field

TYPE_CHECKING = False    # type checkers take it as True; `typing` costs ~2 ms at start
if TYPE_CHECKING:                       # imported only by configs with static-map
    from nsuwsgi.server.static import StaticMap

__all__ = ["AppLoadError", "App", "Apps", "load_apps", "load_app"]

DEFAULT_CALLABLE = "application"
_FALSE_WORDS = {"0", "false", "no", "off"}


class AppLoadError(UserError):
    """An app could not be loaded. str() is the one-line error; `traceback` the app's own."""

    def __init__(self, option: str, value: str, message: str, hint: str | None = None,
                 traceback: str | None = None):
        super().__init__(message, option=option, hint=hint)
        self.value = value
        self.traceback = traceback


class App(Frozen):
    """One loaded WSGI callable and where it is mounted."""

    __slots__ = ("mountpoint", "callable", "option", "value")

    def __init__(self, mountpoint: str, callable: Callable, option: str, value: str):
        set_field(self, "mountpoint", mountpoint)   # as configured ("" for wsgi-file), latin-1
        set_field(self, "callable", callable)
        set_field(self, "option", option)           # the option that loaded it
        set_field(self, "value", value)


def _not_found(environ, start_response):
    body = b"Not Found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]


class Apps:
    """The loaded apps and the rules choosing one per request.

    `apps.wsgi` is what the worker calls: the default app itself when there is nothing to
    choose (no mounts, no static-map), else this dispatcher.
    """

    def __init__(self, apps: list[App], *, manage_script_name: bool = False,
                 static: StaticMap | None = None, no_default_app: bool = False):
        self.apps = list(apps)
        self.manage_script_name = manage_script_name
        self.static = static if static else None
        self.default = None if no_default_app or not self.apps else self.apps[0].callable
        self._by_mount = {a.mountpoint: a.callable for a in self.apps if a.mountpoint}
        managed = [(a.mountpoint.rstrip("/"), a.mountpoint) for a in self.apps]
        managed = [(stripped, mp) for stripped, mp in managed if stripped]
        managed.sort(key=lambda m: len(m[0]), reverse=True)     # stable: config order
        self._managed = tuple(managed) if manage_script_name else ()

    def __len__(self) -> int:
        return len(self.apps)

    @property
    def wsgi(self) -> Callable:
        if not self._by_mount and self.static is None and self.default is not None:
            return self.default
        return self

    def split(self, path_info: str) -> tuple[str, str] | None:
        """manage-script-name: (SCRIPT_NAME, PATH_INFO) for this path, None if no mount."""
        if len(path_info) > 1:
            for stripped, mountpoint in self._managed:
                if path_info.startswith(stripped) and (
                        len(path_info) == len(stripped) or path_info[len(stripped)] == "/"):
                    return mountpoint, path_info[len(mountpoint):]
        return None

    def select(self, environ: dict):
        """The app for this request (None: no app); rewrites SCRIPT_NAME/PATH_INFO."""
        if self._managed:
            found = self.split(environ.get("PATH_INFO", ""))
            if found is not None:
                environ["SCRIPT_NAME"], environ["PATH_INFO"] = found
        script_name = environ.get("SCRIPT_NAME")
        if script_name:
            app = self._by_mount.get(script_name)
            if app is not None:
                return app
        return self.default

    def __call__(self, environ: dict, start_response):
        app = self.select(environ)
        if self.static is not None:
            result = self.static.serve(environ, start_response)
            if result is not None:
                return result
        if app is None:
            return _not_found(environ, start_response)
        return app(environ, start_response)


# --------------------------------------------------------------------------- settings

_MISSING = object()


def _lookup(settings, name: str):
    try:
        return settings[name]
    except (KeyError, IndexError):
        return None


def _one(settings, *names: str) -> tuple[str, object]:
    """(the option name used, its value) for the first of `names` that is set."""
    for name in names:
        value = _lookup(settings, name)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else None
        if value not in (None, "", False):
            return name, value
    return names[0], None


def _many(settings, *names: str) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    seen: list = []
    for name in names:
        value = _lookup(settings, name)
        if value in (None, "", False, (), []):
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if values in seen:          # an alias the Config already folded into its option
            continue
        seen.append(values)
        found.extend((name, v) for v in values)
    return found


def _flag(settings, *names: str) -> bool:
    for name in names:
        value = _lookup(settings, name)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else None
        if value is None or value is False:
            continue
        if value is True:
            return True
        return str(value).strip().lower() not in _FALSE_WORDS
    return False


# --------------------------------------------------------------------------- loading

def load_apps(settings, *, chdir: bool = True, log: Callable[[str], None] | None = None
              ) -> Apps:
    """Set up sys.path, load every app the settings name, and return the dispatcher.

    `chdir=False` when the caller already changed to the `chdir` directory. With a Config,
    an AppLoadError carries the origin (file:line) of the entry it is about.
    """
    try:
        return _load_apps(settings, chdir, log)
    except AppLoadError as error:
        if error.origin is None:
            error.origin = _origin(settings, error.option, error.value)
        raise


def _origin(settings, option: str, value: str):
    """Where a Config got this option (the entry with this value, for repeatable ones)."""
    try:
        entries = settings.items(option)
    except (AttributeError, KeyError, TypeError):
        return None
    if not isinstance(entries, tuple):
        return None
    for entry in entries:
        if getattr(entry, "raw", None) == value or getattr(entry, "value", None) == value:
            return entry.origin
    return entries[-1].origin if entries else None


def _load_apps(settings, chdir: bool, log) -> Apps:
    if chdir:
        option, directory = _one(settings, "chdir")
        if directory:
            try:
                os.chdir(directory)
            except OSError as exc:
                raise AppLoadError(option, directory, f"cannot change to '{directory}': "
                                   f"{exc.strerror}", "create the directory or fix the "
                                   "path") from None
    option, home = _one(settings, "virtualenv", "home", "venv", "pyhome")
    if home:
        add_virtualenv(option, str(home))
    add_pythonpath(_many(settings, "pythonpath", "python-path", "pp"), log)
    default_callable = _one(settings, "callable")[1] or DEFAULT_CALLABLE

    apps: list[App] = []
    file_option, wsgi_file = _one(settings, "wsgi-file", "file")
    module_option, module = _one(settings, "module", "wsgi", "w")
    if wsgi_file and module:
        raise AppLoadError(file_option, str(wsgi_file), f"both {file_option} and "
                           f"{module_option} are set", f"keep one of them, or mount the "
                           f"other one with mount = /PREFIX={wsgi_file}")
    if module:
        apps.append(App("", load_app(module_option, str(module), default_callable),
                        module_option, str(module)))
    if wsgi_file:
        apps.append(App("", load_app(file_option, str(wsgi_file), default_callable,
                                     kind="file"), file_option, str(wsgi_file)))
    used: dict[str, str] = {}
    for option, value in _many(settings, "mount"):
        mountpoint, target = parse_mount(option, value)
        if mountpoint in used:
            raise AppLoadError(option, _text(value), f"the mountpoint '{mountpoint}' is "
                               f"already used by '{used[mountpoint]}'", "remove one of them")
        used[mountpoint] = target
        app = load_app(option, target, default_callable, kind="mount")
        apps.append(App(mountpoint.encode("utf-8").decode("latin-1"), app, option,
                        _text(value)))

    entries = []
    for option, value in _many(settings, "static-map"):
        if isinstance(value, tuple):
            entries.append(value)
            continue
        try:
            from nsuwsgi.server.static import parse_static_map    # static-map users only
            entries.append(parse_static_map(str(value)))
        except ValueError as exc:
            raise AppLoadError(option, str(value), str(exc),
                               "write static-map = /static=/srv/app/static") from None
    static = None
    if entries:
        from nsuwsgi.server.static import StaticMap
        static = StaticMap(entries)
    if log is not None:
        for app in apps:
            log(f"app loaded from {app.option} = {app.value}"
                + (f" on {app.mountpoint}" if app.mountpoint else " (default app)"))
    return Apps(apps, manage_script_name=_flag(settings, "manage-script-name"),
                static=static, no_default_app=_flag(settings, "no-default-app"))


def _text(value) -> str:
    return "=".join(value) if isinstance(value, tuple) else str(value)


def parse_mount(option: str, value) -> tuple[str, str]:
    """`/prefix=target` -> ("/prefix", "target")."""
    if isinstance(value, tuple):
        mountpoint, target = value
    else:
        mountpoint, sep, target = str(value).partition("=")
        if not sep:
            raise AppLoadError(option, str(value), f"'{value}' is not MOUNTPOINT=APP",
                               "write mount = /app=app.py or mount = /app=package.module:app")
    mountpoint, target = mountpoint.strip(), target.strip()
    if not mountpoint.startswith("/") or not target:
        raise AppLoadError(option, _text(value), f"'{_text(value)}' is not MOUNTPOINT=APP "
                           "(the mountpoint starts with /)",
                           "write mount = /app=app.py or mount = /app=package.module:app")
    return mountpoint, target


def add_virtualenv(option: str, home: str) -> list[str]:
    """Put the virtualenv's site-packages for this Python in front of ours."""
    home = os.path.abspath(home)
    if not os.path.isdir(home):
        raise AppLoadError(option, home, f"'{home}' is not a directory",
                           "point it at the virtualenv (the directory holding bin/ and lib/)")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [d for d in (os.path.join(home, lib, version, "site-packages")
                         for lib in ("lib", "lib64")) if os.path.isdir(d)]
    found = [d for i, d in enumerate(found) if os.path.realpath(d) not in
             {os.path.realpath(e) for e in found[:i]}]
    if not found:
        others = sorted(os.path.basename(p) for p in glob.glob(os.path.join(home, "lib",
                                                                            "python*")))
        hint = (f"it was made for {', '.join(others)}; recreate it with {sys.executable} "
                f"({version})" if others else f"create one with: {sys.executable} -m venv "
                f"{home}")
        raise AppLoadError(option, home, f"'{home}' has no lib/{version}/site-packages",
                           hint)
    before = list(sys.path)
    for directory in found:
        site.addsitedir(directory)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + [p for p in before]
    return added


def add_pythonpath(entries: list[tuple[str, object]], log=None) -> None:
    """uWSGI's order: "." then each entry inserted at the front (the last ends first)."""
    if "." not in sys.path:
        sys.path.insert(0, ".")
    for _option, value in entries:
        value = str(value)
        paths = sorted(glob.glob(value)) if any(c in value for c in "*?[") else [value]
        for path in paths:
            sys.path.insert(0, path)
            if log is not None:
                log(f"added {path} to pythonpath")


def load_app(option: str, value: str, default_callable: str = DEFAULT_CALLABLE, *,
             kind: str = "module") -> Callable:
    """One app. `kind`: "file" (wsgi-file), "module" (module/wsgi) or "mount".

    As in uWSGI: a mount ending in .py or .wsgi is a file (unless no such file exists and
    it reads as a module name: `mysite.wsgi`), `module:callable` is a module; a module value
    that is a path (has a /, or ends in .py) is loaded as a file too.
    """
    if kind == "file" or os.path.isfile(value):
        target, name, is_file = value, default_callable, True
    else:
        target, colon, name = value.rpartition(":")
        if not colon:
            target, name = value, ""
        name = name or default_callable
        is_file = "/" in target or target.endswith(".py") or (
            kind == "mount" and not colon and target.endswith(".wsgi")
            and (os.path.exists(target) or not _is_module_name(target)))
    module = (_exec_file(option, value, target) if is_file
              else _import_module(option, value, target))
    return _get_callable(option, value, target, module, name)


def _is_module_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _trimmed_traceback(exc: BaseException) -> str:
    """The exception's traceback from the app's first frame (our frames and importlib's
    bootstrap are noise to the tenant)."""
    tb = exc.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen ")):
        tb = tb.tb_next
    return format_traceback(exc, tb).rstrip()


def _code_error(option: str, value: str, what: str, exc: BaseException) -> AppLoadError:
    """An exception raised by the app's own code (at import time)."""
    tb = _trimmed_traceback(exc)
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}, line {exc.lineno}" if exc.filename else what
        return AppLoadError(option, value, f"syntax error in {where}: {exc.msg}",
                            "fix the app's code", tb)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return AppLoadError(option, value, f"{what} imports '{exc.name}', which is not "
                            "installed", f"install {exc.name.split('.')[0]} in the app's "
                            "virtualenv (virtualenv = DIR), or add its directory with "
                            "pythonpath = DIR", tb)
    return AppLoadError(option, value, f"{what} raised {type(exc).__name__}: {exc}",
                        "fix the app's code (its traceback is in the log)", tb)


def _exec_file(option: str, value: str, path: str):
    if not os.path.exists(path):
        hint = ("check the path" if os.path.isabs(path) else
                f"relative paths start from {os.getcwd()}: set chdir, or give an absolute "
                "path")
        raise AppLoadError(option, value, f"'{path}' does not exist", hint)
    if os.path.isdir(path):
        raise AppLoadError(option, value, f"'{path}' is a directory",
                           "point it at the app's .py file")
    if not os.access(path, os.R_OK):
        raise AppLoadError(option, value, f"'{path}' is not readable",
                           f"make it readable by uid {os.getuid()} (the workers' user)")
    name = "uwsgi_file_" + "".join(c if c.isalnum() else "_" for c in
                                   os.path.splitext(path)[0])
    path = os.path.abspath(path)
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise _code_error(option, value, f"'{path}'", exc) from None
    return module


def _import_module(option: str, value: str, name: str):
    if not _is_module_name(name):
        raise AppLoadError(option, value, f"'{name}' is not a module name",
                           "write package.module or package.module:callable, or a path to "
                           "a .py file")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise AppLoadError(option, value, f"no module named '{exc.name}' on the Python "
                               "path", f"add its directory with pythonpath = DIR, or chdir "
                               f"to it (the current directory is {os.getcwd()})") from None
        raise _code_error(option, value, f"module '{name}'", exc) from None
    except (Exception, SystemExit) as exc:
        raise _code_error(option, value, f"module '{name}'", exc) from None


def _get_callable(option: str, value: str, where: str, module, name: str) -> Callable:
    obj = getattr(module, name, _MISSING)
    if obj is _MISSING:
        others = [n for n in ("app", "application", "api", "wsgi_app", "server")
                  if n != name and callable(getattr(module, n, None))]
        hint = (f"set callable = {others[0]}" if others
                else f"define '{name}' in it, or set callable = NAME")
        raise AppLoadError(option, value, f"'{where}' has no callable named '{name}'", hint)
    if not callable(obj):
        raise AppLoadError(option, value, f"'{name}' in '{where}' is a {type(obj).__name__}, "
                           "not a callable", "point callable at the WSGI application")
    return obj
