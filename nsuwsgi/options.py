"""THE option table: one record per option, and the one step that turns raw entries into a Config.

uWSGI keeps its options in a C struct soup where each subsystem re-parses strings later. Here
every value is typed once, when it is read, by the parser named in its record; cross-option
rules run in one `validate` step that reports every problem at once; the resulting Config is
immutable. `--help`, `--show-config` and docs/options.md are all generated from this table.

An option has one of three statuses:
  supported    nsuwsgi implements it;
  ignored      a uWSGI option nsuwsgi does not implement and that is safe to skip: it is named
               in one warning so existing uWSGI files still load;
  refused      a uWSGI option whose silent absence would be unsafe or misleading (isolation,
               the Emperor, legions); using it is an error until nsuwsgi implements it.
Anything else is unknown, and an error with a did-you-mean.
"""

from __future__ import annotations

import grp
import marshal
import os
import pwd
import signal
from collections.abc import Callable

from nsuwsgi import linux, spec
from nsuwsgi.records import Frozen, set_field
from nsuwsgi.server import sockets
from nsuwsgi.errors import (ConfigErrors, Origin, UserError, ValueProblem,
                            did_you_mean)
from nsuwsgi.uwsgi_names import UWSGI_OPTION_NAMES

SUPPORTED = "supported"
IGNORED = "ignored"
REFUSED = "refused"
JAIL_STATUS = SUPPORTED     # flip to REFUSED to disable the isolation options
SERVER_STATUS = SUPPORTED   # flip to IGNORED to disable the prefork server


# --------------------------------------------------------------------------- value parsers

TRUE_WORDS = {"", "1", "true", "yes", "on", "y"}
FALSE_WORDS = {"0", "false", "no", "off", "n"}


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueProblem(f"'{text}' is not a boolean", "use true or false")


