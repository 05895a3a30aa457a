"""A plain instance imports only what serving needs: every optional part costs cold-start time
and memory in every worker (issue 4's cold-start and PSS figures). The optional parts are
imported by `import_what_config_needs`, before any jail, for configs that use them.

START_COSTS are modules a plain instance does without because importing them was a measured
part of its cold start: ctypes and python-prctl's Python wrapper (the jail's libc calls live in
nsuwsgi.linux.syscalls), json (a jailed instance's keeper and master exchange marshal data),
traceback (errors.format_traceback prints with CPython's C printer; textwrap came with it) and
http (an enum of every status). dataclasses
(inspect, ast and an exec per class: records.py replaces it). (typing would belong here too,
but httptools imports it.)"""

import subprocess

from support import PYTHON

OPTIONAL = ["yaml", "email", "urllib.parse", "difflib", "ipaddress",
            "nsuwsgi.daemons", "nsuwsgi.watch", "nsuwsgi.stats", "nsuwsgi.jail.plan",
            "nsuwsgi.jail.apply", "nsuwsgi.jail.init", "nsuwsgi.jail.hooks", "nsuwsgi.jail.net",
            "nsuwsgi.server.cgi", "nsuwsgi.server.static"]
START_COSTS = ["ctypes", "prctl", "nsuwsgi.linux.syscalls", "json", "traceback", "textwrap",
               "http", "dataclasses", "inspect"]

SERVING_PATH = ("import nsuwsgi.cli, nsuwsgi.instance, nsuwsgi.server.worker\n"
                "from nsuwsgi.config import load_config\n"
                "load_config(['--http-socket', '127.0.0.1:0', '--wsgi-file', 'a.py'], {}, '/')")


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return set(out.split())


def test_the_serving_path_imports_no_optional_part():
    loaded = loaded_after(SERVING_PATH)
    assert sorted(set(OPTIONAL) & loaded) == []


def test_the_serving_path_imports_none_of_the_start_costs():
    loaded = loaded_after(SERVING_PATH)
    assert sorted(set(START_COSTS) & loaded) == []


def test_a_config_that_uses_a_part_imports_it_up_front():
    loaded = loaded_after(
        "from nsuwsgi.config import load_config\n"
        "from nsuwsgi.master import import_what_config_needs\n"
        "c = load_config(['--attach-daemon', 'sleep 1', '--stats', '127.0.0.1:0', "
        "'--touch-reload', '/tmp/x', '--cgi', '/bin/true'], {}, '/')\n"
        "import_what_config_needs(c)")
    for name in ("nsuwsgi.daemons", "nsuwsgi.watch", "nsuwsgi.stats", "nsuwsgi.server.cgi"):
        assert name in loaded


def test_an_app_error_is_reported_with_its_traceback_when_the_stdlib_is_out_of_reach(tmp_path):
    """After a jail or a privilege drop the traceback module may not be importable: an app's
    error must still reach the log with its frames and source lines."""
    app = tmp_path / "broken.py"
    app.write_text("def helper(d):\n    return d['missing']\n\nhelper({})\n")
    probe = ("import sys\n"
             "for name in ('traceback', 'linecache', 'tokenize', 'textwrap'):\n"
             "    sys.modules[name] = None        # an import of them now fails\n"
             "from nsuwsgi.server.apps import AppLoadError, load_app\n"
             "try:\n"
             f"    load_app('wsgi-file', {str(app)!r}, kind='file')\n"
             "except AppLoadError as err:\n"
             "    print(str(err))\n"
             "    print(err.traceback)\n")
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "raised KeyError: 'missing'" in out.stdout
    assert f'File "{app}", line 4, in <module>' in out.stdout
    assert f'File "{app}", line 2, in helper' in out.stdout
    assert "    return d['missing']" in out.stdout
    assert "nsuwsgi/server/apps.py" not in out.stdout      # trimmed to the app's own frames


def test_the_jail_code_and_what_a_jailed_master_needs_are_listed():
    """Listed, not imported: building a jail's config needs root and a rootfs."""
    from nsuwsgi.master import modules_needed
    from nsuwsgi.options import Config, Setting

    config = Config({"unshare": (Setting(0x20000000, None),)})      # unshare = pid
    needed = modules_needed(config)
    for name in ("nsuwsgi.jail.apply", "nsuwsgi.jail.init", "nsuwsgi.linux.syscalls"):
        assert name in needed
    assert "json" not in needed and "traceback" not in needed


def test_the_jail_code_does_not_bring_dataclasses_back():
    loaded = loaded_after("import nsuwsgi.jail.plan, nsuwsgi.jail.apply, nsuwsgi.jail.init, "
                          "nsuwsgi.jail.hooks")
    assert sorted({"dataclasses", "inspect"} & loaded) == []


def test_a_syntax_error_in_the_app_shows_the_app_line_and_none_of_ours(tmp_path):
    """Every frame of a SyntaxError's traceback is importlib's or ours: the tenant sees only
    the offending line."""
    from nsuwsgi.server.apps import AppLoadError, load_app
    app = tmp_path / "bad.py"
    app.write_text("def application(environ, start_response)\n    return []\n")
    try:
        load_app("wsgi-file", str(app), kind="file")
    except AppLoadError as err:
        text = err.traceback
    assert f'File "{app}", line 1' in text
    assert "SyntaxError: expected ':'" in text
    assert "apps.py" not in text and "<frozen" not in text and "Traceback" not in text
