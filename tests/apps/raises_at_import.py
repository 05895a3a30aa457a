"""An app whose import fails: the error must carry this file's traceback."""


def helper():
    raise RuntimeError("database is not configured")


helper()
