"""Unit tests for nsuwsgi.config: argv, environment, ini, JSON, YAML and the substitutions.

Every case writes small files into tmp_path and loads them with cwd=tmp_path, so nothing
depends on the directory pytest runs in or on the real environment.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import textwrap
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nsuwsgi
from nsuwsgi import config, options, spec
from nsuwsgi.config import magic
from nsuwsgi.errors import ConfigErrors, Origin, UserError


# --------------------------------------------------------------------------- helpers

def write(directory, name: str, text: str) -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)


def load(tmp_path, *argv: str, environ=None) -> config.Loaded:
    return config.load(list(argv), environ or {}, cwd=str(tmp_path))


def load_ini(tmp_path, text: str, name: str = "app.ini", environ=None) -> config.Loaded:
    write(tmp_path, name, text)
    return load(tmp_path, name, environ=environ)


def pairs(loaded: config.Loaded) -> list[tuple[str, str]]:
    return [(e.key, e.value) for e in loaded.entries]


def value_of(loaded: config.Loaded, key: str) -> str:
    values = [e.value for e in loaded.entries if e.key == key]
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def messages(error: Exception) -> list[str]:
    if isinstance(error, ConfigErrors):
        return [str(e) for e in error.errors]
    return [str(error)]


def djb33x_reference(text: str) -> str:
    """The hash as the tests understand it: h = h*33 ^ byte, 32-bit, little-endian hex."""
    value = 5381
    for byte in text.encode():
        value = (((value << 5) + value) ^ byte) & 0xFFFFFFFF
    return value.to_bytes(4, "little").hex().upper()


# --------------------------------------------------------------------------- command line

def test_argv_space_and_equals_forms(tmp_path):
    loaded = load(tmp_path, "--pidfile", "/run/a.pid", "--logto=/var/log/a.log")
    assert pairs(loaded) == [("pidfile", "/run/a.pid"), ("logto", "/var/log/a.log")]
    assert loaded.entries[0].origin == Origin(source="command line")


def test_argv_flags_take_no_value(tmp_path):
    loaded = load(tmp_path, "--master", "--vacuum", "--chdir", str(tmp_path))
    assert pairs(loaded) == [("master", "1"), ("vacuum", "1"), ("chdir", str(tmp_path))]


def test_argv_flag_with_explicit_value(tmp_path):
    cfg = config.load_config(["--master=false", "--vacuum=yes"], {}, cwd=str(tmp_path))
    assert cfg["master"] is False and cfg["vacuum"] is True


def test_argv_repeated_options_keep_order(tmp_path):
    loaded = load(tmp_path, "--attach-daemon", "a", "--attach-daemon=b", "--attach-daemon", "c")
    assert [e.value for e in loaded.entries] == ["a", "b", "c"]


def test_argv_unknown_option_reaches_build_config(tmp_path):
    loaded = load(tmp_path, "--atach-daemon", "memcached -p 11311")
    assert pairs(loaded) == [("atach-daemon", "memcached -p 11311")]
    with pytest.raises(ConfigErrors) as caught:
        config.load_config(["--atach-daemon", "memcached"], {}, cwd=str(tmp_path))
    assert "did you mean 'attach-daemon'" in str(caught.value)
    assert "command line" in str(caught.value)


def test_argv_known_uwsgi_option_takes_a_value_unless_an_option_follows(tmp_path):
    loaded = load(tmp_path, "--socket", ":3031", "--enable-threads", "--master")
    assert pairs(loaded) == [("socket", ":3031"), ("enable-threads", "1"), ("master", "1")]


@pytest.mark.parametrize("argv", [["--pidfile"], ["--pidfile", "--master"]])
def test_argv_missing_value(tmp_path, argv):
    with pytest.raises(UserError) as caught:
        load(tmp_path, *argv)
    assert caught.value.option == "pidfile"
    assert "needs a value" in str(caught.value)


def test_argv_empty_option_name(tmp_path):
    with pytest.raises(UserError):
        load(tmp_path, "--=x")


def test_short_options(tmp_path):
    loaded = load(tmp_path, "-M", "-d", "/tmp/a.log", "-d/tmp/b.log", "-s", ":3031")
    assert pairs(loaded) == [("master", "1"), ("daemonize", "/tmp/a.log"),
                             ("daemonize", "/tmp/b.log"), ("socket", ":3031")]


def test_unknown_short_option(tmp_path):
    with pytest.raises(UserError) as caught:
        load(tmp_path, "-x")
    assert "-x" in str(caught.value) and "long form" in caught.value.hint


@pytest.mark.parametrize("name, text", [
    ("a.ini", "[uwsgi]\nchdir = /x\n"),
    ("a.json", '{"uwsgi": {"chdir": "/x"}}'),
    ("a.js", '{"uwsgi": {"chdir": "/x"}}'),
    ("a.yaml", "uwsgi:\n  chdir: /x\n"),
    ("a.yml", "uwsgi:\n  chdir: /x\n"),
])
def test_positional_config_chosen_by_suffix(tmp_path, name, text):
    write(tmp_path, name, text)
    loaded = load(tmp_path, name)
    assert pairs(loaded) == [("chdir", "/x")]
    assert loaded.files == (str(tmp_path / name),)


@pytest.mark.parametrize("name, hint", [("app.conf", "--ini app.conf"), ("app.xml", "XML")])
def test_positional_with_unknown_suffix(tmp_path, name, hint):
    write(tmp_path, name, "[uwsgi]\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, name)
    assert name in str(caught.value) and hint in caught.value.hint
    assert caught.value.origin == Origin(source="command line")


def test_positional_with_section(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\nchdir = /a\n[dev]\nchdir = /b\n")
    assert pairs(load(tmp_path, "app.ini:dev")) == [("chdir", "/b")]


def test_positional_files_load_where_they_stand(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\nchdir = /file\n")
    loaded = load(tmp_path, "--chdir", "/before", "app.ini", "--chdir", "/after")
    assert [e.value for e in loaded.entries] == ["/before", "/file", "/after"]


def test_double_dash_ends_options(tmp_path):
    write(tmp_path, "--odd.ini", "[uwsgi]\nchdir = /x\n")
    assert pairs(load(tmp_path, "--", "--odd.ini")) == [("chdir", "/x")]


def test_explicit_loader_option_ignores_suffix(tmp_path):
    write(tmp_path, "app.conf", "[uwsgi]\nchdir = /x\n")
    assert pairs(load(tmp_path, "--ini", "app.conf")) == [("chdir", "/x")]


def test_stdin_and_schemes_are_refused(tmp_path):
    for spec_text in ("-", "exec://cat a.ini"):
        with pytest.raises(UserError) as caught:
            load(tmp_path, "--ini", spec_text)
        assert "not supported" in str(caught.value)


# --------------------------------------------------------------------------- environment

def test_environment_names_and_order(tmp_path):
    environ = {"UWSGI_ATTACH_DAEMON": "env-daemon", "UWSGI_REload_MERCY": "x"}
    loaded = load(tmp_path, "--attach-daemon", "argv-daemon", environ=environ)
    assert pairs(loaded) == [("attach-daemon", "env-daemon"), ("reload-mercy", "x"),
                             ("attach-daemon", "argv-daemon")]
    assert loaded.entries[0].origin == Origin(source="environment UWSGI_ATTACH_DAEMON")


def test_environment_internal_and_unrelated_variables_are_skipped(tmp_path):
    environ = {name: "1" for name in (
        "UWSGI_RELOADS", "UWSGI_VASSALS_DIR", "UWSGI_EMPEROR_FD", "UWSGI_EMPEROR_FD_CONFIG",
        "UWSGI_BROODLORD_NUM", "UWSGI_EMPEROR_PROXY", "UWSGI_JAIL_PID",
        "UWSGI_ORIGINAL_PROC_NAME", "UWSGI_FOO", "UWSGI_", "HOME")}
    assert load(tmp_path, environ=environ).entries == []
    config.load_config([], environ, cwd=str(tmp_path))


def test_environment_known_uwsgi_name_is_kept(tmp_path):
    loaded = load(tmp_path, environ={"UWSGI_HTTP_SOCKET": ":8080"})
    assert pairs(loaded) == [("http-socket", ":8080")]


def test_environment_can_name_a_config_file(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\nchdir = /x\n")
    loaded = load(tmp_path, environ={"UWSGI_INI": "app.ini"})
    assert pairs(loaded) == [("chdir", "/x")]


# --------------------------------------------------------------------------- ini syntax

def test_ini_default_section_and_others_ignored(tmp_path):
    loaded = load_ini(tmp_path, """
        before = ignored
        [other]
        chdir = /other
        [uwsgi]
        chdir = /mine
        [more]
        chdir = /more
    """)
    assert pairs(loaded) == [("chdir", "/mine")]
    assert loaded.entries[0].origin == Origin(file=str(tmp_path / "app.ini"), line=5)


def test_ini_missing_section_is_an_error(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\nchdir = /x\n[prod]\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini:dev")
    text = str(caught.value)
    assert "[dev]" in text and str(tmp_path / "app.ini") in text
    assert caught.value.hint == "sections present: [uwsgi], [prod]"


def test_ini_spaces_inside_brackets_are_kept(tmp_path):
    write(tmp_path, "app.ini", "[ uwsgi ]\nchdir = /x\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert "[ uwsgi ]" in caught.value.hint


def test_ini_file_without_sections(tmp_path):
    write(tmp_path, "app.ini", "chdir = /x\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert "add a [uwsgi] line" in caught.value.hint


def test_ini_comments_only_at_line_start(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        ; a comment
        # another
           ; indented comment
        env = A=spaced value   ; not a comment
        env = B=x # nor this
    """)
    assert pairs(loaded) == [("env", "A=spaced value   ; not a comment"),
                             ("env", "B=x # nor this")]


