"""Our replacements for email.utils.formatdate and urllib.parse.unquote_to_bytes.

The worker avoids importing those modules (about 20 ms of a cold start), so the replacements
must agree with them exactly.
"""

from email.utils import formatdate
from urllib.parse import unquote_to_bytes as stdlib_unquote

from hypothesis import given, strategies as st

from nsuwsgi.server.wsgi import http_date, unquote_to_bytes


@given(st.integers(min_value=0, max_value=2**33))
def test_http_date_matches_formatdate(seconds):
    assert http_date(seconds) == formatdate(seconds, usegmt=True)


@given(st.binary(max_size=40))
def test_unquote_matches_urllib_on_any_bytes(data):
    assert unquote_to_bytes(data) == stdlib_unquote(data)


@given(st.lists(st.sampled_from([b"%", b"%2", b"%2f", b"%2F", b"%zz", b"a", b"/", b"%%41"]),
                max_size=12))
def test_unquote_matches_urllib_on_escape_heavy_input(parts):
    data = b"".join(parts)
    assert unquote_to_bytes(data) == stdlib_unquote(data)
