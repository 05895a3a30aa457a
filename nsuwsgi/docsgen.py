"""Generate docs/options.md from the option table.

    python -m nsuwsgi.docsgen > docs/options.md          # regenerate
    python -m nsuwsgi.docsgen --check docs/options.md    # exit 1 if the file is stale

Everything comes from `options.TABLE` and `UWSGI_OPTION_NAMES`, so the page cannot drift from
what the parser accepts; tests/test_docs.py fails when the committed file is out of date.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from nsuwsgi import options
from nsuwsgi.uwsgi_names import UWSGI_OPTION_NAMES

REGENERATE = "python -m nsuwsgi.docsgen > docs/options.md"

GROUP_TITLES = {
    "config": "Configuration sources",
    "instance": "The instance",
    "daemons": "External daemons",
    "jail": "Isolation (namespaces, jails, hooks)",
    "emperor": "The Emperor",
    "legion": "Legions",
}

STATUS_LABELS = {
    options.SUPPORTED: "supported",
    options.IGNORED: "ignored (warns)",
    options.REFUSED: "refused (error)",
}

INTRO = (
    "Every option works on the command line (`--name value`) and as a key in an ini, JSON or "
    "YAML file, under the same name as in uWSGI. Each option has one of three statuses. "
    "**supported**: nsuwsgi implements it. **ignored**: a uWSGI option nsuwsgi does not "
    "implement and that is safe to skip; it is accepted and named in one warning at startup, so "
    "an existing uWSGI file still loads. **refused**: a uWSGI option whose silent absence would "
    "be unsafe or misleading (isolation, the Emperor, legions); using it is an error until "
    "nsuwsgi implements it. A name that is neither an nsuwsgi option nor a uWSGI one is an "
    "error, reported with a did-you-mean suggestion."
)


def cell(text: str) -> str:
    """Make text safe for one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{cell(text)}`"


def format_default(opt: options.Option) -> str:
    value: Any = opt.default
    if opt.is_flag or isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == () or value == "":
        return "-"
    if isinstance(value, (tuple, list)):
        return ", ".join(code(v) for v in value)
    return code(value)


def option_row(opt: options.Option) -> str:
    names = code(opt.name)
    if opt.aliases:
        label = "alias" if len(opt.aliases) == 1 else "aliases"
        names += f" ({label} " + ", ".join(code(a) for a in opt.aliases) + ")"
    value = code(opt.metavar) if opt.metavar else "*(flag)*"
    cells = [names, value, format_default(opt), "yes" if opt.repeatable else "no",
             STATUS_LABELS.get(opt.status, opt.status), cell(opt.help)]
    return "| " + " | ".join(cells) + " |"


def group_title(group: str) -> str:
    return GROUP_TITLES.get(group, group.replace("-", " ").replace("_", " ").capitalize())


def ignored_uwsgi_names() -> list[str]:
    """uWSGI names that nsuwsgi has no record for: accepted, and named in a warning."""
    return sorted(n for n in UWSGI_OPTION_NAMES
                  if n not in options.BY_NAME and not options.is_refused_uwsgi(n))


def refused_uwsgi_names() -> list[str]:
    """uWSGI names with no record that are unsafe to ignore: using one is an error."""
    return sorted(n for n in UWSGI_OPTION_NAMES
                  if n not in options.BY_NAME and options.is_refused_uwsgi(n))


def options_markdown() -> str:
    out = ["# nsuwsgi options", "",
           f"<!-- Generated from nsuwsgi/options.py by `{REGENERATE}`; do not edit. -->", "",
           textwrap.fill(INTRO, width=100), ""]
    groups: dict[str, list[options.Option]] = {}
    for opt in options.TABLE:
        groups.setdefault(opt.group, []).append(opt)
    for group, opts in groups.items():
        out += [f"## {group_title(group)}", "",
                "| Option | Value | Default | Repeatable | Status | Description |",
                "| --- | --- | --- | --- | --- | --- |"]
        out += [option_row(opt) for opt in opts]
        out.append("")
    names = ignored_uwsgi_names()
    out += ["## uWSGI options accepted and ignored", "",
            textwrap.fill(
                f"These {len(names)} uWSGI 2.0 options (core and the commonly packaged "
                "plugins) have no nsuwsgi implementation. nsuwsgi accepts them so that an "
                "existing uWSGI file loads, and names every one it skipped in a single warning "
                "at startup.", width=100), "",
            textwrap.fill(", ".join(names), width=100, break_on_hyphens=False,
                          break_long_words=False), ""]
    refused = refused_uwsgi_names()
    out += ["## uWSGI options refused until implemented", "",
            textwrap.fill(
                f"These {len(refused)} uWSGI options are not implemented yet, and ignoring them "
                "would be unsafe (isolation, privileges, hooks, the Emperor, legions) or would "
                "change what a file means (config logic, other loaders). Using one is an error "
                "naming the file, line and option.", width=100), "",
            textwrap.fill(", ".join(refused), width=100, break_on_hyphens=False,
                          break_long_words=False), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nsuwsgi.docsgen",
                                     description="Print docs/options.md, generated from the "
                                                 "option table.")
    parser.add_argument("--check", metavar="FILE",
                        help="do not print; exit 1 if FILE differs from the generated text")
    args = parser.parse_args(argv)
    text = options_markdown()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    try:
        current = Path(args.check).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{args.check}: cannot read it ({exc.strerror}); generate it with: "
              f"python -m nsuwsgi.docsgen > {args.check}", file=sys.stderr)
        return 1
    if current != text:
        print(f"{args.check} is stale: it does not match nsuwsgi/options.py. "
              f"Regenerate it with: python -m nsuwsgi.docsgen > {args.check}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
