"""The option table: value parsers, build_config (all problems at once) and validate.

nsuwsgi reads uWSGI's option names but deliberately differs where uWSGI is sloppy
(reference/uwsgi-semantics.md §1.2): attach-daemon2 booleans are real (`control=0` is off),
unknown keys are errors with a did-you-mean, and signals and uid/gid accept names.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal

import pytest

from nsuwsgi import options, spec
from nsuwsgi.errors import ConfigErrors, Origin, ValueProblem
from nsuwsgi.options import (Entry, build_config, parse_attach_daemon2, parse_bool,
                             parse_signal, split_keyvals)


def at(line: int, file: str = "app.ini") -> Origin:
    return Origin(file=file, line=line)


def entries(*pairs: tuple[str, str], file: str = "app.ini") -> list[Entry]:
    """Entries as an ini file would give them, one per line starting at line 1."""
    return [Entry(key, value, at(n, file)) for n, (key, value) in enumerate(pairs, 1)]


def problems(*pairs: tuple[str, str]) -> list:
    with pytest.raises(ConfigErrors) as info:
        build_config(entries(*pairs))
    return info.value.errors


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


# --------------------------------------------------------------------------- parse_bool


@pytest.mark.parametrize("word", ["", "1", "true", "True", "YES", "on", "y", " yes "])
def test_parse_bool_true_words(word):
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["0", "false", "FALSE", "no", "off", "n", " Off "])
def test_parse_bool_false_words(word):
    assert parse_bool(word) is False


@pytest.mark.parametrize("word", ["maybe", "2", "tru", "enabled"])
def test_parse_bool_rejects_other_words_with_a_hint(word):
    with pytest.raises(ValueProblem) as info:
        parse_bool(word)
    assert word in info.value.message
    assert info.value.hint and "true" in info.value.hint and "false" in info.value.hint


# --------------------------------------------------------------------------- parse_signal


@pytest.mark.parametrize("text,number", [
    ("3", signal.SIGQUIT), ("15", signal.SIGTERM), (" 9 ", signal.SIGKILL), ("1", 1),
    ("64", 64),
    ("SIGQUIT", signal.SIGQUIT), ("quit", signal.SIGQUIT), ("Quit", signal.SIGQUIT),
    ("sigterm", signal.SIGTERM), ("HUP", signal.SIGHUP), ("SIGUSR1", signal.SIGUSR1),
    ("usr2", signal.SIGUSR2), ("SIGINT", signal.SIGINT),
])
def test_parse_signal_by_number_and_name(text, number):
    assert parse_signal(text) == int(number)
    assert type(parse_signal(text)) is int


@pytest.mark.parametrize("text,suggestion", [
    ("SIGTREM", "SIGTERM"), ("trem", "SIGTERM"), ("qiut", "SIGQUIT"), ("sigkil", "SIGKILL"),
])
def test_parse_signal_bad_name_suggests_the_closest(text, suggestion):
    with pytest.raises(ValueProblem) as info:
        parse_signal(text)
    assert text in info.value.message
    assert info.value.hint == f"did you mean '{suggestion}'?"


@pytest.mark.parametrize("text", ["0", "65", "1000"])
def test_parse_signal_bad_number(text):
    with pytest.raises(ValueProblem) as info:
        parse_signal(text)
    assert "not a signal" in info.value.message
    assert info.value.hint


def test_parse_signal_hopeless_name_still_has_a_hint():
    with pytest.raises(ValueProblem) as info:
        parse_signal("nonsense-value")
    assert info.value.hint == "use a number or a name like SIGTERM"


# --------------------------------------------------------------------------- split_keyvals


@pytest.mark.parametrize("text,items", [
    (r"cmd=a\,b,pidfile=/x", [("cmd", "a,b"), ("pidfile", "/x")]),
    ("cmd=sleep 10", [("cmd", "sleep 10")]),
    ("cmd=a=b", [("cmd", "a=b")]),                         # split at the first '='
    (r"cmd=a\\b", [("cmd", "a\\b")]),                      # an escaped backslash
    (r"a\=b=c", [("a=b", "c")]),                           # an escaped '=' in a key
    ("control,cmd=x", [("control", None), ("cmd", "x")]),  # an item without '='
    (" cmd = x , freq=3", [("cmd", " x "), ("freq", "3")]),  # keys are stripped
    ("cmd=x,,", [("cmd", "x")]),                           # empty items vanish
    ("", []),
    ("cmd=x,cmd=y", [("cmd", "x"), ("cmd", "y")]),
])
def test_split_keyvals(text, items):
    assert split_keyvals(text) == items


# --------------------------------------------------------------------------- attach-daemon2


@pytest.mark.parametrize("key", ["cmd", "command", "exec"])
def test_daemon2_command_aliases(key):
    decl = parse_attach_daemon2(f"{key}=memcached -p 0")
    assert decl.command == "memcached -p 0"
    assert decl.mode == spec.DUMB
    assert decl.option == "attach-daemon2"


def test_daemon2_defaults():
    decl = parse_attach_daemon2("cmd=x")
    assert decl == spec.DaemonDecl(command="x", option="attach-daemon2")
    assert (decl.freq, decl.control, decl.stop_signal, decl.reload_signal) == (10, False, 15, 0)


def test_daemon2_every_key():
    uid = 65534 if user_exists("nobody") else 0
    gid = 65534 if group_exists("nogroup") else 0
    decl = parse_attach_daemon2(
        r"cmd=redis-server --port 0\, really,freq=5,pidfile=/run/r.pid,control=1,daemonize=1,"
        "touch=/etc/a.conf;'/etc/b c.conf';\"/etc/d\",stopsignal=SIGQUIT,reloadsignal=hup,"
        f"stdin=yes,uid={uid},gid={gid},ns_pid=1,chdir=/srv,max_throttle=60,notifypid=true")
    assert decl == spec.DaemonDecl(
        command="redis-server --port 0, really", mode=spec.SMART2, pidfile="/run/r.pid",
        freq=5, control=True, stdin=True, touch=("/etc/a.conf", "/etc/b c.conf", "/etc/d"),
        stop_signal=int(signal.SIGQUIT), reload_signal=int(signal.SIGHUP), uid=uid, gid=gid,
        ns_pid=True, chdir="/srv", max_throttle=60, notify_pid=True, option="attach-daemon2")


@pytest.mark.parametrize("text,field,value", [
    ("cmd=x,daemon,pidfile=/p", "mode", spec.SMART2),
    ("cmd=x,daemonize=true,pidfile=/p", "mode", spec.SMART2),
    ("cmd=x,pidfile=/p", "mode", spec.SMART),
    ("cmd=x,pidfile=/p,daemonize=0", "mode", spec.SMART),
    ("cmd=x,stop_signal=3", "stop_signal", 3),
    ("cmd=x,stopsignal=int", "stop_signal", int(signal.SIGINT)),
    ("cmd=x,reload_signal=SIGUSR1", "reload_signal", int(signal.SIGUSR1)),
    ("cmd=x,reloadsignal=0", "reload_signal", 0),
    ("cmd=x,touch=/a", "touch", ("/a",)),
    ("cmd=x,touch=/a; /b ;", "touch", ("/a", "/b")),
    ("cmd=x,freq=0", "freq", 0),
    ("cmd=x,max_throttle=300", "max_throttle", 300),
    ("cmd=x,uid=1000", "uid", 1000),
    ("cmd=x,gid=1000", "gid", 1000),
    ("cmd=x,chdir=/tmp", "chdir", "/tmp"),
    ("cmd=x,stdin", "stdin", True),
    ("cmd=x,notifypid", "notify_pid", True),
    ("cmd=x,ns_pid=no", "ns_pid", False),
    ("cmd=x,freq=3,freq=7", "freq", 7),                    # the last one wins
])
def test_daemon2_single_keys(text, field, value):
    assert getattr(parse_attach_daemon2(text), field) == value


@pytest.mark.parametrize("text,control", [
    ("cmd=x,control", True), ("cmd=x,control=1", True), ("cmd=x,control=yes", True),
    ("cmd=x,control=0", False), ("cmd=x,control=false", False), ("cmd=x,control=off", False),
])
def test_daemon2_booleans_are_real(text, control):
    """uWSGI turns control on for any value, even 0; nsuwsgi reads the value."""
    assert parse_attach_daemon2(text).control is control


@pytest.mark.skipif(not user_exists("nobody"), reason="no user 'nobody'")
def test_daemon2_uid_by_name():
    assert parse_attach_daemon2("cmd=x,uid=nobody").uid == pwd.getpwnam("nobody").pw_uid


@pytest.mark.skipif(not group_exists("nogroup"), reason="no group 'nogroup'")
def test_daemon2_gid_by_name():
    assert parse_attach_daemon2("cmd=x,gid=nogroup").gid == grp.getgrnam("nogroup").gr_gid


@pytest.mark.parametrize("text,message,hint", [
    ("cmd=x,pidfil=/p", "unknown key 'pidfil'", "did you mean 'pidfile'?"),
    ("comand=x", "unknown key 'comand'", "did you mean 'command'?"),
    ("cmd=x,stop-signal=3", "unknown key 'stop-signal'", "did you mean 'stopsignal'?"),
    ("cmd=x,zzz=1", "unknown key 'zzz'", "known keys: chdir, cmd, command"),
    ("freq=3", "no command given", "cmd="),
    ("cmd=", "key 'cmd': needs a value", None),
    ("cmd=x,daemonize", "daemonize needs a pidfile", "pidfile="),
    ("cmd=x,daemon=1", "daemonize needs a pidfile", "pidfile="),
    ("cmd=x,pidfile", "key 'pidfile' needs a value", "pidfile=VALUE"),
    ("cmd=x,control=maybe", "key 'control': 'maybe' is not a boolean", "true or false"),
    ("cmd=x,freq=soon", "key 'freq': 'soon' is not a whole number", "digits"),
    ("cmd=x,freq=-1", "key 'freq'", "positive"),
    ("cmd=x,stopsignal=SIGTREM", "key 'stopsignal': 'SIGTREM' is not a signal",
     "did you mean 'SIGTERM'?"),
    ("cmd=x,uid=no-such-user-nsuwsgi", "user 'no-such-user-nsuwsgi' does not exist", "uid"),
    ("cmd=x,gid=no-such-group-nsuwsgi", "group 'no-such-group-nsuwsgi' does not exist", "gid"),
])
def test_daemon2_errors(text, message, hint):
    with pytest.raises(ValueProblem) as info:
        parse_attach_daemon2(text)
    assert message in info.value.message
    if hint is not None:
        assert info.value.hint and hint in info.value.hint


# --------------------------------------------------------------------------- the other daemons


@pytest.mark.parametrize("parser,mode", [
    (options.parse_smart_attach_daemon, spec.SMART),
    (options.parse_smart_attach_daemon2, spec.SMART2),
])
@pytest.mark.parametrize("text,pidfile,freq,command", [
    ("/run/m.pid memcached -d -P /run/m.pid", "/run/m.pid", 10, "memcached -d -P /run/m.pid"),
    ("/run/m.pid,5 memcached", "/run/m.pid", 5, "memcached"),
    ("  /run/m.pid   memcached -p 0  ", "/run/m.pid", 10, "memcached -p 0"),
])
def test_smart_attach_daemon_forms(parser, mode, text, pidfile, freq, command):
    decl = parser(text)
    assert (decl.mode, decl.pidfile, decl.freq, decl.command) == (mode, pidfile, freq, command)
    assert decl.survives_master


@pytest.mark.parametrize("option", ["smart-attach-daemon", "smart-attach-daemon2"])
def test_smart_attach_daemon_needs_a_space(option):
    with pytest.raises(ValueProblem) as info:
        options.lookup(option).parse("/run/m.pid")
    assert "no command after the pidfile" in info.value.message
    assert info.value.hint == f"write {option} = /path/to/daemon.pid command args"


def test_smart_attach_daemon_bad_freq():
    with pytest.raises(ValueProblem) as info:
        options.parse_smart_attach_daemon("/run/m.pid,often memcached")
    assert "not a whole number" in info.value.message


def test_smart_attach_daemon_needs_a_pidfile():
    """`,5 memcached` has a freq but no pidfile; it must not become pidfile ''."""
    with pytest.raises(ValueProblem):
        options.parse_smart_attach_daemon(",5 memcached")


def test_attach_daemon_and_control_daemon():
    plain = options.parse_attach_daemon("  memcached -p 0 ")
    assert (plain.command, plain.mode, plain.control) == ("memcached -p 0", spec.DUMB, False)
    assert not plain.survives_master
    control = options.parse_attach_control_daemon("redis-server")
    assert (control.control, control.option) == (True, "attach-control-daemon")
    with pytest.raises(ValueProblem):
        options.parse_attach_daemon("   ")


# --------------------------------------------------------------------------- build_config


def test_build_config_types_values_and_records_origins(tmp_path):
    config = build_config(entries(
        ("master", "true"),
        ("reload-mercy", "7"),
        ("env", "A=1"),
        ("attach-daemon", "memcached -p 0"),
        ("stats-server", str(tmp_path / "stats.sock")),
    ))
    assert config["master"] is True
    assert config["reload-mercy"] == 7
    assert config["env"] == (("A", "1"),)
    assert config["stats"] == config["stats-server"] == str(tmp_path / "stats.sock")
    assert config.origin("reload-mercy") == at(2)
    assert config.daemons[0].origin == at(4)
    assert config.items("env")[0].raw == "A=1"


def test_defaults_when_unset():
    config = build_config([])
    assert config["reload-mercy"] == 3
    assert config["master"] is False
    assert config["env"] == ()
    assert config["attach-daemon"] == ()
    assert config["pidfile"] is None
    assert config.daemons == ()
    assert not config.is_set("pidfile")
    assert config.origin("pidfile") is None


def test_all_problems_are_reported_at_once():
    errors = problems(
        ("master", "true"),
        ("atach-daemon", "memcached"),
        ("reload-mercy", "soon"),
        ("attach-daemon2", "cmd=x,pidfil=/p"),
        ("unshare", "pid,bogus"),
        ("attach-daemon2", "cmd=x,control=maybe"),
    )
    assert [e.origin for e in errors] == [at(2), at(3), at(4), at(5), at(6)]
    texts = [str(e) for e in errors]
    for n, text in zip((2, 3, 4, 5, 6), texts):
        assert text.startswith(f"app.ini:{n}: "), text
        assert "(hint: " in text, text
    assert texts[0] == ("app.ini:2: unknown option 'atach-daemon' "
                        "(hint: did you mean 'attach-daemon'?)")
    assert texts[1].startswith("app.ini:3: reload-mercy: 'soon' is not a whole number")
    assert texts[2] == ("app.ini:4: attach-daemon2: unknown key 'pidfil' "
                        "(hint: did you mean 'pidfile'?)")
    assert texts[3].startswith("app.ini:5: unshare: unknown namespace 'bogus'")
    assert texts[4].startswith("app.ini:6: attach-daemon2: key 'control'")
    assert [e.option for e in errors[1:]] == ["reload-mercy", "attach-daemon2", "unshare",
                                             "attach-daemon2"]


@pytest.mark.parametrize("typo,meant", [
    ("atach-daemon", "attach-daemon"), ("smart-attach-deamon", "smart-attach-daemon"),
    ("pidfle", "pidfile"), ("relaod-mercy", "reload-mercy"),
])
def test_unknown_option_did_you_mean(typo, meant):
    [error] = problems((typo, "x"))
    assert error.hint == f"did you mean '{meant}'?"
    assert f"'{typo}'" in str(error)


def test_unknown_option_without_a_close_name():
    [error] = problems(("frobnicate-the-widgets", "x"))
    assert error.hint == "see nsuwsgi --help"


@pytest.mark.parametrize("name", ["emperor-broodlord", "hook-as-vassal", "call-as-root", "jail",
                                  "if-env", "legion-smart-attach-daemon"])
def test_refused_options_are_errors(name):
    [error] = problems(("master", "1"), (name, "x"))
    assert error.origin == at(2)
    assert error.option == name
    assert "unsafe" in error.message
    assert error.hint


@pytest.mark.parametrize("name", ["enable-threads", "thunder-lock", "http", "log-date"])
def test_known_uwsgi_options_are_ignored(name):
    assert options.lookup(name) is None and options.is_known_uwsgi(name)
    config = build_config(entries(("master", "1"), (name, "whatever")))
    assert config.ignored == ((name, at(2)),)
    assert name not in config.settings


def test_loader_options_are_not_settings():
    config = build_config(entries(("ini", "other.ini"), ("set-ph", "a=b"), ("master", "1")))
    assert config.settings.keys() == {"master"}
    assert config.ignored == ()


def test_repeatable_options_keep_order():
    config = build_config(entries(("env", "A=1"), ("master", "1"), ("env", "B=2"),
                                  ("env", "A=3")))
    assert config["env"] == (("A", "1"), ("B", "2"), ("A", "3"))
    assert [s.origin.line for s in config.items("env")] == [1, 3, 4]


def test_daemons_across_options_in_entry_order():
    config = build_config(entries(
        ("attach-daemon2", "cmd=second-kind-first"),
        ("attach-daemon", "plain-one"),
        ("smart-attach-daemon", "/tmp/a.pid smart-one"),
        ("attach-control-daemon", "control-one"),
        ("attach-daemon", "plain-two"),
        ("smart-attach-daemon2", "/tmp/b.pid smart2-one"),
        ("attach-daemon2", "cmd=last"),
    ))
    assert [d.command for d in config.daemons] == [
        "second-kind-first", "plain-one", "smart-one", "control-one", "plain-two",
        "smart2-one", "last"]
    assert [d.origin.line for d in config.daemons] == list(range(1, 8))
    assert [d.option for d in config.daemons] == [
        "attach-daemon2", "attach-daemon", "smart-attach-daemon", "attach-control-daemon",
        "attach-daemon", "smart-attach-daemon2", "attach-daemon2"]
    assert config["attach-daemon"] == config.daemons[1:2] + config.daemons[4:5]


def test_scalars_take_the_last_value(tmp_path):
    config = build_config(entries(("reload-mercy", "1"), ("reload-mercy", "9"),
                                  ("pidfile", str(tmp_path / "a.pid")),
                                  ("pidfile", str(tmp_path / "b.pid"))))
    assert config["reload-mercy"] == 9
    assert config.origin("reload-mercy") == at(2)
    assert config["pidfile"] == str(tmp_path / "b.pid")
    assert config.origin("pidfile") == at(4)


def test_config_is_immutable():
    config = build_config(entries(("master", "1")))
    with pytest.raises(AttributeError):
        config.settings = {}            # type: ignore[misc]


JUNK = ["", "abc", "-1", "999", "0x10", "x=y", "\\", ",", "=", "a b", "cmd=", "9" * 40]
SUPPORTED = [o.name for o in options.TABLE
             if o.status == options.SUPPORTED and o.name not in options.LOADER_OPTIONS]


@pytest.mark.parametrize("name", SUPPORTED)
def test_junk_values_give_config_errors_never_tracebacks(name, tmp_path, monkeypatch):
    """Whatever the value, build_config returns a Config or raises ConfigErrors."""
    monkeypatch.chdir(tmp_path)
    for value in JUNK:
        try:
            build_config([Entry(name, value, at(1))])
        except ConfigErrors as errors:
            for error in errors.errors:
                assert str(error).startswith("app.ini:1: "), str(error)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{name} = {value!r} raised {type(exc).__name__}: {exc}")


def test_bad_umask_is_a_config_error():
    [error] = problems(("umask", "999"))
    assert error.option == "umask"
    assert error.origin == at(1)
    assert error.hint


def test_umask_is_octal():
    assert build_config(entries(("umask", "027")))["umask"] == 0o27


# --------------------------------------------------------------------------- validate


def test_pidfile_in_a_missing_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    errors = problems(("master", "1"), ("pidfile", str(missing / "master.pid")),
                      ("attach-daemon2", f"cmd=x,pidfile={missing}/d.pid"),
                      ("smart-attach-daemon", f"{missing}/s.pid memcached"))
    assert [e.origin for e in errors] == [at(2), at(3), at(4)]
    assert [e.option for e in errors] == ["pidfile", "attach-daemon2", "smart-attach-daemon"]
    for error in errors:
        assert "does not exist" in error.message
        assert error.hint == f"create {missing} first, or choose another path"
        assert str(error).startswith(f"app.ini:{error.origin.line}: {error.option}: ")


@pytest.mark.parametrize("option,value", [
    ("attach-daemon2", "cmd=x,pidfile=/tmp/"),
    ("smart-attach-daemon", "/tmp/ memcached"),
    ("smart-attach-daemon2", "/tmp memcached"),
])
def test_daemon_pidfile_that_is_a_directory(option, value):
    [error] = problems(("master", "1"), (option, value))
    assert error.origin == at(2) and error.option == option
    assert "is a directory" in error.message
    assert "hint: name a file" in str(error)


def test_master_pidfile_that_is_a_directory():
    """The master's pidfile gets the same check as a daemon's (it is written at startup)."""
    [error] = problems(("master", "1"), ("pidfile", "/tmp/"))
    assert error.origin == at(2) and error.option == "pidfile"
    assert "directory" in error.message


def test_missing_chdir(tmp_path):
    missing = str(tmp_path / "gone")
    errors = problems(("chdir", missing), ("attach-daemon2", f"cmd=x,chdir={missing}"))
    assert [(e.origin, e.option) for e in errors] == [(at(2), "attach-daemon2"),
                                                      (at(1), "chdir")]
    for error in errors:
        assert missing in error.message and "does not exist" in error.message
        assert error.hint == "create it or fix the path"


def test_logto_daemonize_and_stats_need_their_directories(tmp_path):
    missing = tmp_path / "nope"
    errors = problems(("logto", f"{missing}/log"), ("daemonize", f"{missing}/d.log"),
                      ("stats", f"{missing}/stats.sock"))
    assert sorted((e.origin.line, e.option) for e in errors) == [
        (1, "logto"), (2, "daemonize"), (3, "stats")]


def test_tcp_stats_address_needs_no_directory():
    assert build_config(entries(("stats", "127.0.0.1:0")))["stats"] == "127.0.0.1:0"


def test_ns_pid_is_for_foreground_daemons_only(tmp_path):
    [error] = problems(("attach-daemon2", f"cmd=x,ns_pid=1,pidfile={tmp_path}/x.pid"))
    assert error.origin == at(1) and "ns_pid" in error.message and error.hint


def test_ns_pid_needs_a_root_master(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    [error] = problems(("attach-daemon2", "cmd=x,ns_pid=1"))
    assert "root" in error.message and error.origin == at(1)


def test_valid_paths_pass(tmp_path):
    config = build_config(entries(
        ("pidfile", str(tmp_path / "m.pid")), ("chdir", str(tmp_path)),
        ("attach-daemon2", f"cmd=x,pidfile={tmp_path}/d.pid,chdir={tmp_path}"),
    ))
    assert config.daemons[0].pidfile == f"{tmp_path}/d.pid"


def test_validate_reports_for_an_unprivileged_master(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    errors = problems(("uid", "0"), ("attach-daemon2", "cmd=x,uid=0"))
    assert sorted((e.origin.line, e.option) for e in errors) == [(1, "uid"),
                                                                (2, "attach-daemon2")]
    assert all("root" in e.message for e in errors)


def test_validate_returns_every_problem_as_a_list(tmp_path):
    config = build_config([])
    assert options.validate(config) == []


# --------------------------------------------------------------------------- help


def test_help_mentions_every_supported_option():
    text = options.help_text()
    for opt in options.TABLE:
        if opt.status == options.SUPPORTED:
            for name in (opt.name, *opt.aliases):
                assert f"--{name}" in text, name
            assert opt.help.split()[0] in text


def test_help_does_not_offer_refused_options():
    text = options.help_text()
    for name in ("--emperor-broodlord", "--hook-as-vassal", "--legion"):
        assert name not in text.split()


def test_the_keepers_config_message_round_trips_with_origins(tmp_path):
    """encode_config/decode_config: what a jailed master rebuilds on reload is what the keeper
    read, option by option, with each value's file and line."""
    from nsuwsgi.config import load_config
    from nsuwsgi.options import decode_config, encode_config
    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nset-placeholder = greeting=hello\nhttp-socket = 127.0.0.1:0\n"
                   "env = GREETING=%(greeting)\nprocesses = 3\nuid = 0\n")
    sent = load_config(["--ini", str(ini), "--harakiri", "7"], {}, str(tmp_path))
    got = decode_config(encode_config(sent))
    assert got["processes"] == 3 and got["harakiri"] == 7 and got["uid"] == 0
    assert got["env"] == (("GREETING", "hello"),)
    assert got.placeholders == sent.placeholders
    assert got.files == sent.files
    assert got.origin("processes") == sent.origin("processes")
    assert got.origin("processes").line == 5
    assert got.origin("harakiri").source == "command line"


def test_the_keeper_sends_daemon_users_as_the_numbers_it_resolved(tmp_path):
    """A jail's /etc/passwd may not know the name: a reload inside it must not look it up."""
    import marshal
    from nsuwsgi.config import load_config
    from nsuwsgi.options import decode_config, encode_config
    nobody, nogroup = pwd.getpwnam("nobody"), grp.getgrnam("nogroup")
    sent = load_config(["--attach-daemon2",
                        "cmd=sh -c 'echo a\\,b',uid=nobody,gid=nogroup,stdin"], {}, str(tmp_path))
    entries, _, _ = marshal.loads(encode_config(sent))
    raw = dict((name, raw) for name, raw, *_ in entries)["attach-daemon2"]
    assert f"uid={nobody.pw_uid}" in raw and f"gid={nogroup.gr_gid}" in raw
    assert "nobody" not in raw
    got = decode_config(encode_config(sent)).daemons[0]
    assert (got.uid, got.gid) == (nobody.pw_uid, nogroup.gr_gid)
    assert got.command == sent.daemons[0].command == "sh -c 'echo a,b'"
    assert got.stdin is True
