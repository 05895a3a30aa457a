"""The command line and the UWSGI_* environment variables, as raw items.

uWSGI reads `UWSGI_<NAME>` variables first, then argv; both become ordinary options. Two
choices differ from uWSGI on purpose:

  * an environment variable is used only when its name is a known option: the environment
    is shared with unrelated software, and a stray `UWSGI_FOO` must not stop nsuwsgi;
  * an unknown `--option` is kept as an item instead of failing here, so that the one
    validation step reports it with a did-you-mean, next to every other problem.

Config files named without an option (`nsuwsgi app.ini`) load where they stand among the
options, so a later `--chdir` overrides the file's, as it would after `--ini app.ini`. uWSGI's
getopt moves them after every option instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from nsuwsgi import options
from nsuwsgi.config.items import FILE_ARGUMENT, Item
from nsuwsgi.errors import Origin, UserError

COMMAND_LINE = Origin(source="command line")

# Variables uWSGI sets for its own children; they are not options (core/utils.c:parse_sys_envs).
INTERNAL_VARIABLES = {
    "UWSGI_RELOADS", "UWSGI_VASSALS_DIR", "UWSGI_EMPEROR_FD", "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_BROODLORD_NUM", "UWSGI_EMPEROR_PROXY", "UWSGI_JAIL_PID", "UWSGI_ORIGINAL_PROC_NAME",
}

# The few short options uWSGI users type; everything else has a long form only.
SHORT_OPTIONS = {"M": "master", "d": "daemonize", "s": "socket", "p": "processes"}

FLAG_VALUE = "1"


def is_option_name(name: str) -> bool:
    return options.lookup(name) is not None or options.is_known_uwsgi(name)


def environment_items(environ: Mapping[str, str]) -> list[Item]:
    """`UWSGI_HTTP_SOCKET=x` -> option `http-socket = x`, for known option names only."""
    items = []
    for variable, value in environ.items():
        if not variable.startswith("UWSGI_") or variable in INTERNAL_VARIABLES:
            continue
        name = variable[len("UWSGI_"):].lower().replace("_", "-")
        if name and is_option_name(name):
            items.append(Item(name, value, Origin(source=f"environment {variable}")))
    return items


def argv_items(argv: list[str]) -> list[Item]:
    """Options and config file names from the command line, in order."""
    items: list[Item] = []
    position = 0
    files_only = False
    while position < len(argv):
        arg = argv[position]
        position += 1
        if files_only or arg == "-" or not arg.startswith("-"):
            items.append(Item("", arg, COMMAND_LINE, kind=FILE_ARGUMENT))
        elif arg == "--":
            files_only = True
        elif arg.startswith("--"):
            item, position = long_option(arg[2:], argv, position)
            items.append(item)
        else:
            item, position = short_option(arg, argv, position)
            items.append(item)
    return items


def long_option(body: str, argv: list[str], position: int) -> tuple[Item, int]:
    """`--name=value`, `--name value`, or `--flag`."""
    if "=" in body:
        name, value = body.split("=", 1)
        if not name:
            raise UserError(f"'--{body}' has no option name", origin=COMMAND_LINE,
                            hint="write --option=value")
        return Item(name, value, COMMAND_LINE), position
    opt = options.lookup(body)
    if opt is not None and opt.is_flag:
        return Item(body, FLAG_VALUE, COMMAND_LINE), position
    if opt is not None:
        return Item(body, required_value(body, argv, position), COMMAND_LINE), position + 1
    return unsure_option(body, argv, position)


def required_value(name: str, argv: list[str], position: int) -> str:
    """The value of an option that needs one; another option in its place is a mistake."""
    if position < len(argv) and not looks_like_option(argv[position]):
        return argv[position]
    raise UserError("needs a value", origin=COMMAND_LINE, option=name,
                    hint=f"write --{name} VALUE or --{name}=VALUE")


def looks_like_option(arg: str) -> bool:
    if not arg.startswith("--"):
        return False
    return is_option_name(arg[2:].split("=", 1)[0])


def unsure_option(name: str, argv: list[str], position: int) -> tuple[Item, int]:
    """An option nsuwsgi has no record for: it takes the next argument unless that is `--x`."""
    if position < len(argv) and not argv[position].startswith("--"):
        return Item(name, argv[position], COMMAND_LINE), position + 1
    return Item(name, FLAG_VALUE, COMMAND_LINE), position


def short_option(arg: str, argv: list[str], position: int) -> tuple[Item, int]:
    """`-M`, `-d LOGFILE` / `-dLOGFILE`, `-s ADDRESS`, `-p N`."""
    name = SHORT_OPTIONS.get(arg[1])
    if name is None:
        raise UserError(f"unknown short option '{arg}'", origin=COMMAND_LINE,
                        hint="use the long form, e.g. --master; see nsuwsgi --help")
    opt = options.lookup(name)
    if opt is not None and opt.is_flag:
        if len(arg) > 2:
            raise UserError(f"'{arg}': -{arg[1]} takes no value", origin=COMMAND_LINE,
                            hint=f"write -{arg[1]} alone, or --{name}=VALUE")
        return Item(name, FLAG_VALUE, COMMAND_LINE), position
    if len(arg) > 2:
        return Item(name, arg[2:], COMMAND_LINE), position
    return Item(name, required_value(name, argv, position), COMMAND_LINE), position + 1
