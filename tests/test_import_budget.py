"""A plain instance imports only what serving needs: every optional part costs cold-start time
and memory in every worker (issue 4's cold-start and PSS figures). The optional parts are
imported by `import_what_config_needs`, before any jail, for configs that use them."""

import subprocess

from support import PYTHON

OPTIONAL = ["yaml", "email", "urllib.parse", "difflib", "inotify_simple", "ipaddress",
            "nsuwsgi.daemons", "nsuwsgi.watch", "nsuwsgi.stats", "nsuwsgi.jail.plan",
            "nsuwsgi.jail.apply", "nsuwsgi.jail.init", "nsuwsgi.jail.hooks", "nsuwsgi.jail.net",
            "nsuwsgi.server.cgi", "nsuwsgi.server.static"]


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return set(out.split())


def test_the_serving_path_imports_no_optional_part():
    loaded = loaded_after("import nsuwsgi.cli, nsuwsgi.instance, nsuwsgi.server.worker\n"
                          "from nsuwsgi.config import load_config\n"
                          "load_config(['--http-socket', '127.0.0.1:0', '--wsgi-file', 'a.py'],"
                          " {}, '/')")
    assert sorted(set(OPTIONAL) & loaded) == []


def test_a_config_that_uses_a_part_imports_it_up_front():
    loaded = loaded_after(
        "from nsuwsgi.config import load_config\n"
        "from nsuwsgi.master import import_what_config_needs\n"
        "c = load_config(['--attach-daemon', 'sleep 1', '--stats', '127.0.0.1:0', "
        "'--touch-reload', '/tmp/x', '--cgi', '/bin/true'], {}, '/')\n"
        "import_what_config_needs(c)")
    for name in ("nsuwsgi.daemons", "nsuwsgi.watch", "nsuwsgi.stats", "nsuwsgi.server.cgi"):
        assert name in loaded