def test_ini_split_at_first_equals_and_trim(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\n\t i=j=k \t\nenv   =   X=1\n")
    assert pairs(loaded) == [("i", "j=k"), ("env", "X=1")]


def test_ini_bare_key_is_empty_and_true_for_flags(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\nvacuum\nmaster =\n")
    assert pairs(loaded) == [("vacuum", ""), ("master", "")]
    cfg = config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    assert cfg["vacuum"] is True and cfg["master"] is True


def test_ini_repeated_keys_in_order_and_quotes_kept(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        attach-daemon = "quoted"
        attach-daemon = 'single'
        attach-daemon = third
    """)
    assert [e.value for e in loaded.entries] == ['"quoted"', "'single'", "third"]
    assert [e.origin.line for e in loaded.entries] == [2, 3, 4]


def test_ini_crlf_and_no_final_newline(tmp_path):
    (tmp_path / "app.ini").write_bytes(b"[uwsgi]\r\nchdir = /x\r\nmaster = true")
    assert pairs(load(tmp_path, "app.ini")) == [("chdir", "/x"), ("master", "true")]


def test_ini_malformed_section_header_names_the_line(tmp_path):
    path = write(tmp_path, "app.ini", "; top\n\n[uwsgi\nchdir = /x\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert caught.value.origin == Origin(file=path, line=3)
    assert "malformed section header" in str(caught.value)
    assert "[uwsgi]" in caught.value.hint
    assert str(caught.value).startswith(f"{path}:3:")


def test_ini_empty_key_names_the_line(tmp_path):
    path = write(tmp_path, "app.ini", "[uwsgi]\nchdir = /x\n= orphan\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert caught.value.origin == Origin(file=path, line=3)


def test_ini_several_problems_reported_together(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\n= a\n= b\n[broken\n")
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, "app.ini")
    assert [e.origin.line for e in caught.value.errors] == [2, 3, 4]


def test_non_utf8_file_is_a_user_error(tmp_path):
    (tmp_path / "app.ini").write_bytes(b"[uwsgi]\nchdir = /caf\xe9\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert caught.value.origin == Origin(file=str(tmp_path / "app.ini"), line=2)
    assert "UTF-8" in caught.value.hint


def test_utf8_bom_is_skipped(tmp_path):
    (tmp_path / "app.ini").write_bytes(b"\xef\xbb\xbf[uwsgi]\nchdir = /x\n")
    assert pairs(load(tmp_path, "app.ini")) == [("chdir", "/x")]


# --------------------------------------------------------------------------- magic variables

def test_magic_per_file_variables(tmp_path):
    write(tmp_path, "sub/x.ini", """
        [uwsgi]
        d = %d
        p = %p
        s = %s
        n = %n
        e = %e
        c = %c
        o = %o
        x = %x
        j = %j
        i = %i
        parts = %0|%1|%2|%9
    """)
    values = dict(pairs(load(tmp_path, "sub/x.ini")))
    path = os.path.realpath(tmp_path / "sub" / "x.ini")
    parts = [p for p in os.path.dirname(path).split("/") if p]
    assert values["d"] == os.path.dirname(path) + "/"
    assert values["p"] == path
    assert (values["s"], values["n"], values["e"], values["c"]) == ("x.ini", "x", "ini", "sub")
    assert values["o"] == "sub/x.ini"
    assert values["x"] == ""
    assert values["j"] == djb33x_reference(path)
    assert values["i"] == str(os.lstat(path).st_ino)
    padded = parts + [""] * 10
    assert values["parts"] == f"{padded[0]}|{padded[1]}|{padded[2]}|{padded[9]}"


def test_magic_hash_matches_uwsgi():
    # The value uWSGI printed for this path (reference section 7.3).
    assert magic.hash_text("/tmp/uwx/e7/sub/x.ini") == "B78A0353"
    assert djb33x_reference("/tmp/uwx/e7/sub/x.ini") == "B78A0353"


def test_magic_section_variable(tmp_path):
    write(tmp_path, "app.ini", "[dev]\nx = %x\n")
    assert pairs(load(tmp_path, "app.ini:dev")) == [("x", "dev")]


def test_magic_works_in_keys_and_headers(tmp_path):
    write(tmp_path, "daemon.ini", "[%n]\nattach-%n = sleep 1\n")
    assert pairs(load(tmp_path, "daemon.ini:daemon")) == [("attach-daemon", "sleep 1")]


def test_magic_global_variables(tmp_path):
    before = time.time()
    loaded = load_ini(tmp_path, """
        [uwsgi]
        v = %v
        h = %h
        t = %t
        T = %T
        V = %V
        k = %k
        u = %u
        U = %U
        g = %g
        G = %G
        esc = %[[0m
        b = %b
    """)
    after = time.time()
    values = dict(pairs(loaded))
    assert values["v"] == str(tmp_path)
    assert values["h"] == socket.gethostname()
    assert int(before) <= int(values["t"]) <= int(after)
    assert int(before * 1e6) - 1 <= int(values["T"]) <= int(after * 1e6) + 1
    assert values["V"] == nsuwsgi.__version__
    assert values["k"] == str(os.cpu_count())
    assert values["u"] == str(os.getuid()) and values["g"] == str(os.getgid())
    assert values["U"] == magic.user_name(os.getuid())
    assert values["G"] == magic.group_name(os.getgid())
    assert values["esc"] == "\x1b[0m"
    assert values["b"] == os.path.realpath(sys.argv[0])


def test_magic_unknown_letter_percent_and_placeholder_opening(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        chdir = /srv
        a = [%z]
        b = 100%%
        env = X=%(chdir)
    """)
    assert value_of(loaded, "a") == "[]"
    assert value_of(loaded, "b") == "100%"
    assert value_of(loaded, "env") == "X=/srv"


def test_magic_percent_before_line_end_keeps_the_line_break(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\na = 100%\nb = 2\n")
    assert pairs(loaded) == [("a", "100%"), ("b", "2")]


def test_magic_uppercase_variables_describe_the_first_file(tmp_path):
    write(tmp_path, "main.ini", "[uwsgi]\ninclude = %dsub/inner.ini\n")
    write(tmp_path, "sub/inner.ini", "[uwsgi]\nhere = %n %c\nfirst = %N %C %S %E %X %O\n")
    values = dict(pairs(load(tmp_path, "main.ini")))
    assert values["here"] == "inner sub"
    assert values["first"] == f"main {tmp_path.name} main.ini ini  main.ini"


def test_magic_path_of_a_symlinked_file_is_not_resolved(tmp_path):
    write(tmp_path, "real/app.ini", "[uwsgi]\np = %p\n")
    (tmp_path / "link.ini").symlink_to(tmp_path / "real" / "app.ini")
    assert value_of(load(tmp_path, "link.ini"), "p") == f"{tmp_path}/link.ini"


def test_magic_is_not_applied_to_command_line_values(tmp_path):
    assert pairs(load(tmp_path, "--chdir", "%d")) == [("chdir", "%d")]


# --------------------------------------------------------------------------- $(...) and @(...)

def test_environment_references(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        a = $(APP_HOME)/x
        b = $(NOT_SET_ANYWHERE)
        c = $(NOT(SET))
    """, environ={"APP_HOME": "/srv/app"})
    assert pairs(loaded) == [("a", "/srv/app/x"), ("b", "$(NOT_SET_ANYWHERE)"),
                             ("c", "$(NOT(SET))")]


def test_environment_reference_from_argv(tmp_path):
    loaded = load(tmp_path, "--chdir", "$(APP_HOME)", environ={"APP_HOME": "/srv"})
    assert pairs(loaded) == [("chdir", "/srv")]


def test_environment_reference_loop_is_an_error(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\nchdir = $(LOOP)\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini", environ={"LOOP": "x$(LOOP)"})
    assert caught.value.origin.line == 2


def test_loader_option_values_are_not_expanded(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\ninclude = $(DIR)/x.ini\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini", environ={"DIR": str(tmp_path)})
    assert "$(DIR)/x.ini" in str(caught.value)


def test_file_references_strip_one_newline(tmp_path):
    (tmp_path / "two.txt").write_text("secret\n\n")
    (tmp_path / "cr.txt").write_text("value\r")
    (tmp_path / "none.txt").write_text("plain")
    loaded = load_ini(tmp_path, "[uwsgi]\na = @(two.txt)\nb = @(cr.txt)\nc = <@(none.txt)>\n")
    assert pairs(loaded) == [("a", "secret\n"), ("b", "value"), ("c", "<plain>")]


def test_file_reference_to_a_missing_file(tmp_path):
    path = write(tmp_path, "app.ini", "[uwsgi]\nchdir = /x\nenv = K=@(missing.txt)\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert caught.value.origin == Origin(file=path, line=3)
    assert "No such file or directory" in str(caught.value)
    assert caught.value.option == "env"


# --------------------------------------------------------------------------- %(...)

def test_placeholder_takes_the_first_occurrence(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\na = 1\na = 2\nenv = B=%(a)\n")
    assert value_of(loaded, "env") == "B=1"
    assert loaded.placeholders == {"a": "1"}


def test_placeholder_may_refer_to_an_option_defined_later(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\npidfile = %(chdir)/app.pid\nchdir = /srv\n")
    assert value_of(loaded, "pidfile") == "/srv/app.pid"


def test_placeholder_chains_expand(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\nchdir = %(top)/app\ntop = %(root)/srv\nroot = /data\n")
    assert value_of(loaded, "chdir") == "/data/srv/app"
    assert loaded.placeholders == {"top": "/data/srv", "root": "/data"}


def test_unresolved_placeholder_stays(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\nchdir = %(nothing)/x\nenv = A=%()\n")
    assert pairs(loaded) == [("chdir", "%(nothing)/x"), ("env", "A=%()")]


@pytest.mark.parametrize("expression, expected", [
    ("a + 3", "4"), ("a - 5", "-4"), ("2 * 3 + 1", "7"), ("1 + 2 * 3", "9"),
    ("10 / 3", "3"), ("7 / 0", "0"), ("a a", "11"), ("a ++", "2"), ("a --", "0"),
    ("nothing + 1", "1"), ("a  +  3", "4"), ("a + b", "3"),
])
def test_placeholder_arithmetic(tmp_path, expression, expected):
    loaded = load_ini(tmp_path, f"[uwsgi]\na = 1\nb = 2\nenv = R=%({expression})\n")
    assert value_of(loaded, "env") == f"R={expected}"


def test_placeholder_loop_is_an_error(tmp_path):
    write(tmp_path, "app.ini", "[uwsgi]\na = %(b)\nb = %(a)\nenv = X=%(a)\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert "placeholder loop: %(a) -> %(b) -> %(a)" in str(caught.value)


def test_placeholder_referring_to_an_earlier_self_is_no_loop(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\na = 1\na = %(a)x\nenv = X=%(a)\n")
    assert value_of(loaded, "env") == "X=1"


def test_placeholders_in_command_line_values(tmp_path):
    loaded = load(tmp_path, "--chdir", "/srv", "--pidfile", "%(chdir)/a.pid")
    assert value_of(loaded, "pidfile") == "/srv/a.pid"


def test_file_reference_contents_are_expanded_by_later_passes(tmp_path):
    (tmp_path / "value.txt").write_text("%(chdir)/a.pid\n")
    loaded = load(tmp_path, "--chdir", "/srv", "--pidfile", "@(value.txt)")
    assert value_of(loaded, "pidfile") == "/srv/a.pid"


# --------------------------------------------------------------------------- placeholder rule

def test_referenced_unknown_key_is_a_placeholder(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        app_root = /srv/app
        chdir = %(app_root)
    """)
    assert pairs(loaded) == [("chdir", "/srv/app")]
    assert loaded.placeholders == {"app_root": "/srv/app"}


def test_unknown_key_used_only_in_arithmetic_is_a_placeholder(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\nbase = 3030\nenv = PORT=%(base + 1)\n")
    assert pairs(loaded) == [("env", "PORT=3031")]


def test_unreferenced_typo_is_an_unknown_option(tmp_path):
    path = write(tmp_path, "app.ini", "[uwsgi]\nmaster = true\natach-daemon = memcached\n")
    with pytest.raises(ConfigErrors) as caught:
        config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    [error] = caught.value.errors
    assert error.origin == Origin(file=path, line=3)
    assert "unknown option 'atach-daemon'" in str(error)
    assert "did you mean 'attach-daemon'" in str(error)


def test_unknown_command_line_key_is_never_a_placeholder(tmp_path):
    loaded = load(tmp_path, "--base", "/srv", "--chdir", "%(base)")
    assert ("base", "/srv") in pairs(loaded) and loaded.placeholders == {}
    assert value_of(loaded, "chdir") == "/srv"


def test_known_option_is_never_a_placeholder(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\nsocket = :3031\nenv = S=%(socket)\n")
    assert pairs(loaded) == [("socket", ":3031"), ("env", "S=:3031")]


# --------------------------------------------------------------------------- loader options

def test_include_loads_in_place(tmp_path):
    write(tmp_path, "inner.ini", "[uwsgi]\nattach-daemon = two\n")
    loaded = load_ini(tmp_path, """
        [uwsgi]
        attach-daemon = one
        include = inner.ini
        attach-daemon = three
    """)
    assert [e.value for e in loaded.entries] == ["one", "two", "three"]
    assert loaded.entries[1].origin == Origin(file=str(tmp_path / "inner.ini"), line=2)
    assert loaded.files == (str(tmp_path / "app.ini"), str(tmp_path / "inner.ini"))


def test_include_other_formats_and_sections(tmp_path):
    write(tmp_path, "a.json", '{"uwsgi": {"attach-daemon": "json"}}')
    write(tmp_path, "b.yml", "dev:\n  attach-daemon: yaml\n")
    loaded = load_ini(tmp_path, "[uwsgi]\ninclude = a.json\ninclude = b.yml:dev\n"
                      "json = a.json\n")
    assert [e.value for e in loaded.entries] == ["json", "yaml", "json"]


def test_relative_paths_start_in_the_startup_directory(tmp_path):
    write(tmp_path, "conf/app.ini", "[uwsgi]\ninclude = conf/common.ini\ninclude = %dcommon.ini\n")
    write(tmp_path, "conf/common.ini", "[uwsgi]\nattach-daemon = common\n")
    assert len(load(tmp_path, "conf/app.ini").entries) == 2


def test_same_file_twice_is_not_a_cycle(tmp_path):
    write(tmp_path, "inner.ini", "[uwsgi]\nattach-daemon = x\n")
    loaded = load_ini(tmp_path, "[uwsgi]\ninclude = inner.ini\ninclude = inner.ini\n")
    assert len(loaded.entries) == 2
    assert loaded.files == (str(tmp_path / "app.ini"), str(tmp_path / "inner.ini"))


def test_include_cycle_names_the_chain(tmp_path):
    write(tmp_path, "a.ini", "[uwsgi]\ninclude = b.ini\n")
    b = write(tmp_path, "b.ini", "[uwsgi]\n\ninclude = a.ini\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "a.ini")
    a = str(tmp_path / "a.ini")
    assert f"include cycle: {a} -> {b} -> {a}" in str(caught.value)
    assert caught.value.origin == Origin(file=b, line=3)


def test_self_include_is_a_cycle(tmp_path):
    write(tmp_path, "a.ini", "[uwsgi]\ninclude = %p\n")
    with pytest.raises(UserError, match="include cycle"):
        load(tmp_path, "a.ini")


def test_other_section_of_the_same_file(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        attach-daemon = main
        ini = :base
        [base]
        attach-daemon = base
    """)
    assert [e.value for e in loaded.entries] == ["main", "base"]


def test_section_alone_without_previous_file(tmp_path):
    with pytest.raises(UserError, match="previous file"):
        load(tmp_path, "--ini", ":base")


def test_missing_include_names_the_including_line(tmp_path):
    path = write(tmp_path, "app.ini", "[uwsgi]\n\ninclude = nope.ini\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert f"cannot read {tmp_path / 'nope.ini'}: No such file or directory" in str(caught.value)
    assert caught.value.origin == Origin(file=path, line=3)


def test_missing_file_on_the_command_line(tmp_path):
    with pytest.raises(UserError) as caught:
        load(tmp_path, "nope.ini")
    assert "No such file or directory" in str(caught.value)
    assert caught.value.origin == Origin(source="command line")


def test_directory_as_config(tmp_path):
    (tmp_path / "dir.ini").mkdir()
    with pytest.raises(UserError, match="Is a directory"):
        load(tmp_path, "dir.ini")


def test_inherit_comes_after_the_file(tmp_path):
    write(tmp_path, "template.ini", """
        [uwsgi]
        pidfile = /run/%(name).pid
        attach-daemon = template
    """)
    loaded = load_ini(tmp_path, """
        [uwsgi]
        inherit = template.ini
        name = web
        attach-daemon = own
    """)
    assert pairs(loaded) == [("attach-daemon", "own"), ("pidfile", "/run/web.pid"),
                             ("attach-daemon", "template")]
    assert loaded.placeholders == {"name": "web"}


def test_inherit_on_the_command_line_comes_after_all_options(tmp_path):
    write(tmp_path, "t.ini", "[uwsgi]\nattach-daemon = template\n")
    loaded = load(tmp_path, "--inherit", "t.ini", "--attach-daemon", "argv")
    assert [e.value for e in loaded.entries] == ["argv", "template"]


def test_inherit_cycle(tmp_path):
    write(tmp_path, "a.ini", "[uwsgi]\ninherit = b.ini\n")
    write(tmp_path, "b.ini", "[uwsgi]\ninherit = a.ini\n")
    with pytest.raises(UserError, match="include cycle"):
        load(tmp_path, "a.ini")


def test_set_defines_an_option_or_a_placeholder(tmp_path):
    loaded = load_ini(tmp_path, """
        [uwsgi]
        set = chdir=/srv
        set = flavour=a=b
        env = F=%(flavour)
    """)
    assert pairs(loaded) == [("chdir", "/srv"), ("env", "F=a=b")]
    assert loaded.placeholders == {"flavour": "a=b"}


def test_set_placeholder_needs_no_reference(tmp_path):
    loaded = load_ini(tmp_path, "[uwsgi]\nset-ph = unused=1\nset-placeholder = base=$(H)\n",
                      environ={"H": "/home/x"})
    assert loaded.entries == [] and loaded.placeholders == {"unused": "1", "base": "/home/x"}
    config.load_config(["app.ini"], {}, cwd=str(tmp_path))


def test_set_placeholder_refuses_option_names(tmp_path):
    path = write(tmp_path, "app.ini", "[uwsgi]\nset-ph = chdir=/x\n")
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.ini")
    assert caught.value.origin == Origin(file=path, line=2)
    assert "chdir" in str(caught.value) and "set = chdir=VALUE" in caught.value.hint


@pytest.mark.parametrize("line", ["set = novalue", "set-ph = =x", "set-placeholder = "])
def test_set_needs_name_equals_value(tmp_path, line):
    write(tmp_path, "app.ini", f"[uwsgi]\n{line}\n")
    with pytest.raises(UserError, match="NAME=VALUE"):
        load(tmp_path, "app.ini")


def test_set_can_load_a_file(tmp_path):
    write(tmp_path, "inner.ini", "[uwsgi]\nattach-daemon = inner\n")
    loaded = load_ini(tmp_path, "[uwsgi]\nset = include=inner.ini\n")
    assert pairs(loaded) == [("attach-daemon", "inner")]


def test_loader_options_are_visible_to_placeholders(tmp_path):
    write(tmp_path, "inner.ini", "[uwsgi]\n")
    loaded = load_ini(tmp_path, "[uwsgi]\ninclude = inner.ini\nenv = I=%(include)\n")
    assert pairs(loaded) == [("env", "I=inner.ini")]


# --------------------------------------------------------------------------- JSON

def test_json_value_mapping(tmp_path):
    write(tmp_path, "app.json", """
        {"uwsgi": {
            "chdir": "/srv",
            "master": true,
            "vacuum": false,
            "strict": null,
            "reload-mercy": 8,
            "env": ["A=1", "B=2", true, 3, 1.5, {"x": 1}],
            "harakiri": 1.5,
            "nested": {"a": "b"}
        }}
    """)
    assert pairs(load(tmp_path, "app.json")) == [
        ("chdir", "/srv"), ("master", "1"), ("vacuum", "0"), ("strict", "0"),
        ("reload-mercy", "8"), ("env", "A=1"), ("env", "B=2"), ("env", "1"), ("env", "3")]


def test_json_section_and_key_lines(tmp_path):
    path = write(tmp_path, "app.json", """
        {
          "uwsgi": {"chdir": "/a"},
          "dev": {
            "chdir": "/b",
            "chdir": "/c"
          }
        }
    """)
    loaded = load(tmp_path, "app.json:dev")
    assert pairs(loaded) == [("chdir", "/b"), ("chdir", "/c")]
    assert [e.origin for e in loaded.entries] == [Origin(file=path, line=4),
                                                  Origin(file=path, line=5)]


def test_json_missing_section(tmp_path):
    write(tmp_path, "app.json", '{"prod": {"chdir": "/a"}, "version": 3}')
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.json")
    assert "'uwsgi'" in str(caught.value) and caught.value.hint == "sections present: 'prod'"


@pytest.mark.parametrize("text, message", [
    ('[1, 2]', "top level must be an object"),
    ('{"uwsgi": "chdir"}', '"uwsgi" must be an object'),
])
def test_json_wrong_shapes(tmp_path, text, message):
    write(tmp_path, "app.json", text)
    with pytest.raises(UserError, match=message):
        load(tmp_path, "app.json")


def test_json_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "app.json", '{"uwsgi": {\n  "chdir": "/a"\n  "master": true\n}}\n')
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.json")
    assert caught.value.origin == Origin(file=path, line=3)
    assert "invalid JSON" in str(caught.value)


def test_json_gets_magic_variables(tmp_path):
    write(tmp_path, "web.json", '{"uwsgi": {"chdir": "%d", "env": "N=%n"}}')
    assert pairs(load(tmp_path, "web.json")) == [("chdir", f"{tmp_path}/"), ("env", "N=web")]


# --------------------------------------------------------------------------- YAML

def test_yaml_value_mapping(tmp_path):
    path = write(tmp_path, "app.yaml", """
        # a comment
        uwsgi:
          master: true
          vacuum: no
          strict:
          umask: 022
          harakiri: 1.5
          env:
            - A=1
            - B=2
          chdir: "quoted"
          nested: {a: b}
        other:
          chdir: /other
    """)
    loaded = load(tmp_path, "app.yaml")
    assert pairs(loaded) == [
        ("master", "1"), ("vacuum", "0"), ("strict", ""), ("umask", "022"),
        ("harakiri", "1.5"), ("env", "A=1"), ("env", "B=2"), ("chdir", "quoted")]
    assert [e.origin.line for e in loaded.entries] == [3, 4, 5, 6, 7, 8, 8, 11]
    assert loaded.entries[0].origin.file == path


def test_yaml_section_and_repeated_keys(tmp_path):
    write(tmp_path, "app.yml", "uwsgi:\n  chdir: /a\ndev:\n  chdir: /b\n  chdir: /c\n")
    assert pairs(load(tmp_path, "app.yml:dev")) == [("chdir", "/b"), ("chdir", "/c")]


@pytest.mark.parametrize("text, hint", [
    ("dev:\n  chdir: /a\n", "sections present: 'dev'"),
    ("", "the file has no sections; put the options under a top-level 'uwsgi'"),
])
def test_yaml_missing_section(tmp_path, text, hint):
    write(tmp_path, "app.yaml", text)
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.yaml")
    assert caught.value.hint == hint


def test_yaml_empty_section_is_fine(tmp_path):
    write(tmp_path, "app.yaml", "uwsgi:\n")
    assert load(tmp_path, "app.yaml").entries == []


@pytest.mark.parametrize("text, line", [
    ("uwsgi:\n  chdir: /a\n    master: true\n", 3),
    ("uwsgi:\n  chdir: [unclosed\n", 3),
    ("uwsgi:\n  chdir: \x07\n", 2),
    ("- a\n- b\n", 1),
    ("uwsgi: [a, b]\n", 1),
])
def test_yaml_errors_name_the_line(tmp_path, text, line):
    path = write(tmp_path, "app.yaml", text)
    with pytest.raises(UserError) as caught:
        load(tmp_path, "app.yaml")
    assert caught.value.origin == Origin(file=path, line=line)


def test_yaml_merge_keys(tmp_path):
    write(tmp_path, "app.yaml", """
        base: &base
          chdir: /srv
        uwsgi:
          <<: *base
          master: true
    """)
    assert pairs(load(tmp_path, "app.yaml")) == [("chdir", "/srv"), ("master", "1")]


# --------------------------------------------------------------------------- seed examples

def daemons_of(tmp_path, text: str) -> options.Config:
    write(tmp_path, "app.ini", "[uwsgi]\n" + textwrap.dedent(text).lstrip("\n"))
    return config.load_config(["app.ini"], {}, cwd=str(tmp_path))


def smart(pidfile: str, command: str) -> spec.DaemonDecl:
    return spec.DaemonDecl(command=command, mode=spec.SMART, pidfile=pidfile,
                           option="smart-attach-daemon")


def test_seed_memcached_dumb(tmp_path):
    cfg = daemons_of(tmp_path, """
        master = true
        socket = :3031
        attach-daemon = memcached -p 11311 -u roberto
    """)
    assert cfg.daemons == (spec.DaemonDecl(command="memcached -p 11311 -u roberto"),)
    assert cfg["master"] is True
    assert cfg.ignored == ()
    assert [s.address for s in cfg["socket"]] == [":3031"]
    assert cfg.daemons[0].origin == Origin(file=str(tmp_path / "app.ini"), line=4)


def test_seed_memcached_smart(tmp_path):
    cfg = daemons_of(tmp_path, """
        master = true
        socket = :3031
        smart-attach-daemon = /tmp/memcached.pid memcached -p 11311 -d -P /tmp/memcached.pid -u roberto
    """)
    assert cfg.daemons == (smart("/tmp/memcached.pid",
                                 "memcached -p 11311 -d -P /tmp/memcached.pid -u roberto"),)


def test_seed_two_mongodb(tmp_path):
    cfg = daemons_of(tmp_path, """
        master = true
        socket = :3031
        smart-attach-daemon = /tmp/mongo1.pid mongod --pidfilepath /tmp/mongo1.pid --dbpath foo1 --port 50001
        smart-attach-daemon = /tmp/mongo2.pid mongod --pidfilepath /tmp/mongo2.pid --dbpath foo2 --port 50002
    """)
    assert cfg.daemons == (
        smart("/tmp/mongo1.pid", "mongod --pidfilepath /tmp/mongo1.pid --dbpath foo1 --port 50001"),
        smart("/tmp/mongo2.pid", "mongod --pidfilepath /tmp/mongo2.pid --dbpath foo2 --port 50002"))


def test_seed_postgresql(tmp_path):
    cluster = tmp_path / "db" / "foobar1"
    cluster.mkdir(parents=True)
    cfg = daemons_of(tmp_path, f"""
        master = true
        socket = :3031
        smart-attach-daemon = {cluster}/postmaster.pid /usr/lib/postgresql/9.1/bin/postgres -D {cluster}
    """)
    assert cfg.daemons == (smart(f"{cluster}/postmaster.pid",
                                 f"/usr/lib/postgresql/9.1/bin/postgres -D {cluster}"),)


def test_seed_celery(tmp_path):
    cfg = daemons_of(tmp_path, """
        master = true
        socket = :3031
        smart-attach-daemon = /tmp/celery.pid celery -A tasks worker --pidfile=/tmp/celery.pid
    """)
    assert cfg.daemons == (smart("/tmp/celery.pid",
                                 "celery -A tasks worker --pidfile=/tmp/celery.pid"),)


DELAYED_JOB = """
    master = true
    socket = :3031
    env = RAILS_ENV=production
    {ruby}chdir = {chdir}
    smart-attach-daemon = %(chdir)/tmp/pids/delayed_job.pid %(chdir)/script/delayed_job start
"""


@pytest.mark.parametrize("ruby", [
    pytest.param("rbrequire = bundler/setup\n    rack =\n    ", id="as-in-the-docs",
                 marks=pytest.mark.skipif(
                     not (options.is_known_uwsgi("rbrequire") and options.is_known_uwsgi("rack")),
                     reason="nsuwsgi/uwsgi_names.py does not list rbrequire/rack yet")),
    pytest.param("", id="without-ruby-options"),
])
def test_seed_delayed_job(tmp_path, ruby):
    app = tmp_path / "foobar"
    (app / "tmp" / "pids").mkdir(parents=True)
    cfg = daemons_of(tmp_path, DELAYED_JOB.format(ruby=ruby, chdir=app))
    assert cfg.daemons == (smart(f"{app}/tmp/pids/delayed_job.pid",
                                 f"{app}/script/delayed_job start"),)
    assert cfg["env"] == (("RAILS_ENV", "production"),)
    assert cfg["chdir"] == str(app)
    if ruby:
        assert {name for name, _ in cfg.ignored} == {"rbrequire", "rack"}


def test_seed_literal_form_with_directory_pidfile_is_rejected(tmp_path):
    path = write(tmp_path, "app.ini", """
        [uwsgi]
        master = true
        socket = :3031
        smart-attach-daemon = /tmp/ memcached -p 11311 -d -P /tmp/ -u roberto
    """)
    with pytest.raises(ConfigErrors) as caught:
        config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    [error] = caught.value.errors
    assert "is a directory" in str(error)
    assert str(error).startswith(f"{path}:4: smart-attach-daemon:")


def test_seed_dropbear_example_names_the_missing_rootfs(tmp_path):
    """The seed's literal /ns/001/ does not exist here: one clear error, file and line."""
    path = write(tmp_path, "app.ini", """
        [uwsgi]
        namespace = /ns/001/:testns
        namespace-keep-mount = /dev/pts
        socket = :3031
        exec-as-root = chown -R www-data /etc/dropbear
        attach-daemon = /usr/sbin/dropbear -j -k -p 1022 -E -F -I 300
    """)
    with pytest.raises(ConfigErrors) as caught:
        config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    by_option = {e.option: e for e in caught.value.errors}
    assert by_option["namespace"].origin == Origin(file=path, line=2)
    assert "rootfs '/ns/001/' does not exist" in str(by_option["namespace"])
    assert "nsuwsgi rootfs /ns/001/" in str(by_option["namespace"])


@pytest.mark.skipif(os.geteuid() != 0, reason="jail options need root")
def test_seed_dropbear_example_loads_with_a_real_rootfs(tmp_path):
    from nsuwsgi.rootfs import build_rootfs
    root = tmp_path / "ns" / "001"
    build_rootfs(str(root), usr_from_host=True)
    write(tmp_path, "app.ini", f"""
        [uwsgi]
        namespace = {root}/:testns
        namespace-keep-mount = /dev/pts
        socket = :3031
        exec-as-root = chown -R www-data /etc/dropbear
        attach-daemon = /usr/sbin/dropbear -j -k -p 1022 -E -F -I 300
    """)
    loaded = config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    assert loaded["namespace"] == (f"{root}/", "testns")
    assert [h.arg for h in loaded.hooks] == ["chown -R www-data /etc/dropbear"]
    assert [s.address for s in loaded["socket"]] == [":3031"]


def test_seed_legion_daemon_is_refused(tmp_path):
    write(tmp_path, "app.ini", """
        [uwsgi]
        master = true
        socket = :3031
        legion-mcast = mylegion 90 bf-cbc:mysecret
        legion-smart-attach-daemon = mylegion /tmp/celerybeat.pid celery beat --pidfile=/tmp/celerybeat.pid
    """)
    with pytest.raises(ConfigErrors) as caught:
        config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    assert "legion-smart-attach-daemon" in {e.option for e in caught.value.errors}


ATTACH_DAEMON2 = "cmd=my_daemon.sh,pidfile=/tmp/my.pid,uid=33,gid=33,stopsignal=3"
EXPECTED_DAEMON2 = spec.DaemonDecl(command="my_daemon.sh", mode=spec.SMART, pidfile="/tmp/my.pid",
                                   uid=33, gid=33, stop_signal=3, option="attach-daemon2")


def test_seed_attach_daemon2_keys():
    assert options.parse_attach_daemon2(ATTACH_DAEMON2) == EXPECTED_DAEMON2


def test_seed_attach_daemon2_loads(tmp_path):
    loaded = load_ini(tmp_path, f"[uwsgi]\nmaster = true\nattach-daemon2 = {ATTACH_DAEMON2}\n")
    assert value_of(loaded, "attach-daemon2") == ATTACH_DAEMON2
    if os.geteuid() != 0:
        pytest.skip("uid/gid 33 for a daemon needs root (validate refuses it otherwise)")
    cfg = config.load_config(["app.ini"], {}, cwd=str(tmp_path))
    assert cfg.daemons == (EXPECTED_DAEMON2,)


# --------------------------------------------------------------------------- no tracebacks

ACCEPTABLE = (UserError, ConfigErrors)
SOURCE_TOKENS = list("[]=;#%()$@:{}\"' \n\t-,uwsgiabc0123+*/\x00\\\u00e9\ud800") + [
    "include", "ini", "set", "set-ph", "inherit", "%(", "$(", "@(", "uwsgi:", "[uwsgi]\n",
    "a.ini", "a.json", "a.yaml", "%p", ":"]
SOURCE_TEXT = st.lists(st.sampled_from(SOURCE_TOKENS), max_size=40).map("".join)


def load_text_safely(name: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, name)
        with open(path, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogatepass"))
        try:
            config.load([name], {"X": "$(X)"}, cwd=directory)
        except ACCEPTABLE:
            pass


@settings(max_examples=150, deadline=None)
@given(text=SOURCE_TEXT, name=st.sampled_from(["a.ini", "a.json", "a.yaml"]))
def test_any_file_content_gives_a_result_or_a_user_error(text, name):
    load_text_safely(name, text)


@settings(max_examples=150, deadline=None)
@given(argv=st.lists(st.sampled_from(["--master", "--pidfile", "-M", "-d", "-x", "--", "-",
                                      "--ini", "a.ini", "a.txt", "--set", "k=v", "%(k)",
                                      "--atach-daemon", "--=", "--socket", ":1", "$(X)"]),
                     max_size=8))
def test_any_command_line_gives_a_result_or_a_user_error(argv):
    with tempfile.TemporaryDirectory() as directory:
        try:
            config.load(argv, {"X": "1"}, cwd=directory)
        except ACCEPTABLE:
            pass


@pytest.mark.parametrize("expression", ["9" * 5000 + " + 1", "a * a * a * a * a * a", "- -"])
def test_arithmetic_stays_bounded(tmp_path, expression):
    loaded = load_ini(tmp_path, f"[uwsgi]\na = 99999999999\nenv = R=%({expression})\n")
    assert len(value_of(loaded, "env")) < 40


def test_invalid_file_names_are_user_errors(tmp_path):
    write(tmp_path, "app.json", '{"uwsgi": {"include": "a\\u0000b.ini", "env": "@(\\ud800)"}}')
    with pytest.raises(UserError, match="not a valid file name"):
        load(tmp_path, "app.json")
    write(tmp_path, "app.json", '{"uwsgi": {"env": "@(\\ud800)"}}')
    with pytest.raises(UserError, match="not a valid file name"):
        load(tmp_path, "app.json")


def test_json_number_too_long_is_a_user_error(tmp_path):
    write(tmp_path, "app.json", '{"uwsgi": {"x": ' + "9" * 5000 + "}}")
    with pytest.raises(UserError, match="invalid JSON"):
        load(tmp_path, "app.json")
