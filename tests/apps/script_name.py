"""uWSGI's t/python/manage_script_name/useless_app.py: answers with SCRIPT_NAME.

(uWSGI's returns a str, which PEP 3333 forbids; this one returns bytes.) PATH_INFO follows a
"|" so the tests can check both.
"""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(environ["SCRIPT_NAME"] + "|" + environ["PATH_INFO"]).encode("latin-1")]


def other(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"other:" + environ["SCRIPT_NAME"].encode("latin-1")]
