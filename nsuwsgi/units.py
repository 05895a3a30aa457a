"""`nsuwsgi systemd`: the systemd unit files for an Emperor and for one service per app.

The files in docs/systemd/ are this module's output with the default paths, so the unit
files a user copies and the ones `nsuwsgi systemd --output DIR` writes for their own paths
never drift apart (tests/test_units.py checks it, and vm-tests/test_systemd_real.py boots
them under a real systemd).

Choices a reader of the units should know, and why:
- Type=notify: nsuwsgi sends READY=1 only once the vassals (or workers) are started, and a
  STATUS line systemctl shows ("The Emperor is governing N vassals").
- KillSignal=SIGTERM with KillMode=mixed: SIGTERM is nsuwsgi's graceful stop (uWSGI's is
  SIGINT/SIGQUIT, which is why its guide needs die-on-term). Only the main process gets it;
  the Emperor stops its vassals itself, and systemd SIGKILLs whatever is left after
  TimeoutStopSec.
- RuntimeDirectory=nsuwsgi is removed when the service stops, so sockets handed out by a
  .socket unit live elsewhere (a socket unit outlives the service it starts).
- Restart=on-failure: die-on-idle exits with code 0, so an idle per-app service stays down
  until its socket sees the next connection.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULTS = {
    "binary": "/usr/local/bin/nsuwsgi",
    "emperor_ini": "/etc/nsuwsgi/emperor.ini",
    "apps_dir": "/etc/nsuwsgi/apps-available",
    "user": "www-data",
    "group": "www-data",
    "runtime_dir": "nsuwsgi",
    "emperor_user": "",
    "app_socket_dir": "/run/nsuwsgi-apps",
    "listen": "127.0.0.1:8001",
    "vassal": "app1",
    "watchdog": "30",
}


def emperor_service(p: dict) -> str:
    return f"""\
# emperor.nsuwsgi.service: the nsuwsgi Emperor as a systemd new-style daemon.
# Install: copy to /etc/systemd/system/, then
#   systemctl daemon-reload && systemctl enable --now emperor.nsuwsgi.service
# `systemctl status emperor.nsuwsgi.service` shows "The Emperor is governing N vassals".
[Unit]
Description=nsuwsgi Emperor
After=network.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={p['binary']} --ini {p['emperor_ini']}
# SIGHUP reloads every vassal gracefully.
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM is nsuwsgi's graceful stop; only the Emperor gets it and it stops its vassals.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=30
Restart=on-failure
# Exit code 2 is a configuration error: restarting cannot fix it.
RestartPreventExitStatus=2
# The Emperor sends WATCHDOG=1; if it hangs, systemd kills and restarts it.
WatchdogSec={p['watchdog']}
# /run/{p['runtime_dir']}: created at start for the vassals' sockets, removed at stop.
RuntimeDirectory={p['runtime_dir']}
RuntimeDirectoryMode=0755
{emperor_identity(p)}StandardOutput=journal
StandardError=journal
SyslogIdentifier=nsuwsgi-emperor

[Install]
WantedBy=multi-user.target
"""


def emperor_identity(p: dict) -> str:
    """User=/Group= lines, or why there are none.

    systemd gives RuntimeDirectory= to the service's User= at every start (a chown in
    ExecStartPre is undone), so an Emperor that must not be root runs as User= here rather
    than with uid/gid in its ini. Jailed vassals need a root Emperor: each drops to its own uid
    inside its jail, after binding its sockets (chown-socket gives them their owner).
    """
    if not p["emperor_user"]:
        return ("# Runs as root: jailed vassals need it, each drops to its own uid in its jail.\n"
                "# For an unprivileged Emperor: nsuwsgi systemd --emperor-user www-data\n")
    return f"User={p['emperor_user']}\nGroup={p['group']}\n"


def emperor_socket(p: dict) -> str:
    return f"""\
# emperor.nsuwsgi.socket: start the Emperor on the first connection.
# Install: copy next to emperor.nsuwsgi.service, then
#   systemctl disable emperor.nsuwsgi.service && systemctl enable --now emperor.nsuwsgi.socket
# The Emperor hands the socket to the vassal named by FileDescriptorName= (the vassal's
# file name without its extension), whose own socket option has the same address.
# For more vassals, copy this unit as emperor-NAME.nsuwsgi.socket with
# Service=emperor.nsuwsgi.service and FileDescriptorName=NAME.
# A unix socket must not live in /run/{p['runtime_dir']}: systemd removes that directory
# when the service stops, and the socket unit outlives the service.
[Unit]
Description=Socket for the nsuwsgi Emperor (vassal {p['vassal']})

