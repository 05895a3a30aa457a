"""The stats server answers with the whole JSON document, however large (an Emperor with a
thousand vassals), and a client that never reads costs the loop a bounded time."""

import socket
import threading
import time

from nsuwsgi.stats import SEND_TIMEOUT, read_stats, serve_one


def listener_at(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    return sock


def test_an_answer_larger_than_the_socket_buffer_arrives_whole(tmp_path):
    path = str(tmp_path / "stats.sock")
    big = {"vassals": [{"id": f"vassal{i}.ini", "status": "x" * 200} for i in range(5000)]}
    got = {}
    with listener_at(path) as listener:
        reader = threading.Thread(target=lambda: got.update(read_stats(path, timeout=10)))
        reader.start()
        serve_one(listener, lambda: big)
        reader.join(15)
    assert got == big


def test_a_client_that_never_reads_is_given_up_after_the_send_timeout(tmp_path):
    path = str(tmp_path / "stats.sock")
    big = {"blob": "x" * (8 << 20)}
    with listener_at(path) as listener, socket.socket(socket.AF_UNIX) as idle_client:
        idle_client.connect(path)
        started = time.monotonic()
        serve_one(listener, lambda: big)
        took = time.monotonic() - started
    # A bound on a hang, not a performance figure: without the send timeout this never returns.
    assert took < SEND_TIMEOUT + 10