def parse_int(text: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise ValueProblem(f"'{text}' is not a whole number", "write digits only, e.g. 3") from None
    if value < 0:
        raise ValueProblem(f"{value} is negative", "use 0 or a positive number")
    return value


def parse_str(text: str) -> str:
    if text == "":
        raise ValueProblem("needs a value", "write option = value")
    return text


def parse_signal(text: str) -> int:
    """A signal by number (uWSGI's form, `3`) or by name (`SIGQUIT`, `quit`)."""
    word = text.strip()
    if word.isdigit():
        number = int(word)
        if 1 <= number < signal.NSIG:
            return number
        raise ValueProblem(f"{number} is not a signal number", "use 1-64 or a name like SIGTERM")
    name = word.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        names = [s.name for s in signal.Signals]
        raise ValueProblem(f"'{text}' is not a signal",
                           did_you_mean(name, names) or "use a number or a name like SIGTERM") from None


def parse_user(text: str) -> int:
    """A user name or a uid; names are resolved now, so a typo is reported at load time."""
    word = parse_str(text).strip()
    if word.isdigit():
        return int(word)
    try:
        return pwd.getpwnam(word).pw_uid
    except KeyError:
        raise ValueProblem(f"user '{word}' does not exist",
                           "create the user or give a numeric uid") from None


def parse_group(text: str) -> int:
    word = parse_str(text).strip()
    if word.isdigit():
        return int(word)
    try:
        return grp.getgrnam(word).gr_gid
    except KeyError:
        raise ValueProblem(f"group '{word}' does not exist",
                           "create the group or give a numeric gid") from None


def parse_umask(text: str) -> int:
    try:
        value = int(parse_str(text).strip(), 8)
    except ValueError:
        raise ValueProblem(f"'{text}' is not an octal umask", "write e.g. umask = 022") from None
    if not 0 <= value <= 0o777:
        raise ValueProblem(f"'{text}' is out of range", "use 000 to 777")
    return value


def parse_env(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueProblem(f"'{text}' is not NAME=value", "write env = NAME=value")
    name, value = text.split("=", 1)
    if not name:
        raise ValueProblem("the variable name is empty", "write env = NAME=value")
    return name, value


def parse_plugins(text: str) -> tuple[str, ...]:
    """`plugins = python3,0:cgi`: python is built in; the modifier prefix `N:` is dropped."""
    names = []
    for item in text.replace(" ", ",").split(","):
        item = item.strip()
        if not item:
            continue
        if ":" in item:
            item = item.split(":", 1)[1]
        names.append(item)
    return tuple(names)


# ---- the isolation layer

UNSHARE_FLAGS = ("pid", "mount", "mnt", "ns", "fs", "uts", "ipc", "net", "user", "cgroup",
                 "sysvsem", "files")


def parse_presence(text: str) -> bool:
    """uWSGI's presence options (namespace-net): any value, even empty, turns them on."""
    return True


def parse_namespace(text: str) -> tuple[str, str | None]:
    """`ROOTFS[:HOSTNAME]`, split at the first colon as uWSGI does."""
    rootfs, _, hostname = parse_str(text).partition(":")
    if not rootfs.startswith("/"):
        raise ValueProblem(f"rootfs '{rootfs}' is not an absolute path",
                           "write namespace = /path/to/rootfs[:hostname]")
    if len(hostname.encode()) > 64:
        raise ValueProblem(f"hostname '{hostname}' is longer than 64 bytes", "shorten it")
    return rootfs, hostname or None


def parse_keep_mount(text: str) -> spec.KeepMount:
    parts = parse_str(text).split(":")
    readonly = len(parts) > 1 and parts[-1] == "ro"
    if readonly:
        parts.pop()
    if len(parts) > 2 or not all(part.startswith("/") for part in parts):
        raise ValueProblem(f"'{text}' is not SRC[:DST][:ro] with absolute paths",
                           "write namespace-keep-mount = /usr:/usr:ro")
    source = parts[0]
    return spec.KeepMount(source, parts[1] if len(parts) == 2 else "", readonly)


def parse_veth(text: str) -> spec.VethSpec:
    """`bridge=BR,address=10.200.0.2/24[,gateway=10.200.0.1][,name=eth0]`."""
    fields = {}
    for key, value in split_keyvals(text):
        if key not in ("bridge", "address", "gateway", "name"):
            raise ValueProblem(f"unknown key '{key}'",
                               did_you_mean(key, ("bridge", "address", "gateway", "name")) or
                               "keys: bridge, address, gateway, name")
        fields[key] = value or ""
    for needed in ("bridge", "address"):
        if not fields.get(needed):
            raise ValueProblem(f"missing {needed}=",
                               "write bridge=br0,address=10.200.0.2/24,gateway=10.200.0.1")
    try:
        import ipaddress
        ipaddress.ip_interface(fields["address"])
        if fields.get("gateway"):
            ipaddress.ip_address(fields["gateway"])
    except ValueError as err:
        raise ValueProblem(str(err), "address is CIDR (10.200.0.2/24), gateway an IP") from None
    if len(fields.get("name", "eth0")) > 15:
        raise ValueProblem("interface names have at most 15 characters", "name=eth0")
    return spec.VethSpec(**fields)


def parse_unshare(text: str) -> int:
    flags = 0
    for name in parse_str(text).replace(" ", ",").split(","):
        if not name:
            continue
        if name not in linux.UNSHARE_NAMES:
            raise ValueProblem(f"unknown namespace '{name}'",
                               did_you_mean(name, UNSHARE_FLAGS) or
                               "use " + ", ".join(UNSHARE_FLAGS))
        if name == "user":
            raise ValueProblem("user namespaces are not supported yet (no uid_map is written, "
                               "so nothing in the jail could work)", "remove 'user'")
        flags |= linux.UNSHARE_NAMES[name]
    return flags


def parse_pivot_root(text: str) -> tuple[str, str]:
    parts = parse_str(text).split()
    if len(parts) != 2:
        raise ValueProblem(f"'{text}' is not NEW_ROOT PUT_OLD",
                           "write pivot_root = /ns /ns/.old_root")
    new_root, put_old = parts
    if not (put_old + "/").startswith(new_root.rstrip("/") + "/"):
        raise ValueProblem(f"PUT_OLD '{put_old}' is not under NEW_ROOT '{new_root}'",
                           f"put it inside, e.g. {new_root.rstrip('/')}/.old_root")
    return new_root, put_old


def parse_caps(text: str) -> frozenset[int]:
    caps = set()
    for name in parse_str(text).replace(" ", ",").split(","):
        if not name:
            continue
        number = linux.capability_number(name)
        if number is None:
            raise ValueProblem(f"unknown capability '{name}'",
                               "use names like net_bind_service,setuid (see capabilities(7))")
        caps.add(number)
    return frozenset(caps)


# ---- the attach-daemon family

def split_pidfile_command(text: str, option: str) -> tuple[str, int | None, str]:
    """`<pidfile>[,<freq>] <command>`, as smart-attach-daemon takes it."""
    text = text.strip()
    if " " not in text:
        raise ValueProblem(f"'{text}' has no command after the pidfile",
                           f"write {option} = /path/to/daemon.pid command args")
    head, command = text.split(" ", 1)
    freq = None
    if head.startswith(","):
        raise ValueProblem(f"'{text}' has no pidfile before the frequency",
                           f"write {option} = /path/to/daemon.pid,5 command args")
    if "," in head:
        head, freq_text = head.split(",", 1)
        freq = parse_int(freq_text)
    command = command.strip()
    if not command:
        raise ValueProblem("the command is empty", f"write {option} = /path/to/daemon.pid command")
    return head, freq, command


def parse_attach_daemon(text: str) -> spec.DaemonDecl:
    return spec.DaemonDecl(command=parse_str(text.strip()), mode=spec.DUMB, option="attach-daemon")


def parse_attach_control_daemon(text: str) -> spec.DaemonDecl:
    return spec.DaemonDecl(command=parse_str(text.strip()), mode=spec.DUMB, control=True,
                           option="attach-control-daemon")


def parse_smart_attach_daemon(text: str) -> spec.DaemonDecl:
    pidfile, freq, command = split_pidfile_command(text, "smart-attach-daemon")
    return spec.DaemonDecl(command=command, mode=spec.SMART, pidfile=pidfile,
                           freq=10 if freq is None else freq, option="smart-attach-daemon")


def parse_smart_attach_daemon2(text: str) -> spec.DaemonDecl:
    pidfile, freq, command = split_pidfile_command(text, "smart-attach-daemon2")
    return spec.DaemonDecl(command=command, mode=spec.SMART2, pidfile=pidfile,
                           freq=10 if freq is None else freq, option="smart-attach-daemon2")


def split_keyvals(text: str) -> list[tuple[str, str | None]]:
    """uWSGI's key=value list: `,` separates items, `\\` escapes the next character."""
    items: list[tuple[str, str | None]] = []
    key: list[str] = []
    value: list[str] | None = None
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            (key if value is None else value).append(nxt)
        elif ch == "," :
            items.append(("".join(key).strip(), None if value is None else "".join(value)))
            key, value = [], None
        elif ch == "=" and value is None:
            value = []
        else:
            (key if value is None else value).append(ch)
    items.append(("".join(key).strip(), None if value is None else "".join(value)))
    return [(k, v) for k, v in items if k or v]


def join_keyvals(items: list[tuple[str, str | None]]) -> str:
    """The text split_keyvals reads back as `items`."""
    def escaped(text: str) -> str:
        return text.replace("\\", "\\\\").replace(",", "\\,")
    return ",".join(escaped(k) if v is None else f"{escaped(k)}={escaped(v)}" for k, v in items)


DAEMON2_KEYS = {
    "command": "command", "cmd": "command", "exec": "command",
    "freq": "freq", "pidfile": "pidfile", "control": "control",
    "daemonize": "daemonize", "daemon": "daemonize", "touch": "touch",
    "stopsignal": "stop_signal", "stop_signal": "stop_signal",
    "reloadsignal": "reload_signal", "reload_signal": "reload_signal",
    "stdin": "stdin", "uid": "uid", "gid": "gid", "ns_pid": "ns_pid", "chdir": "chdir",
    "max_throttle": "max_throttle", "notifypid": "notify_pid",
}
DAEMON2_BOOLS = {"control", "daemonize", "stdin", "ns_pid", "notify_pid"}


def parse_touch_list(text: str) -> tuple[str, ...]:
    paths = []
    for item in text.split(";"):
        item = item.strip().strip('"').strip("'")
        if item:
            paths.append(item)
    return tuple(paths)


def parse_attach_daemon2(text: str) -> spec.DaemonDecl:
    """attach-daemon2: every key uWSGI knows, with real booleans and signal names.

    Unlike uWSGI, an unknown key or an item without `=` is an error, `control=0` means off, and
    uid/gid/signals accept names.
    """
    fields: dict[str, object] = {}
    for key, value in split_keyvals(text):
        canonical = DAEMON2_KEYS.get(key)
        if canonical is None:
            raise ValueProblem(f"unknown key '{key}'",
                               did_you_mean(key, DAEMON2_KEYS) or
                               "known keys: " + ", ".join(sorted(DAEMON2_KEYS)))
        if value is None:
            if canonical in DAEMON2_BOOLS:
                value = "1"
            else:
                raise ValueProblem(f"key '{key}' needs a value", f"write {key}=VALUE")
        try:
            fields[canonical] = parse_daemon2_value(canonical, value)
        except ValueProblem as problem:
            raise ValueProblem(f"key '{key}': {problem.message}", problem.hint) from None
    if not fields.get("command"):
        raise ValueProblem("no command given", "add cmd=/path/to/program")
    daemonize = fields.pop("daemonize", False)
    if daemonize and not fields.get("pidfile"):
        raise ValueProblem("daemonize needs a pidfile", "add pidfile=/run/NAME.pid")
    mode = spec.SMART2 if daemonize else spec.SMART if fields.get("pidfile") else spec.DUMB
    return spec.DaemonDecl(mode=mode, option="attach-daemon2", **fields)


def parse_daemon2_value(key: str, value: str) -> object:
    if key in DAEMON2_BOOLS:
        return parse_bool(value)
    if key in ("freq", "max_throttle"):
        return parse_int(value)
    if key == "reload_signal":
        return 0 if value.strip() == "0" else parse_signal(value)
    if key == "stop_signal":
        return parse_signal(value)
    if key == "uid":
        return parse_user(value)
    if key == "gid":
        return parse_group(value)
    if key == "touch":
        return parse_touch_list(value)
    return parse_str(value)


# --------------------------------------------------------------------------- the table

class Option(Frozen):
    """One option's record (a records.Frozen class: the table is built at every start)."""

    __slots__ = ("name", "parse", "help", "default", "repeatable", "aliases", "group",
                 "status", "metavar")

    def __init__(self, name: str, parse: Callable[[str], object], help: str,
                 default: object = None, repeatable: bool = False, aliases: tuple[str, ...] = (),
                 group: str = "instance", status: str = SUPPORTED, metavar: str = "VALUE"):
        set_field(self, "name", name)
        set_field(self, "parse", parse)
        set_field(self, "help", help)
        set_field(self, "default", default)
        set_field(self, "repeatable", repeatable)
        set_field(self, "aliases", aliases)
        set_field(self, "group", group)
        set_field(self, "status", status)
        set_field(self, "metavar", metavar)

    @property
    def is_flag(self) -> bool:
        return self.parse is parse_bool


def flag(name, help, **kw):
    return Option(name, parse_bool, help, default=False, metavar="", **kw)


def daemon_option(name, parser, help, metavar):
    return Option(name, parser, help, default=(), repeatable=True, group="daemons",
                  metavar=metavar)


def server_option(name, parser, help, metavar, **kw):
    if parser is parse_bool:
        kw.setdefault("default", False)
    return Option(name, parser, help, group="server", status=SERVER_STATUS, metavar=metavar,
                  **kw)


def refused(name, why, group, aliases=()):
    return Option(name, parse_str, why, status=REFUSED, group=group, aliases=aliases,
                  repeatable=True)


TABLE: tuple[Option, ...] = (
    # ---- configuration sources (handled by the loaders; listed so help and docs show them)
    Option("ini", parse_str, "Load an ini file; FILE:SECTION selects a section (default [uwsgi]).",
           repeatable=True, group="config", metavar="FILE[:SECTION]"),
    Option("json", parse_str, "Load a JSON file (object `uwsgi`, or FILE:SECTION).",
           repeatable=True, group="config", aliases=("js",), metavar="FILE[:SECTION]"),
    Option("yaml", parse_str, "Load a YAML file (mapping `uwsgi`, or FILE:SECTION).",
           repeatable=True, group="config", aliases=("yml",), metavar="FILE[:SECTION]"),
    Option("include", parse_str, "Load another config file here, choosing the loader by suffix.",
           repeatable=True, group="config", metavar="FILE"),
    Option("inherit", parse_str, "Like include, applied after the file that names it.",
           repeatable=True, group="config", metavar="FILE"),
    Option("set", parse_str, "Set an option or placeholder: set = NAME=VALUE.",
           repeatable=True, group="config", metavar="NAME=VALUE"),
    Option("set-placeholder", parse_str, "Define a placeholder for %(NAME): NAME=VALUE.",
           repeatable=True, group="config", aliases=("set-ph",), metavar="NAME=VALUE"),
    flag("strict", "Accepted for uWSGI compatibility: nsuwsgi is always strict about unknown "
         "options.", group="config"),
    Option("plugins", parse_plugins, "Accepted for compatibility: python, python3 and cgi are "
           "built in; `0:cgi` style modifiers are understood.", default=(), repeatable=True,
           group="config", aliases=("plugin",), metavar="LIST"),
    flag("show-config", "Print the effective configuration and exit.", group="config"),

    # ---- the instance
    flag("master", "Run the master process (implied by every daemon option)."),
    Option("pidfile", parse_str, "Write the master's pid here at startup (before dropping "
           "privileges).", metavar="PATH"),
    Option("logto", parse_str, "Append the log to this file instead of stderr.", metavar="PATH"),
    Option("daemonize", parse_str, "Detach from the terminal and log to this file. Discouraged: "
           "let systemd supervise nsuwsgi instead.", metavar="LOGFILE"),
    Option("uid", parse_user, "Run the instance as this user (name or number) after setup.",
           metavar="USER"),
    Option("gid", parse_group, "Run the instance as this group (name or number) after setup.",
           metavar="GROUP"),
    flag("no-initgroups", "With uid, do not load the user's supplementary groups."),
    Option("chdir", parse_str, "Change to this directory before starting daemons.",
           metavar="DIR"),
    Option("env", parse_env, "Set an environment variable for the instance and its children.",
           default=(), repeatable=True, metavar="NAME=VALUE"),
    Option("umask", parse_umask, "Set the process umask (octal).",
           metavar="OCTAL"),
    flag("die-on-term", "Accepted for uWSGI compatibility. In nsuwsgi SIGTERM always means a "
         "graceful shutdown, which is what die-on-term asks for."),
    Option("reload-mercy", parse_int, "Seconds a stopping daemon gets after its stop signal "
           "before SIGKILL.", default=3, metavar="SECONDS"),
    Option("stats", parse_str, "Serve JSON stats on a TCP address (HOST:PORT) or unix socket "
           "path.", aliases=("stats-server",), metavar="ADDRESS"),
    flag("vacuum", "Remove the pidfile and the stats unix socket at exit."),

    # ---- the prefork WSGI server
    server_option("socket", sockets.parse_socket, "Listen here, speaking the uwsgi protocol "
                  "(or `protocol`): HOST:PORT, :PORT, /unix/path or @abstract.", "ADDRESS",
                  default=(), repeatable=True, aliases=("uwsgi-socket",)),
    server_option("http-socket", sockets.parse_http_socket, "Listen here, speaking HTTP/1.1.",
                  "ADDRESS", default=(), repeatable=True),
    server_option("shared-socket", sockets.parse_shared_socket, "Bind this address first, "
                  "as root and outside any jail; `socket`/`http-socket = =N` then serve on "
                  "the N-th shared socket (from 0), e.g. a port below 1024 served by workers "
                  "that run as nobody. One that no option refers to is only kept open.",
                  "ADDRESS", default=(), repeatable=True),
    server_option("protocol", sockets.parse_protocol, "The protocol of `socket` entries and "
                  "of sockets passed by systemd: uwsgi (default) or http.", "NAME",
                  aliases=("socket-protocol",)),
    server_option("listen", parse_int, "The listen queue (backlog) of each socket.", "N",
                  default=100),
    server_option("chmod-socket", sockets.parse_chmod, "Mode of unix sockets (bare: 666).",
                  "[MODE]"),
    server_option("chown-socket", sockets.parse_chown, "Owner of unix sockets.",
                  "USER[:GROUP]"),
    server_option("processes", parse_int, "How many worker processes.", "N", default=1,
                  aliases=("workers",)),
    server_option("lazy-apps", parse_bool, "Load the app in each worker (nsuwsgi always "
                  "does: a reload then needs no re-exec).", ""),
    server_option("max-requests", parse_int, "Recycle a worker after N requests (0: never).",
                  "N", default=0),
    server_option("harakiri", parse_int, "Kill and replace a worker whose request runs "
                  "longer than N seconds (0: never).", "SECONDS", default=0),
    server_option("worker-reload-mercy", parse_int, "Seconds a stopping worker gets to finish "
                  "before SIGKILL.", "SECONDS", default=60),
    server_option("buffer-size", parse_int, "Largest request head (request line and headers) "
                  "in bytes.", "BYTES", default=4096),
    server_option("disable-logging", parse_bool, "Do not log each request.", ""),
    server_option("wsgi-file", parse_str, "Load the WSGI app from this file.", "FILE",
                  aliases=("file",)),
    server_option("module", parse_str, "Load the WSGI app from this module "
                  "(pkg.mod or pkg.mod:callable).", "MODULE", aliases=("wsgi",)),
    server_option("callable", parse_str, "The app's name in the file or module.", "NAME",
                  default="application"),
    server_option("mount", parse_str, "Mount an app at a prefix: /prefix=app.py or "
                  "/prefix=module:callable.", "PREFIX=APP", default=(), repeatable=True),
    server_option("manage-script-name", parse_bool, "Set SCRIPT_NAME/PATH_INFO from the "
                  "mountpoints.", ""),
    server_option("pythonpath", parse_str, "Prepend a directory to sys.path.", "DIR",
                  default=(), repeatable=True, aliases=("python-path", "pp")),
    server_option("virtualenv", parse_str, "Use this virtualenv's packages.", "DIR",
                  aliases=("venv", "home", "pyhome")),

    server_option("no-default-app", parse_bool, "Answer 404 where no mountpoint matches, "
                  "instead of using the first app.", ""),
    server_option("cheap", parse_bool, "Start no worker until the first connection.", ""),
    server_option("idle", parse_int, "After N seconds without a request, stop the workers "
                  "and go back to cheap mode (0: never).", "SECONDS", default=0),
    server_option("die-on-idle", parse_bool, "Exit instead of going cheap when idle.", ""),
    server_option("touch-reload", parse_str, "Gracefully reload the workers when this file "
                  "changes (repeatable).", "FILE", default=(), repeatable=True),
    server_option("reload-on-rss", parse_int, "Recycle a worker whose RSS exceeds N MB "
                  "(0: never).", "MB", default=0),
    server_option("cgi", parse_str, "Run CGI programs: a script, a directory, or "
                  "MOUNTPOINT=DIR (repeatable).", "[MOUNTPOINT=]PATH", default=(),
                  repeatable=True),
    server_option("cgi-allowed-ext", parse_str, "Only run CGI files with this extension "
                  "(repeatable).", ".EXT", default=(), repeatable=True),
    server_option("cgi-helper", parse_str, "Run files with this extension through a "
                  "program: .php=php-cgi (repeatable).", ".EXT=PROGRAM", default=(),
                  repeatable=True),
    server_option("cgi-timeout", parse_int, "Seconds a CGI program may run.", "SECONDS",
                  default=60),
    server_option("static-map", parse_str, "Serve files from DIR for URLs under PREFIX "
                  "(repeatable).", "PREFIX=DIR", default=(), repeatable=True),

    # ---- external daemons
    daemon_option("attach-daemon", parse_attach_daemon,
                  "Run COMMAND in the foreground; respawn it when it exits; stop it with the "
                  "master.", "COMMAND"),
    daemon_option("attach-control-daemon", parse_attach_control_daemon,
                  "Like attach-daemon, but its death shuts the instance down.", "COMMAND"),
    daemon_option("smart-attach-daemon", parse_smart_attach_daemon,
                  "COMMAND daemonizes itself and writes PIDFILE; the daemon survives the master "
                  "and the next master adopts it.", "PIDFILE[,FREQ] COMMAND"),
    daemon_option("smart-attach-daemon2", parse_smart_attach_daemon2,
                  "Like smart-attach-daemon, but nsuwsgi daemonizes COMMAND and writes "
                  "PIDFILE for it.", "PIDFILE[,FREQ] COMMAND"),
    daemon_option("attach-daemon2", parse_attach_daemon2,
                  "A daemon described by keys: cmd, pidfile, freq, control, daemonize, touch, "
                  "stopsignal, reloadsignal, stdin, uid, gid, ns_pid, chdir, max_throttle, "
                  "notifypid.", "KEY=VALUE,..."),
    flag("daemons-honour-stdin", "Daemons keep the master's stdin instead of /dev/null.",
         group="daemons"),

    # ---- recognised, but not yet implemented, and unsafe to ignore
    Option("namespace", parse_namespace, "Run the instance in new PID, mount, UTS and IPC "
           "namespaces with ROOTFS as its / (pivot_root), a fresh /proc, and HOSTNAME.",
           group="jail", aliases=("ns",), status=JAIL_STATUS, metavar="ROOTFS[:HOSTNAME]"),
    Option("namespace-keep-mount", parse_keep_mount, "Bind a host path into the namespace; "
           "DST defaults to SRC; a final :ro makes it read-only.", default=(), repeatable=True,
           group="jail", status=JAIL_STATUS, metavar="SRC[:DST][:ro]"),
    Option("namespace-net", parse_presence, "Give the namespace its own network namespace "
           "(only `lo`, which nsuwsgi brings up). Any value turns it on, as in uWSGI.",
           group="jail", aliases=("ns-net",), status=JAIL_STATUS, metavar="ANYTHING"),
    Option("namespace-net-veth", parse_veth, "Give a namespace-net jail a veth pair into an "
           "existing host bridge, with this address (nsuwsgi's own option).", group="jail",
           status=JAIL_STATUS, metavar="bridge=BR,address=CIDR[,gateway=IP][,name=eth0]"),
    Option("unshare", parse_unshare, "unshare() these namespaces before the other jail steps: "
           "a comma list of " + ", ".join(UNSHARE_FLAGS) + ".", group="jail", status=JAIL_STATUS, metavar="LIST"),
    Option("unshare2", parse_unshare, "unshare() these namespaces after chroot/pivot_root.",
           group="jail", status=JAIL_STATUS, metavar="LIST"),
    Option("pivot_root", parse_pivot_root, "pivot_root into NEW_ROOT, keeping the old root at "
           "PUT_OLD (unmount it with a hook).", group="jail", aliases=("pivot-root",),
           status=JAIL_STATUS, metavar="NEW_ROOT PUT_OLD"),
    Option("chroot", parse_str, "chroot into DIR (and chdir to its /).", group="jail",
           status=JAIL_STATUS, metavar="DIR"),
    Option("cap", parse_caps, "Capabilities to keep (names like net_bind_service, or numbers); "
           "everything else is dropped, bounding set included.", group="jail", status=JAIL_STATUS, metavar="LIST"),
    refused("setns", "Join the namespaces offered on a setns socket.", "jail"),
    # ---- the Emperor (docs/emperor.md)
    Option("emperor", parse_str, "Govern the vassal configs (.ini, .json, .yaml, .yml) in this "
           "directory, or matching this glob.", default=(), repeatable=True, group="emperor",
           metavar="DIR|GLOB"),
    Option("emperor-freq", parse_int, "Seconds between safety rescans (uWSGI: 3; changes are "
           "seen at once through inotify; this only backs it up).", default=10,
           group="emperor", metavar="SECONDS"),
    Option("emperor-throttle", parse_int, "First retry delay of a failing vassal, in ms; it "
           "doubles per failure in a row.", default=1000, group="emperor", metavar="MS"),
    Option("emperor-max-throttle", parse_int, "Cap of a failing vassal's retry delay, in ms.",
           default=180000, group="emperor", metavar="MS"),
    Option("emperor-required-heartbeat", parse_int, "A vassal that stops sending its "
           "heartbeat for this many seconds is killed and respawned (0: never).", default=30,
           group="emperor", metavar="SECONDS"),
    Option("emperor-pidfile", parse_str, "Write the Emperor's pid here.", group="emperor",
           metavar="FILE"),
    Option("emperor-stats", parse_str, "Serve the vassal table as JSON here (host:port or a "
           "unix socket path).", aliases=("emperor-stats-server",), group="emperor",
           metavar="ADDRESS"),
    flag("emperor-tyrant", "Run each vassal as the owner (uid and gid) of its config file.",
         group="emperor"),
    flag("emperor-tyrant-allow-root", "In tyrant mode, also run vassals whose file is owned "
         "by root (as root). Refused by default.", group="emperor"),
    Option("emperor-use-clone", parse_unshare, "Spawn each vassal in these new namespaces "
           "(unshare names: pid, mount, uts, ipc, net...).", group="emperor",
           status=JAIL_STATUS, metavar="LIST"),
    Option("emperor-wrapper", parse_str, "The command that runs a vassal (default: this "
           "nsuwsgi).", aliases=("binary-path",), group="emperor", metavar="COMMAND"),
    Option("emperor-fork-server", parse_bool, "Fork vassals from a pre-imported nsuwsgi "
           "process instead of starting a new interpreter for each (not with emperor-wrapper "
           "or emperor-use-clone); `emperor-fork-server = false` turns it off.", default=True,
           group="emperor", metavar=""),
    Option("emperor-on-demand-directory", parse_str, "On-demand vassals: bind DIR/NAME.socket "
           "and start vassal NAME.ini on its first connection.",
           aliases=("emperor-on-demand-dir",), group="emperor", metavar="DIR"),
    Option("emperor-on-demand-extension", parse_str, "On-demand vassals: the file NAME.ini"
           "EXT holds the socket to bind for vassal NAME.ini.",
           aliases=("emperor-on-demand-ext",), group="emperor", metavar="EXT"),
    Option("vassals-include", parse_str, "Include this config after each vassal's own (the "
           "template overrides it).", default=(), repeatable=True, group="emperor",
           metavar="FILE"),
    Option("vassals-include-before", parse_str, "Include this config before each vassal's own "
           "(the vassal overrides it).", default=(), repeatable=True, group="emperor",
           metavar="FILE"),
    Option("vassals-inherit", parse_str, "Each vassal inherits this config (the template "
           "overrides it, as in uWSGI).", default=(), repeatable=True, group="emperor",
           metavar="FILE"),
    Option("vassals-inherit-before", parse_str, "Like vassals-inherit, placed before the "
           "vassal's file.", default=(), repeatable=True, group="emperor", metavar="FILE"),
    Option("vassal-set", parse_str, "Set a placeholder for every vassal (`--set k=v`, before "
           "its file: the vassal may override it).", default=(), repeatable=True,
           aliases=("vassals-set",), group="emperor", metavar="KEY=VALUE"),
    Option("emperor-graceful-shutdown", parse_bool, "Accepted: vassals are always stopped "
           "gracefully (SIGTERM, then SIGKILL after reload-mercy).", default=False,
           group="emperor", status=IGNORED, metavar=""),
    Option("heartbeat", parse_int, "Accepted: a vassal always sends its heartbeat (every "
           "half of the Emperor's emperor-required-heartbeat).", group="emperor",
           status=IGNORED, metavar="SECONDS"),
    refused("legion", "Join a legion.", "legion"),
    refused("legion-attach-daemon", "Run a daemon on the legion Lord only.", "legion"),
    refused("legion-smart-attach-daemon", "Smart daemon on the legion Lord only.", "legion"),
    refused("legion-smart-attach-daemon2", "Smart2 daemon on the legion Lord only.", "legion"),
)


def hook_option(name: str, phase: str, family: str) -> Option:
    def parse(text: str):
        from nsuwsgi.jail import hooks          # only configs with hooks pay for it
        if family == "hook":
            return hooks.parse_hook(text, phase)
        return hooks.legacy_hook(family, text, phase)
    syntax = "ACTION:ARG" if family == "hook" else {"exec": "COMMAND", "mount": "FSTYPE SRC DST "
                                                    "[FLAGS]", "umount": "TARGET [FLAGS]"}[family]
    return Option(name, parse, f"{family} actions in the {phase} phase ({PHASE_WHEN[phase]}).",
                  default=(), repeatable=True, group="hooks", status=JAIL_STATUS,
                  metavar=syntax)


PHASE_WHEN = {
    "asap": "first thing, right after the config is read",
    "pre-jail": "outside, before the jail is built",
    "post-jail": "outside, once the jail is running; UWSGI_JAIL_PID is set",
    "in-jail": "inside the jail, as root, after its mounts and hostname",
    "as-root": "inside, just before dropping privileges",
    "as-user": "inside, after dropping privileges",
    "master-start": "in the master, just before its loop",
}

for _phase in PHASE_WHEN:
    for _family in ("hook", "exec", "mount", "umount"):
        _name = f"{_family}-{_phase}"
        if _family == "hook" or _name in UWSGI_OPTION_NAMES:
            TABLE += (hook_option(_name, _phase, _family),)

BY_NAME: dict[str, Option] = {}
for _opt in TABLE:
    for _n in (_opt.name, *_opt.aliases):
        assert _n not in BY_NAME, _n
        BY_NAME[_n] = _opt

# Immediate options are consumed by the loaders, never by the master.
LOADER_OPTIONS = {"ini", "json", "yaml", "include", "inherit", "set", "set-placeholder"}


def lookup(name: str) -> Option | None:
    """The record for a name or alias, or None."""
    return BY_NAME.get(name)


def is_known_uwsgi(name: str) -> bool:
    return name in UWSGI_OPTION_NAMES


# uWSGI options whose silent absence would be unsafe or would change what a file means:
# isolation and privileges, hooks, the Emperor, legions, config logic and other loaders.
REFUSED_PREFIXES = ("namespace-", "ns-", "jail", "cgroup",
                    "setns", "refork", "hook-", "exec-", "mount-", "umount-", "call-",
                    "emperor", "vassal", "early-emperor", "legion", "if-", "for-",
                    "immediate-", "add-gid", "drop-after", "master-as-root",
                    "privileged-binary", "unprivileged-binary")
REFUSED_NAMES = {"for", "endif", "end-if", "endfor", "end-for", "end", "xml",
                 "sqlite3", "ldap", "config", "jailed"}


def is_refused_uwsgi(name: str) -> bool:
    return name in REFUSED_NAMES or name.startswith(REFUSED_PREFIXES)


def suggest(name: str) -> str | None:
    return did_you_mean(name, BY_NAME)


# --------------------------------------------------------------------------- the Config

class Setting(Frozen):
    """One typed value of an option, and where it came from."""

    __slots__ = ("value", "origin", "seq", "raw")

    def __init__(self, value: object, origin: Origin, seq: int = 0, raw: str = ""):
        set_field(self, "value", value)
        set_field(self, "origin", origin)
        set_field(self, "seq", seq)     # position among all entries: config order survives
        set_field(self, "raw", raw)     # the text as written, for --show-config


class Config(Frozen):
    """Typed, validated, immutable. Keys are canonical option names."""

    __slots__ = ("settings", "placeholders", "ignored", "files")

    def __init__(self, settings: dict[str, tuple[Setting, ...]],
                 placeholders: dict[str, str] | None = None,
                 ignored: tuple[tuple[str, Origin], ...] = (), files: tuple[str, ...] = ()):
        set_field(self, "settings", settings)
        set_field(self, "placeholders", {} if placeholders is None else placeholders)
        set_field(self, "ignored", ignored)
        set_field(self, "files", files)

    def __getitem__(self, name: str) -> object:
        opt = BY_NAME[name]
        items = self.settings.get(opt.name, ())
        if opt.repeatable:
            return tuple(s.value for s in items) if items else (opt.default or ())
        return items[-1].value if items else opt.default

    def items(self, name: str) -> tuple[Setting, ...]:
        return self.settings.get(BY_NAME[name].name, ())

    def origin(self, name: str) -> Origin | None:
        items = self.items(name)
        return items[-1].origin if items else None

    def is_set(self, name: str) -> bool:
        return bool(self.items(name))

    @property
    def daemons(self) -> tuple[spec.DaemonDecl, ...]:
        """Every daemon, in config order across all attach-daemon* options."""
        found = [s for opt in TABLE
                 if opt.group == "daemons" and opt.repeatable and opt.status == SUPPORTED
                 for s in self.settings.get(opt.name, ())]
        found.sort(key=lambda s: s.seq)
        return tuple(s.value for s in found)

    @property
    def hooks(self) -> tuple[hooks.Hook, ...]:
        """Every hook-*/exec-*/mount-*/umount-* entry, in config order."""
        found = [s for opt in TABLE if opt.group == "hooks"
                 for s in self.settings.get(opt.name, ())]
        found.sort(key=lambda s: s.seq)
        return tuple(s.value for s in found)


class Entry(Frozen):
    """One raw `key = value` from argv, the environment or a file, before typing."""

    __slots__ = ("key", "value", "origin")

    def __init__(self, key: str, value: str, origin: Origin):
        set_field(self, "key", key)
        set_field(self, "value", value)
        set_field(self, "origin", origin)


def build_config(entries: list[Entry], placeholders: dict[str, str] | None = None,
                 files: tuple[str, ...] = (), inside_jail: bool = False) -> Config:
    """Type every entry through its option's parser, then validate; report all problems."""
    errors: list[UserError] = []
    settings: dict[str, list[Setting]] = {}
    ignored: list[tuple[str, Origin]] = []
    for seq, entry in enumerate(entries):
        opt = lookup(entry.key)
        if opt is None:
            if is_known_uwsgi(entry.key) and is_refused_uwsgi(entry.key):
                errors.append(UserError(
                    "is a uWSGI option that this nsuwsgi release does not implement, and "
                    "ignoring it would be unsafe or change what the file means",
                    origin=entry.origin, option=entry.key,
                    hint="remove it, or use a release that implements it"))
                continue
            if is_known_uwsgi(entry.key):
                ignored.append((entry.key, entry.origin))
                continue
            errors.append(UserError(f"unknown option '{entry.key}'", origin=entry.origin,
                                    hint=suggest(entry.key) or "see nsuwsgi --help"))
            continue
        if opt.status == REFUSED:
            errors.append(UserError(
                "is a uWSGI option that this nsuwsgi release does not implement yet, and "
                "running without it would be unsafe", origin=entry.origin, option=entry.key,
                hint="remove it, or use a release that implements it"))
            continue
        if opt.status == IGNORED:
            ignored.append((entry.key, entry.origin))
            continue
        if opt.name in LOADER_OPTIONS:
            continue
        try:
            value = opt.parse(entry.value)
        except ValueProblem as problem:
            errors.append(UserError(problem.message, origin=entry.origin, option=entry.key,
                                    hint=problem.hint))
            continue
        if opt.group == "hooks" or isinstance(value, spec.DaemonDecl):
            value = _with_origin(value, entry.origin)
        settings.setdefault(opt.name, []).append(Setting(value, entry.origin, seq, entry.value))
    config = Config({k: tuple(v) for k, v in settings.items()}, dict(placeholders or {}),
                    tuple(ignored), files)
    errors.extend(validate(config, inside_jail))
    if errors:
        raise ConfigErrors(errors)
    return config


def _with_origin(value, origin: Origin):
    return value.replace(origin=origin)     # a DaemonDecl or a jail.hooks.Hook


def validate(config: Config, inside_jail: bool = False) -> list[UserError]:
    """Cross-option rules, all checked, all reported.

    Paths used inside a jail (daemon pidfiles, chdir...) are checked where they are seen:
    inside the jail, by the master, once it is there. The keeper checks the host side.
    """
    errors: list[UserError] = []
    jailed = jail_spec(config) is not None
    if not inside_jail:
        errors += host_path_errors(config)
        errors += jail_errors(config)
    if inside_jail or not jailed:
        errors += inside_path_errors(config)
    errors += daemon_errors(config)
    errors += id_errors(config)
    errors += emperor_errors(config)
    errors += shared_socket_errors(config)
    return errors


def shared_socket_errors(config: Config) -> list[UserError]:
    """Each `=N` names an existing shared-socket, and no two socket options share one."""
    errors = []
    count = len(config.items("shared-socket"))
    users: dict[int, str] = {}
    for option in ("socket", "http-socket"):
        for s in config.items(option):
            index = sockets.shared_index(s.value.address)
            if index is None:
                continue
            if index >= count:
                have = (f"only {count} shared-socket option(s) are set (=0 to ={count - 1})"
                        if count else "no shared-socket is set")
                errors.append(UserError(f"={index} refers to shared socket {index}, but {have}",
                                        origin=s.origin, option=option,
                                        hint=f"add shared-socket = ADDRESS lines until there "
                                             f"are {index + 1} (=N counts them from 0)"))
            elif index in users:
                errors.append(UserError(f"shared socket {index} is already served by "
                                        f"{users[index]}", origin=s.origin, option=option,
                                        hint="add another shared-socket for this one"))
            else:
                users[index] = f"{option} at {s.origin}"
    return errors


# What an Emperor process may do besides governing: identity and bookkeeping only. Apps,
# daemons and jails belong in vassals, where a failure costs one tenant, not all of them.
# (Loader options such as ini, include and set never reach the settings: no need to list them.)
# die-on-term changes nothing in nsuwsgi, but uWSGI Emperor configs and units often set it.
EMPEROR_COMPANIONS = {"uid", "gid", "umask", "chdir", "env", "logto", "daemonize", "pidfile",
                      "master", "vacuum", "reload-mercy", "strict", "show-config", "plugins",
                      "die-on-term"}


def emperor_errors(config: Config) -> list[UserError]:
    if not config["emperor"]:
        used = [n for n in config.settings if BY_NAME[n].group == "emperor"
                and BY_NAME[n].status == SUPPORTED]
        return [UserError("this option only applies to an Emperor", origin=config.origin(n),
                          option=n, hint="add emperor = DIR, or remove it") for n in used]
    errors = []
    for name in config.settings:
        opt = BY_NAME[name]
        if opt.group != "emperor" and opt.name not in EMPEROR_COMPANIONS:
            errors.append(UserError("an Emperor only governs vassals", origin=config.origin(name),
                                    option=name, hint="move it into a vassal's config file"))
    from nsuwsgi.emperor.monitor import parse_pattern
    for setting in config.items("emperor"):
        try:
            parse_pattern(setting.value)
        except ValueError as err:
            errors.append(UserError(str(err), origin=setting.origin, option="emperor",
                                    hint="give a directory or a glob, e.g. /etc/nsuwsgi/vassals"))
    directory = config["emperor-on-demand-directory"]
    if directory is not None and not os.path.isdir(directory):
        errors.append(UserError(f"directory '{directory}' does not exist",
                                origin=config.origin("emperor-on-demand-directory"),
                                option="emperor-on-demand-directory",
                                hint="create it (the Emperor binds NAME.socket files in it)"))
    if config["emperor-tyrant"] and os.geteuid() != 0:
        errors.append(UserError("tyrant mode needs an Emperor running as root",
                                origin=config.origin("emperor-tyrant"), option="emperor-tyrant",
                                hint="start the Emperor as root, or drop emperor-tyrant"))
    return errors


def need_dir(path: str, option: str, origin: Origin, what: str) -> list[UserError]:
    if path.endswith("/") or os.path.isdir(path):
        return [UserError(f"{what} '{path}' is a directory", origin=origin, option=option,
                          hint="name a file inside it")]
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return [UserError(f"the directory of {what} '{path}' does not exist", origin=origin,
                          option=option, hint=f"create {directory} first, or choose another path")]
    return []


def host_path_errors(config: Config) -> list[UserError]:
    """Files the master (or the keeper) opens before any jail exists."""
    errors = []
    for name in ("pidfile", "logto", "daemonize"):
        for s in config.items(name):
            errors += need_dir(s.value, name, s.origin, "the file")
    stats = config["stats"]
    if stats and "/" in stats:
        errors += need_dir(stats, "stats", config.origin("stats"), "the socket")
    return errors


def inside_path_errors(config: Config) -> list[UserError]:
    errors = []
    for decl in config.daemons:
        if decl.pidfile is not None:
            errors += need_dir(decl.pidfile, decl.option, decl.origin, "pidfile")
        for path in decl.touch:
            if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
                errors.append(UserError(f"the directory of touch file '{path}' does not exist",
                                        origin=decl.origin, option=decl.option,
                                        hint="create the directory; the file itself may be "
                                             "created later"))
        if decl.chdir is not None and not os.path.isdir(decl.chdir):
            errors.append(UserError(f"chdir directory '{decl.chdir}' does not exist",
                                    origin=decl.origin, option=decl.option,
                                    hint="create it or fix the path"))
    chdir = config["chdir"]
    if chdir is not None and not os.path.isdir(chdir):
        errors.append(UserError(f"directory '{chdir}' does not exist",
                                origin=config.origin("chdir"), option="chdir",
                                hint="create it or fix the path"))
    return errors


def daemon_errors(config: Config) -> list[UserError]:
    errors = []
    for decl in config.daemons:
        if decl.ns_pid and decl.mode != spec.DUMB:
            errors.append(UserError("ns_pid works for foreground daemons only: a daemon that "
                                    "daemonizes would be killed with its PID namespace",
                                    origin=decl.origin, option=decl.option,
                                    hint="remove ns_pid or the pidfile"))
        elif decl.ns_pid and os.geteuid() != 0:
            errors.append(UserError("ns_pid needs a master running as root",
                                    origin=decl.origin, option=decl.option,
                                    hint="run nsuwsgi as root, or remove ns_pid"))
    return errors


def jail_errors(config: Config) -> list[UserError]:
    """The rootfs and keep-mount sources exist, and we are root."""
    jail = jail_spec(config)
    if jail is None:
        return unjailed_errors(config)
    errors = keep_mount_errors(config)
    origin = jail.origin
    if os.geteuid() != 0:
        errors.append(UserError("namespaces, mounts and pivot_root need root", origin=origin,
                                option=_first_jail_option(config),
                                hint="run nsuwsgi as root (user namespaces are not supported "
                                     "yet)"))
    if jail.rootfs:
        option = "namespace"
        origin = config.origin("namespace")
        if not os.path.isdir(jail.rootfs):
            errors.append(UserError(f"rootfs '{jail.rootfs}' does not exist", origin=origin,
                                    option=option,
                                    hint=f"build one with: nsuwsgi rootfs {jail.rootfs}"))
        else:
            for needed in ("proc", "dev"):
                if jail.rootfs.rstrip("/") != "" and \
                        not os.path.isdir(os.path.join(jail.rootfs, needed)):
                    errors.append(UserError(f"rootfs '{jail.rootfs}' lacks /{needed}",
                                            origin=origin, option=option,
                                            hint=f"mkdir {os.path.join(jail.rootfs, needed)}, "
                                                 f"or build one with nsuwsgi rootfs"))
        for s, keep in zip(config.items("namespace-keep-mount"), jail.keep_mounts):
            if not os.path.exists(keep.source):
                errors.append(UserError(f"keep-mount source '{keep.source}' does not exist",
                                        origin=s.origin, option="namespace-keep-mount",
                                        hint="fix the path, or create it on the host"))
            elif os.path.isdir(jail.rootfs) and not os.path.exists(
                    os.path.join(jail.rootfs, keep.target.lstrip("/"))):
                errors.append(UserError(f"mount point '{keep.target}' is missing in the rootfs",
                                        origin=s.origin, option="namespace-keep-mount",
                                        hint=f"create {os.path.join(jail.rootfs, keep.target.lstrip('/'))}"))
    if config["unshare2"] and config["unshare2"] & linux.CLONE_NEWPID:
        errors.append(UserError("unshare2 cannot create a PID namespace (it would make the "
                                "first daemon PID 1 of a namespace that dies with it)",
                                origin=config.origin("unshare2"), option="unshare2",
                                hint="put pid in unshare, or use namespace ="))
    for d in config.daemons:
        if d.ns_pid:
            errors.append(UserError("ns_pid inside a jail is not supported: the jailed master "
                                    "has no CAP_SYS_ADMIN to make a PID namespace",
                                    origin=d.origin, option=d.option,
                                    hint="remove ns_pid; the jail has its own PID namespace"))
    if jail.veth is not None and not jail.namespaces & linux.CLONE_NEWNET:
        errors.append(UserError("a veth needs the jail's own network namespace",
                                origin=config.origin("namespace-net-veth"),
                                option="namespace-net-veth", hint="add namespace-net = true"))
    for name in ("chroot",):
        if config[name] and not os.path.isdir(config[name]):
            errors.append(UserError(f"directory '{config[name]}' does not exist",
                                    origin=config.origin(name), option=name,
                                    hint="create it or fix the path"))
    return errors


def keep_mount_errors(config: Config) -> list[UserError]:
    """Keep-mounts go into a namespace's rootfs; without `namespace` they would be dropped."""
    if config["namespace"]:
        return []
    return [UserError("keep-mounts need a namespace rootfs", origin=s.origin,
                      option="namespace-keep-mount", hint="add namespace = ROOTFS")
            for s in config.items("namespace-keep-mount")]


def unjailed_errors(config: Config) -> list[UserError]:
    """Options that only mean something in a jail, used without one."""
    errors = keep_mount_errors(config)
    for h in config.hooks:
        if h.phase in ("in-jail", "post-jail"):
            errors.append(UserError(f"{h.phase} hooks run only with a jail", origin=h.origin,
                                    option=h.option,
                                    hint="add namespace/unshare/chroot, or use hook-as-root"))
    return errors


def id_errors(config: Config) -> list[UserError]:
    errors = []
    wants_ids = config.is_set("uid") or config.is_set("gid") or any(
        d.uid is not None or d.gid is not None for d in config.daemons)
    if wants_ids and os.geteuid() != 0:
        for name in ("uid", "gid"):
            value = config[name]
            if value is not None and value != (os.geteuid() if name == "uid" else os.getegid()):
                errors.append(UserError(f"changing {name} to {value} needs root",
                                        origin=config.origin(name), option=name,
                                        hint="run nsuwsgi as root, or remove the option"))
        for d in config.daemons:
            if (d.uid is not None and d.uid != os.geteuid()) or \
               (d.gid is not None and d.gid != os.getegid()):
                errors.append(UserError("uid/gid for a daemon needs a master running as root",
                                        origin=d.origin, option=d.option,
                                        hint="run nsuwsgi as root, or remove uid=/gid="))
    return errors


def help_text() -> str:
    """`nsuwsgi --help`, generated from the table."""
    lines = ["usage: nsuwsgi [--option value ...] [config.ini|.json|.yaml ...]",
             "       nsuwsgi --ini app.ini[:section]", "",
             "Options (uWSGI names; every option also works in ini/json/yaml files):"]
    groups: dict[str, list[Option]] = {}
    for opt in TABLE:
        if opt.status == SUPPORTED:
            groups.setdefault(opt.group, []).append(opt)
    for group, opts in groups.items():
        lines.append("")
        lines.append(f"{group}:")
        for opt in opts:
            names = ", ".join("--" + n for n in (opt.name, *opt.aliases))
            arg = f" {opt.metavar}" if opt.metavar else ""
            lines.append(f"  {names}{arg}")
            lines.append(f"      {opt.help}")
    lines += ["", "Signals: SIGTERM graceful shutdown, SIGINT/SIGQUIT immediate shutdown, "
              "SIGHUP graceful reload.", "Exit codes: see docs/troubleshooting.md."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- jail and reload

JAIL_OPTIONS = ("namespace", "namespace-net", "unshare", "unshare2", "chroot", "pivot_root", "cap")
JAILED_HOOK_PHASES = ("in-jail", "as-root", "as-user")


def jail_spec(config: Config) -> spec.JailSpec | None:
    """The jail the instance's master runs in, or None for a plain instance."""
    if not any(config.is_set(name) for name in JAIL_OPTIONS):
        return None
    rootfs, hostname = config["namespace"] or (None, None)
    flags = config["unshare"] or 0
    if rootfs:
        flags |= linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
    if config["namespace-net"]:
        flags |= linux.CLONE_NEWNET
    if config["chroot"] or config["pivot_root"]:
        flags |= linux.CLONE_NEWNS      # keep the host's mount tree out of it
    uid, gid = config["uid"], config["gid"]
    if uid is not None and gid is None:
        gid = _primary_gid(uid)
    return spec.JailSpec(
        namespaces=flags, rootfs=rootfs, hostname=hostname,
        keep_mounts=tuple(_keep_target(k, rootfs) for k in config["namespace-keep-mount"]),
        chroot=config["chroot"], pivot_root=config["pivot_root"],
        unshare_after=config["unshare2"] or 0, uid=uid, gid=gid,
        groups=_groups(uid, gid, not config["no-initgroups"]),
        caps=config["cap"] or frozenset(),
        hooks=tuple(h for h in config.hooks if h.phase in JAILED_HOOK_PHASES),
        veth=config["namespace-net-veth"], origin=_first_origin(config))


def _keep_target(keep: spec.KeepMount, rootfs: str | None) -> spec.KeepMount:
    """uWSGI: without DST, SRC minus the rootfs prefix when it lies under the rootfs."""
    if keep.target:
        return keep
    target = keep.source
    if rootfs and (target + "/").startswith(rootfs.rstrip("/") + "/"):
        target = "/" + target[len(rootfs.rstrip("/")):].lstrip("/")
    return keep.replace(target=target)


def _primary_gid(uid: int) -> int | None:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def _groups(uid: int | None, gid: int | None, initgroups: bool) -> tuple[int, ...] | None:
    if gid is None:
        return None
    if initgroups and uid is not None:
        try:
            return tuple(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        except KeyError:
            pass
    return (gid,)


def _first_jail_option(config: Config) -> str:
    return next((name for name in JAIL_OPTIONS if config.is_set(name)), "namespace")


def _first_origin(config: Config) -> Origin:
    return config.origin(_first_jail_option(config)) or Origin()


def encode_config(config: Config) -> bytes:
    """The entries that built `config`, to be re-typed and re-checked elsewhere.

    Only jailed instances use this pair, from the keeper to the master it forked (the same
    interpreter, and the master trusts its keeper), so the format is marshal's: built in,
    where json cost every jailed cold start ~1.5 ms of imports made before entering the jail.
    """
    settings = sorted((s.seq, name, s) for name, items in config.settings.items() for s in items)
    entries = [(name, raw_for_jail(name, s), s.origin.file, s.origin.line, s.origin.source)
               for _, name, s in settings]
    return marshal.dumps((entries, dict(config.placeholders), tuple(config.files)))


def daemon2_with_ids(decl: spec.DaemonDecl, raw: str) -> str:
    """attach-daemon2's text with its uid/gid keys replaced by the numbers `decl` holds."""
    ids = {"uid": decl.uid, "gid": decl.gid}
    items = []
    for key, value in split_keyvals(raw):
        number = ids.get(DAEMON2_KEYS.get(key))
        items.append((key, value if number is None else str(number)))
    return join_keyvals(items)


# Options whose value may name a user or group. The jail has its own /etc/passwd (often
# without www-data), so the keeper sends the numbers it resolved on the host, where the names
# were checked when the file was read.
HOST_RESOLVED = {"uid": lambda value, raw: str(value), "gid": lambda value, raw: str(value),
                 "chown-socket": lambda ids, raw: f"{ids[0]}:{ids[1]}",
                 "attach-daemon2": daemon2_with_ids}


def raw_for_jail(name: str, setting: Setting) -> str:
    to_text = HOST_RESOLVED.get(name)
    if to_text is None or setting.value is None:
        return setting.raw
    return to_text(setting.value, setting.raw)


def decode_config(data: bytes) -> Config:
    entries, placeholders, files = marshal.loads(data)
    entries = [Entry(name, raw, Origin(file, line, source))
               for name, raw, file, line, source in entries]
    return build_config(entries, placeholders, files, inside_jail=True)
