"""Configuration loaders: argv, environment, ini, JSON and YAML, with uWSGI's substitutions.

Loaders only produce raw entries (key, value, origin) in uWSGI's order; typing and validation
happen once, in options.build_config. Keeping the two apart means every loader reports errors
with the same file:line precision and no loader needs to know what an option means.

Contract used by the CLI:
    load(argv, environ, cwd) -> Loaded(entries, placeholders, files)
    load_config(argv, environ, cwd) -> options.Config        (raises ConfigErrors)
"""
