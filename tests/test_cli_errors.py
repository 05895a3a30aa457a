"""Bad input gets one clear line per problem (FILE:LINE: OPTION: what (hint: fix)) and exit 2.

Never a traceback. These run the real CLI as a subprocess, as a user would.
"""

from __future__ import annotations

import pytest

from nsuwsgi.errors import EXIT_CONFIG
from support import run_cli


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(result):
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("nsuwsgi: error:")]


CASES = {
    "malformed section header": (
        "[uwsgi\nmaster = true\n", "app.ini:1", "hint:"),
    "empty key": (
        "[uwsgi]\n= value\n", "app.ini:2", "hint:"),
    "unknown option": (
        "[uwsgi]\nmaster = true\natach-daemon = memcached\n", "app.ini:3",
        "did you mean 'attach-daemon'"),
    "bad attach-daemon2 key": (
        "[uwsgi]\nattach-daemon2 = cmdd=memcached\n", "app.ini:2: attach-daemon2",
        "did you mean 'cmd'"),
    "bad attach-daemon2 number": (
        "[uwsgi]\nattach-daemon2 = cmd=memcached,freq=often\n", "app.ini:2: attach-daemon2",
        "hint:"),
    "bad attach-daemon2 signal": (
        "[uwsgi]\nattach-daemon2 = cmd=memcached,stopsignal=SIGTREM\n",
        "app.ini:2: attach-daemon2", "SIGTERM"),
    "attach-daemon2 without a command": (
        "[uwsgi]\nattach-daemon2 = pidfile=/tmp/x.pid\n", "app.ini:2: attach-daemon2",
        "cmd="),
    "pidfile in a missing directory": (
        "[uwsgi]\nsmart-attach-daemon = /nonexistent/dir/mc.pid memcached -d\n",
        "app.ini:2: smart-attach-daemon", "create /nonexistent/dir"),
    "smart-attach-daemon without a command": (
        "[uwsgi]\nsmart-attach-daemon = /tmp/mc.pid\n", "app.ini:2: smart-attach-daemon",
        "hint:"),
    "bad boolean": (
        "[uwsgi]\nmaster = maybe\n", "app.ini:2: master", "true or false"),
    "missing user": (
        "[uwsgi]\nuid = no-such-user-here\n", "app.ini:2: uid", "hint:"),
    "master pidfile in a missing directory": (
        "[uwsgi]\npidfile = /nonexistent/dir/master.pid\n", "app.ini:2: pidfile", "hint:"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_ini_input_gives_one_clear_line(tmp_path, case):
    text, where, hint = CASES[case]
    ini = write(tmp_path, "app.ini", text)
    result = run_cli("--ini", str(ini), cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG, result.stderr
    lines = errors_of(result)
    assert len(lines) == 1, result.stderr
    assert where in lines[0] and hint in lines[0], lines[0]


def test_every_problem_is_reported_at_once(tmp_path):
    ini = write(tmp_path, "app.ini", "[uwsgi]\natach-daemon = a\nmaster = maybe\n"
                                     "attach-daemon2 = cmdd=x\n")
    lines = errors_of(run_cli("--ini", str(ini), cwd=tmp_path))
    assert [line.split(": ")[2].split(":")[1] for line in lines] == ["2", "3", "4"]


def test_unknown_command_line_option(tmp_path):
    result = run_cli("--atach-daemon", "memcached", cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    (line,) = errors_of(result)
    assert "command line" in line and "did you mean 'attach-daemon'" in line


def test_missing_config_file(tmp_path):
    result = run_cli("--ini", str(tmp_path / "nope.ini"), cwd=tmp_path)
    assert result.returncode == EXIT_CONFIG
    (line,) = errors_of(result)
    assert "nope.ini" in line and "No such file" in line


def test_json_and_yaml_syntax_errors_name_the_line(tmp_path):
    js = write(tmp_path, "app.json", '{"uwsgi": {\n "master": true,\n}\n}\n')
    ym = write(tmp_path, "app.yaml", "uwsgi:\n  master: true\n   bad: [\n")
    for path in (js, ym):
        result = run_cli(str(path), cwd=tmp_path)
        assert result.returncode == EXIT_CONFIG, result.stderr
        (line,) = errors_of(result)
        assert f"{path.name}:" in line, line


def test_refused_isolation_option_is_an_error_not_silently_ignored(tmp_path):
    ini = write(tmp_path, "app.ini", "[uwsgi]\nnamespace = /ns/001/:testns\n")
    (line,) = errors_of(run_cli("--ini", str(ini), cwd=tmp_path))
    assert "app.ini:2: namespace" in line


def test_ignored_uwsgi_options_are_named_in_one_warning(tmp_path):
    ini = write(tmp_path, "app.ini", "[uwsgi]\nenable-threads = true\nthunder-lock = 1\n"
                                     "attach-daemon = sleep 1\nshow-config = true\n")
    result = run_cli("--ini", str(ini), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [l for l in result.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1
    assert "enable-threads (" in warnings[0] and "thunder-lock (" in warnings[0]


def test_show_config_prints_the_effective_config(tmp_path):
    ini = write(tmp_path, "app.ini", "[uwsgi]\nbase = /srv\nchdir = /tmp\n"
                                     "attach-daemon = %(base)/bin/worker\nshow-config\n")
    result = run_cli("--ini", str(ini), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "attach-daemon = /srv/bin/worker" in result.stdout
    assert "app.ini:4" in result.stdout


def test_help_and_version():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--attach-daemon2" in result.stdout and "--smart-attach-daemon" in result.stdout
    assert run_cli("--version").stdout.startswith("nsuwsgi ")
