"""docs/options.md is generated from the option table and must be kept current."""

from collections import Counter
from pathlib import Path

from nsuwsgi import docsgen, options

OPTIONS_MD = Path(__file__).resolve().parent.parent / "docs" / "options.md"


def test_options_md_is_current():
    assert OPTIONS_MD.exists(), f"{OPTIONS_MD} is missing; create it with: {docsgen.REGENERATE}"
    assert OPTIONS_MD.read_text(encoding="utf-8") == docsgen.options_markdown(), (
        f"docs/options.md is stale (nsuwsgi/options.py changed); regenerate it with: "
        f"{docsgen.REGENERATE}")


def test_every_option_has_help():
    missing = [opt.name for opt in options.TABLE if not opt.help.strip()]
    assert not missing, f"options without help text: {missing}"


def test_no_name_or_alias_twice():
    counts = Counter(n for opt in options.TABLE for n in (opt.name, *opt.aliases))
    twice = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"names or aliases used more than once: {twice}"


def test_every_group_and_ignored_name_is_documented():
    text = docsgen.options_markdown()
    for opt in options.TABLE:
        assert f"`{opt.name}`" in text
    ignored = docsgen.ignored_uwsgi_names()
    assert ignored and not set(ignored) & set(options.BY_NAME)
    last_section = " ".join(text.split("## uWSGI options accepted and ignored")[1].split())
    assert ", ".join(ignored) in last_section


def test_check_flags_a_stale_file(tmp_path, capsys):
    current = tmp_path / "options.md"
    current.write_text(docsgen.options_markdown(), encoding="utf-8")
    assert docsgen.main(["--check", str(current)]) == 0
    current.write_text("# old\n", encoding="utf-8")
    assert docsgen.main(["--check", str(current)]) == 1
    assert "stale" in capsys.readouterr().err
    assert docsgen.main(["--check", str(tmp_path / "missing.md")]) == 1