[Socket]
ListenStream={p['listen']}
FileDescriptorName={p['vassal']}
Service=emperor.nsuwsgi.service

[Install]
WantedBy=sockets.target
"""


def app_socket(p: dict) -> str:
    return f"""\
# nsuwsgi-app@.socket: one socket per app; the first connection starts nsuwsgi-app@NAME.
# Install: copy to /etc/systemd/system/, create the app's user, then
#   systemctl enable --now nsuwsgi-app@NAME.socket
[Unit]
Description=Socket for nsuwsgi app %i

[Socket]
ListenStream={p['app_socket_dir']}/%i.socket
SocketUser=www-%i
SocketGroup={p['group']}
SocketMode=0660

[Install]
WantedBy=sockets.target
"""


def app_service(p: dict) -> str:
    return f"""\
# nsuwsgi-app@.service: one app, under its own user www-NAME, config
# {p['apps_dir']}/NAME.ini. Started by nsuwsgi-app@NAME.socket; an app with
# die-on-idle exits with code 0 when idle and the socket starts it again.
[Unit]
Description=%i nsuwsgi app
Requires=nsuwsgi-app@%i.socket
After=nsuwsgi-app@%i.socket

[Service]
Type=notify
NotifyAccess=main
User=www-%i
Group={p['group']}
ExecStart={p['binary']} --ini {p['apps_dir']}/%i.ini --socket {p['app_socket_dir']}/%i.socket
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
KillMode=mixed
Restart=on-failure
RestartPreventExitStatus=2
StandardOutput=journal
StandardError=journal
SyslogIdentifier=nsuwsgi-%i

[Install]
WantedBy=multi-user.target
"""


def tmpfiles(p: dict) -> str:
    return f"""\
# nsuwsgi.conf: for systemd older than 211, which has no RuntimeDirectory=.
# Install as /etc/tmpfiles.d/nsuwsgi.conf, then: systemd-tmpfiles --create nsuwsgi.conf
d /run/{p['runtime_dir']} 0755 {p['user']} {p['group']} -
"""


UNITS = {
    "emperor.nsuwsgi.service": emperor_service,
    "emperor.nsuwsgi.socket": emperor_socket,
    "nsuwsgi-app@.socket": app_socket,
    "nsuwsgi-app@.service": app_service,
    "nsuwsgi.conf": tmpfiles,
}


def render(params: dict | None = None) -> dict[str, str]:
    """Every unit file's name and text, for the given paths (defaults for the rest)."""
    merged = dict(DEFAULTS, **(params or {}))
    return {name: make(merged) for name, make in UNITS.items()}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nsuwsgi systemd",
        description="Print (or write with --output) systemd unit files for an nsuwsgi Emperor "
                    "and for one service per app. docs/systemd/ holds them with the defaults.")
    parser.add_argument("units", nargs="*", metavar="UNIT",
                        help=f"units to print (default: all): {', '.join(UNITS)}")
    parser.add_argument("--output", metavar="DIR", help="write the files into DIR")
    for key, value in DEFAULTS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, default=value,
                            metavar=key.upper(), help=f"default: {value or 'none'}")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    from nsuwsgi.errors import EXIT_CONFIG, EXIT_OK
    args = parse_args(argv)
    unknown = [name for name in args.units if name not in UNITS]
    if unknown:
        print(f"nsuwsgi: error: systemd: unknown unit {', '.join(unknown)} "
              f"(hint: choose from {', '.join(UNITS)})", file=sys.stderr)
        return EXIT_CONFIG
    params = {key: getattr(args, key) for key in DEFAULTS}
    files = render(params)
    chosen = args.units or list(files)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        for name in chosen:
            with open(os.path.join(args.output, name), "w") as out:
                out.write(files[name])
        return EXIT_OK
    print("\n".join(f"### {name}\n{files[name]}" for name in chosen), end="")
    return EXIT_OK
