"""argv -> Config -> run. Nothing else lives here.

Every user mistake surfaces here as UserError/ConfigErrors and is printed as one line per
problem, `nsuwsgi: error: FILE:LINE: OPTION: what is wrong (hint: how to fix it)`, followed by
the exit code from errors.EXIT_CODES. A traceback means a bug in nsuwsgi, never bad input.
"""

from __future__ import annotations

import os
import sys

from nsuwsgi import __version__
from nsuwsgi.errors import EXIT_CONFIG, EXIT_OK, ConfigErrors, UserError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V"):
        print(f"nsuwsgi {__version__}")     # before the option table is even imported
        return EXIT_OK
    from nsuwsgi.config import load_config
    from nsuwsgi.options import Config, help_text
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(help_text())
        return EXIT_OK if argv else EXIT_CONFIG
    if argv[0] == "rootfs":
        from nsuwsgi import rootfs
        return rootfs.main(argv[1:])
    if argv[0] == "systemd":
        from nsuwsgi import units
        return units.main(argv[1:])
    cwd = os.getcwd()
    environ = dict(os.environ)

    def reload_config() -> Config:
        return load_config(argv, environ, cwd)

    try:
        config = reload_config()
    except ConfigErrors as errors:
        for err in errors.errors:
            print(f"nsuwsgi: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except UserError as err:
        print(f"nsuwsgi: error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    warn_ignored(config)
    if config["show-config"]:
        print(show_config(config))
        return EXIT_OK
    from nsuwsgi.instance import run_instance
    return run_instance(config, reload_config)


def warn_ignored(config) -> None:
    if not config.ignored:
        return
    names = ", ".join(f"{name} ({origin})" for name, origin in config.ignored)
    print(f"nsuwsgi: warning: ignoring uWSGI options that nsuwsgi does not implement: {names}",
          file=sys.stderr)


def show_config(config) -> str:
    """The effective configuration, as an ini file that would produce it."""
    from nsuwsgi.options import BY_NAME
    lines = [";; nsuwsgi effective configuration", "[uwsgi]"]
    settings = sorted((s.seq, name, s) for name, items in config.settings.items() for s in items)
    for _, name, setting in settings:
        if name == "show-config":
            continue
        lines.append(f"; from {setting.origin}")
        opt = BY_NAME[name]
        value = setting.raw if not (opt.is_flag and setting.raw == "") else "true"
        lines.append(f"{name} = {value}")
    for name, value in config.placeholders.items():
        lines.append(f"; placeholder {name} = {value}")
    for name, origin in config.ignored:
        lines.append(f"; ignored: {name} ({origin})")
    return "\n".join(lines)
