"""Writes the request corpus: tests/corpus/http/{valid,invalid}/*.txt, tests/corpus/uwsgi/
{valid,invalid}/*.bin and the expected results next to them (expected.json).

The corpus files are raw bytes (CRLF kept; .gitattributes marks them -text). This script is
how they were made and how to add one: add an entry below and run

    .venv/bin/python tests/corpus/build_corpus.py

The expectations are written by hand here, not produced by the parser under test.

http/expected.json:
  valid:   {"file": {"requests": [request...], "limits": {...}?}}
           request = method, target, version, headers [[name, value]...], keep_alive,
           chunked, content_length, expect_continue, body (bytes as latin-1 text)
  invalid: {"file": {"status": N, "complete": K, "limits": {...}?}}: K whole requests
           (through End) come before the error.
uwsgi/expected.json: the same, with "vars" instead of the HTTP fields.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def req(method="GET", target="/", version="HTTP/1.1", headers=(), keep_alive=True,
        chunked=False, content_length=None, expect_continue=False, body=""):
    return {"method": method, "target": target, "version": version,
            "headers": [list(h) for h in headers], "keep_alive": keep_alive,
            "chunked": chunked, "content_length": content_length,
            "expect_continue": expect_continue, "body": body}


BROWSER_HEADERS = [
    ("Host", "example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=abc; theme=dark"),
    ("cookie", "second=1"),
    ("X-Empty", ""),
    ("X-Trailing-Space", "value"),
    ("Upgrade-Insecure-Requests", "1"),
]
BROWSER = ("GET /static/app.js?v=3&x=%20y HTTP/1.1\r\n"
           "Host: example.com\r\n"
           "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 "
           "Firefox/120.0\r\n"
           "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
           "Accept-Language: en-US,en;q=0.5\r\n"
           "Accept-Encoding: gzip, deflate, br\r\n"
           "Connection: keep-alive\r\n"
           "Cookie: session=abc; theme=dark\r\n"
           "cookie: second=1\r\n"
           "X-Empty:\r\n"
           "X-Trailing-Space: value  \t\r\n"
           "Upgrade-Insecure-Requests:1\r\n"
           "\r\n")

BINARY = "".join(chr(i) for i in range(256)) + "\r\n\r\n0\r\n\r\n" + "x" * 700
HEAD_AT_LIMIT = "GET /limit HTTP/1.1\r\nHost: a\r\nX-Pad: " + "p" * 40 + "\r\n\r\n"

VALID = {
    "get_minimal": ("GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                    [req(headers=[("Host", "a")])]),
    "get_no_headers": ("GET /x HTTP/1.1\r\n\r\n", [req(target="/x")]),
    "get_http10": ("GET /old HTTP/1.0\r\n\r\n",
                   [req(target="/old", version="HTTP/1.0", keep_alive=False)]),
    "get_http10_keepalive": (
        "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
        [req(version="HTTP/1.0", headers=[("Connection", "Keep-Alive")]),
         req(target="/2", version="HTTP/1.0", keep_alive=False)]),
    "get_close_then_ignored": (
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n",
        [req(headers=[("Connection", "close")], keep_alive=False)]),
    "get_connection_list_close": (
        "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
        [req(headers=[("Connection", "keep-alive, close")], keep_alive=False)]),
    "get_absolute_form": ("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n",
                          [req(target="http://example.com:8080/a/b?c=d",
                               headers=[("Host", "x")])]),
    "options_star": ("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
                     [req("OPTIONS", "*", headers=[("Host", "x")])]),
    "get_percent_target": ("GET /caf%C3%A9/%2F?q=a+b&r=%00 HTTP/1.1\r\n\r\n",
                           [req(target="/caf%C3%A9/%2F?q=a+b&r=%00")]),
    "get_fragment": ("GET /a#frag HTTP/1.1\r\n\r\n", [req(target="/a#frag")]),
    "head_method": ("HEAD /h HTTP/1.1\r\n\r\n", [req("HEAD", "/h")]),
    "delete_method": ("DELETE /d HTTP/1.1\r\n\r\n", [req("DELETE", "/d")]),
    "browser": (BROWSER, [req(target="/static/app.js?v=3&x=%20y", headers=BROWSER_HEADERS)]),
    "header_8bit_value": ("GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n",
                          [req(headers=[("X-Name", "caf\xc3\xa9 \xff")])]),
    "header_value_inner_spaces": ("GET / HTTP/1.1\r\nX:   a  b  \r\n\r\n",
                                  [req(headers=[("X", "a  b")])]),
    "post_content_length": (
        "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        [req("POST", "/form", headers=[("Host", "a"), ("Content-Length", "11")],
             content_length=11, body="hello world")]),
    "post_content_length_zero": (
        "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        [req("POST", headers=[("Content-Length", "0")], content_length=0)]),
    "post_content_length_leading_zeros": (
        "PUT / HTTP/1.1\r\ncontent-length: 003\r\n\r\nabc",
        [req("PUT", headers=[("content-length", "003")], content_length=3, body="abc")]),
    "post_binary_body": (
        "POST /bin HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(BINARY), BINARY),
        [req("POST", "/bin", headers=[("Content-Length", str(len(BINARY)))],
             content_length=len(BINARY), body=BINARY)]),
    "post_chunked": (
        "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        [req("POST", "/up", headers=[("Transfer-Encoding", "chunked")], chunked=True,
             body="hello world")]),
    "post_chunked_ext_trailers": (
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;name=value;flag\r\nhello\r\n"
        "A;q=\"quoted string\"\r\n0123456789\r\n"
        "0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n",
        [req("POST", headers=[("Transfer-Encoding", "chunked")], chunked=True,
             body="hello0123456789")]),
    "post_chunked_crlf_in_data": (
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "b\r\n\r\n\r\n0\r\n\r\nab\r\n4\r\n\r\n\r\n\r\n0\r\n\r\n",
        [req("POST", headers=[("Transfer-Encoding", "chunked")], chunked=True,
             body="\r\n\r\n0\r\n\r\nab\r\n\r\n")]),
    "post_chunked_leading_zeros_upper_hex": (
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "000A\r\n0123456789\r\n00\r\n\r\n",
        [req("POST", headers=[("Transfer-Encoding", "chunked")], chunked=True,
             body="0123456789")]),
    "post_chunked_mixed_case": (
        "POST / HTTP/1.1\r\nTRANSFER-ENCODING: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        [req("POST", headers=[("TRANSFER-ENCODING", "Chunked")], chunked=True, body="x")]),
    "post_te_gzip_chunked": (
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n",
        [req("POST", headers=[("Transfer-Encoding", "gzip, chunked")], chunked=True,
             body="\x1f\x8b\x08")]),
    "post_te_two_fields": (
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        [req("POST", headers=[("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")],
             chunked=True)]),
    "expect_continue": (
        "POST /big HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\ndata",
        [req("POST", "/big", headers=[("Expect", "100-Continue"), ("Content-Length", "4")],
             content_length=4, expect_continue=True, body="data")]),
    "expect_continue_http10_ignored": (
        "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
        [req("POST", version="HTTP/1.0", headers=[("Expect", "100-continue"),
                                                   ("Content-Length", "1")],
             keep_alive=False, content_length=1, body="z")]),
    "pipelined_three": (
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        "GET /3 HTTP/1.1\r\nConnection: close\r\n\r\n"
        "GET /4-ignored HTTP/1.1\r\n\r\n",
        [req(target="/1", headers=[("Host", "a")]),
         req("POST", "/2", headers=[("Content-Length", "3")], content_length=3, body="abc"),
         req(target="/3", headers=[("Connection", "close")], keep_alive=False)]),
    "pipelined_after_chunked": (
        "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nT: 1\r\n\r\n"
        "GET /next HTTP/1.1\r\n\r\n",
        [req("POST", "/c", headers=[("Transfer-Encoding", "chunked")], chunked=True,
             body="ok"),
         req(target="/next")]),
    "keepalive_empty_lines_between": (
        "GET /1 HTTP/1.1\r\n\r\n\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        [req(target="/1"), req(target="/2")]),
    "upgrade_websocket": (
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        [req(target="/ws", headers=[("Host", "a"), ("Connection", "Upgrade"),
                                    ("Upgrade", "websocket"),
                                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                    ("Sec-WebSocket-Version", "13")],
             keep_alive=False)]),
    "upgrade_h2c_with_body": (
        "POST /u HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 5\r\n\r\nhelloPRI * HTTP/2.0",
        [req("POST", "/u", headers=[("Connection", "Upgrade, HTTP2-Settings"),
                                    ("Upgrade", "h2c"),
                                    ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
                                    ("Content-Length", "5")],
             keep_alive=False, content_length=5, body="hello")]),
    "upgrade_chunked_body": (
        "POST /u HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nafter",
        [req("POST", "/u", headers=[("Connection", "upgrade"), ("Upgrade", "x"),
                                    ("Transfer-Encoding", "chunked")],
             keep_alive=False, chunked=True, body="abc")]),
    "upgrade_header_without_connection": (
        "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        [req(headers=[("Upgrade", "websocket")]), req(target="/2")]),
    "connect": ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01",
                [req("CONNECT", "example.com:443", headers=[("Host", "example.com:443")],
                     keep_alive=False)]),
    "leading_empty_lines": ("\r\n\r\nGET / HTTP/1.1\r\n\r\n", [req()]),
    "head_at_limit": (HEAD_AT_LIMIT,
                      [req(target="/limit", headers=[("Host", "a"), ("X-Pad", "p" * 40)])],
                      {"buffer_size": len(HEAD_AT_LIMIT)}),
    "body_at_max_body": ("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
                         [req("POST", headers=[("Content-Length", "4")], content_length=4,
                              body="abcd")],
                         {"max_body": 4}),
    "chunked_at_max_body": (
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n",
        [req("POST", headers=[("Transfer-Encoding", "chunked")], chunked=True, body="abcd")],
        {"max_body": 4}),
}

LONG_URL = "GET /" + "u" * 100 + " HTTP/1.1\r\n\r\n"
INVALID = {
    "space_before_colon": ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, 0),
    "tab_before_colon": ("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, 0),
    "obs_fold": ("GET / HTTP/1.1\r\nX-Long: a\r\n  continued\r\n\r\n", 400, 0),
    "obs_fold_tab": ("GET / HTTP/1.1\r\nX-Long: a\r\n\tcontinued\r\n\r\n", 400, 0),
    "line_starts_with_space": ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, 0),
    "bare_lf": ("GET / HTTP/1.1\nHost: a\n\n", 400, 0),
    "bare_lf_end_of_head": ("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, 0),
    "cr_in_value": ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, 0),
    "ctl_in_value": ("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, 0),
    "nul_in_value": ("GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, 0),
    "empty_header_name": ("GET / HTTP/1.1\r\n: a\r\n\r\n", 400, 0),
    "header_without_colon": ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, 0),
    "bad_header_name_char": ("GET / HTTP/1.1\r\nX(y): a\r\n\r\n", 400, 0),
    "cl_and_te": ("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\n", 400, 0),
    "te_and_cl": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                  "0\r\n\r\n", 400, 0),
    "duplicate_cl_differing": ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
                               "\r\nab", 400, 0),
    "duplicate_cl_equal": ("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"
                           "ab", 400, 0),
    "cl_list": ("POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab", 400, 0),
    "cl_negative": ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, 0),
    "cl_plus": ("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na", 400, 0),
    "cl_hex": ("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400, 0),
    "cl_overflow": ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                    400, 0),
    "te_gzip_only": ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400, 0),
    "te_chunked_then_gzip": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                             "0\r\n\r\n", 400, 0),
    "te_identity": ("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400, 0),
    "te_chunked_twice": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                         "0\r\n\r\n", 400, 0),
    "method_lowercase": ("get / HTTP/1.1\r\n\r\n", 400, 0),
    "method_unknown": ("FROB / HTTP/1.1\r\n\r\n", 400, 0),
    "target_with_space": ("GET /a b HTTP/1.1\r\n\r\n", 400, 0),
    "target_ctl": ("GET /a\x7fb HTTP/1.1\r\n\r\n", 400, 0),
    "target_8bit": ("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400, 0),
    "http_09": ("GET /\r\n\r\n", 505, 0),
    "http_20": ("GET / HTTP/2.0\r\n\r\n", 505, 0),
    "http_12": ("GET / HTTP/1.2\r\n\r\n", 400, 0),
    "http_lowercase": ("GET / http/1.1\r\n\r\n", 400, 0),
    "h2_preface": ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, 0),
    "tls_client_hello": ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\x00" * 40, 400, 0),
    "chunk_size_space": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5 \r\nhello\r\n0\r\n\r\n", 400, 0),
    "chunk_size_0x": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "0x5\r\nhello\r\n0\r\n\r\n", 400, 0),
    "chunk_size_negative": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "-5\r\nhello\r\n0\r\n\r\n", 400, 0),
    "chunk_size_overflow": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "fffffffffffffffff\r\n", 400, 0),
    "chunk_size_missing": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "\r\nhello\r\n0\r\n\r\n", 400, 0),
    "chunk_data_too_long": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "3\r\nhello\r\n0\r\n\r\n", 400, 0),
    "chunk_bare_lf": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\nhello\n0\n\n", 400, 0),
    "chunk_end_bare_lf": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n0\r\n\n", 400, 0),
    "chunk_ext_space": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5; a=b\r\nhello\r\n0\r\n\r\n", 400, 0),
    "trailer_obs_fold": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "0\r\nX: a\r\n b\r\n\r\n", 400, 0),
    "trailer_content_length": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "0\r\nContent-Length: 5\r\n\r\n", 400, 0),
    "smuggle_cl_te_pipelined": (
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\nG", 400, 0),
    "smuggle_te_obfuscated": (
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n"
        "0\r\n\r\n", 400, 0),
    "good_then_bad": ("GET /ok HTTP/1.1\r\n\r\nPOST /ok2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
                      "GET /bad HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, 2),
    "good_then_chunked_error": (
        "GET /ok HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nokX\r\n", 400, 1),
    "head_over_limit": ("GET /limit HTTP/1.1\r\nHost: a\r\nX-Pad: " + "p" * 40 + "\r\n\r\n",
                        431, 0, {"buffer_size": len(HEAD_AT_LIMIT) - 1}),
    "head_never_ends": ("GET / HTTP/1.1\r\n" + "X: y\r\n" * 100, 431, 0, {"buffer_size": 256}),
    "url_over_limit": (LONG_URL, 414, 0, {"buffer_size": 64}),
    "url_over_limit_after_empty_lines": ("\r\n\r\n" + LONG_URL, 414, 0, {"buffer_size": 64}),
    "head_over_limit_pipelined": (
        "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nX: " + "y" * 80 + "\r\n\r\n",
        431, 1, {"buffer_size": 64}),
    "empty_lines_over_limit": ("\r\n" * 40 + "GET / HTTP/1.1\r\n\r\n", 400, 0,
                               {"buffer_size": 64}),
    "chunk_line_too_long": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5;" + "e" * 80 + "\r\nhello\r\n0\r\n\r\n", 400, 0,
                            {"buffer_size": 64}),
    "trailers_too_long": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "0\r\n" + "T: x\r\n" * 20 + "\r\n", 431, 0, {"buffer_size": 64}),
    "cl_over_max_body": ("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", 413, 0,
                         {"max_body": 4}),
    "chunked_over_max_body": ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n", 413, 0, {"max_body": 4}),
}


def uwsgi_packet(pairs, modifier1=0, modifier2=0, size=None) -> bytes:
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                     for k, v in ((k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs))
    return struct.pack("<BHB", modifier1, len(block) if size is None else size,
                       modifier2) + block


def nginx_vars(method="GET", uri="/hello?x=1", body_len="", ctype=""):
    """What nginx's uwsgi_params (Debian's /etc/nginx/uwsgi_params) send, in that order."""
    path, _, query = uri.partition("?")
    return [("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ctype),
            ("CONTENT_LENGTH", body_len), ("REQUEST_URI", uri), ("PATH_INFO", path),
            ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_PORT", "51234"), ("SERVER_PORT", "80"), ("SERVER_NAME", "localhost"),
            ("HTTP_HOST", "localhost"), ("HTTP_USER_AGENT", "curl/7.88.1"),
            ("HTTP_ACCEPT", "*/*")]


POST_BODY = '{"name": "caf\xe9", "n": 1}'
UWSGI_VALID = {
    "nginx_get": (uwsgi_packet(nginx_vars()), nginx_vars(), ""),
    "nginx_post": (uwsgi_packet(nginx_vars("POST", "/api", str(len(POST_BODY)),
                                           "application/json"))
                   + POST_BODY.encode("latin-1"),
                   nginx_vars("POST", "/api", str(len(POST_BODY)), "application/json"),
                   POST_BODY),
    "empty_vars": (uwsgi_packet([]), [], ""),
    "empty_key_and_value": (uwsgi_packet([("", ""), ("K", "")]), [("", ""), ("K", "")], ""),
    "latin1_values": (uwsgi_packet([("PATH_INFO", "/caf\xe9"), ("X", "\x00\xff")]),
                      [("PATH_INFO", "/caf\xe9"), ("X", "\x00\xff")], ""),
    "duplicate_key_last_wins": (uwsgi_packet([("A", "1"), ("A", "2")]), [("A", "2")], ""),
    "bytes_after_body_ignored": (uwsgi_packet([("CONTENT_LENGTH", "3")]) + b"abcEXTRA",
                                 [("CONTENT_LENGTH", "3")], "abc"),
}
UWSGI_INVALID = {
    "modifier1_9": (uwsgi_packet(nginx_vars(), modifier1=9), 400),
    "block_over_buffer_size": (uwsgi_packet([("K", "v" * 5000)]), 400),
    "size_larger_than_vars": (uwsgi_packet([("K", "v")], size=9) + b"\x00" * 3, 400),
    "key_length_past_end": (struct.pack("<BHB", 0, 4, 0) + b"\x09\x00ab", 400),
    "value_length_past_end": (struct.pack("<BHB", 0, 7, 0) + b"\x01\x00K\x09\x00ab", 400),
    "odd_trailing_byte": (struct.pack("<BHB", 0, 7, 0) + b"\x01\x00K\x01\x00v\x00", 400),
    "content_length_not_a_number": (uwsgi_packet([("CONTENT_LENGTH", "12a")]), 400),
    "content_length_negative": (uwsgi_packet([("CONTENT_LENGTH", "-1")]), 400),
    "content_length_spaces": (uwsgi_packet([("CONTENT_LENGTH", " 1")]), 400),
    "content_length_superscript": (uwsgi_packet([("CONTENT_LENGTH", "\xb2")]), 400),
}


def main():
    for sub in ("http/valid", "http/invalid", "uwsgi/valid", "uwsgi/invalid"):
        (HERE / sub).mkdir(parents=True, exist_ok=True)
        for old in (HERE / sub).iterdir():
            old.unlink()
    expected = {"valid": {}, "invalid": {}}
    for name, entry in VALID.items():
        raw, requests = entry[0], entry[1]
        (HERE / "http/valid" / f"{name}.txt").write_bytes(raw.encode("latin-1"))
        record = {"requests": requests}
        if len(entry) > 2:
            record["limits"] = entry[2]
        expected["valid"][f"{name}.txt"] = record
    for name, entry in INVALID.items():
        raw, status, complete = entry[:3]
        (HERE / "http/invalid" / f"{name}.txt").write_bytes(raw.encode("latin-1"))
        record = {"status": status, "complete": complete}
        if len(entry) > 3:
            record["limits"] = entry[3]
        expected["invalid"][f"{name}.txt"] = record
    (HERE / "http/expected.json").write_text(json.dumps(expected, indent=1) + "\n")

    uexpected = {"valid": {}, "invalid": {}}
    for name, (raw, pairs, body) in UWSGI_VALID.items():
        (HERE / "uwsgi/valid" / f"{name}.bin").write_bytes(raw)
        uexpected["valid"][f"{name}.bin"] = {"vars": dict(pairs), "body": body}
    for name, (raw, status) in UWSGI_INVALID.items():
        (HERE / "uwsgi/invalid" / f"{name}.bin").write_bytes(raw)
        uexpected["invalid"][f"{name}.bin"] = {"status": status}
    (HERE / "uwsgi/expected.json").write_text(json.dumps(uexpected, indent=1) + "\n")


if __name__ == "__main__":
    main()
