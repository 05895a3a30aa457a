#!/usr/bin/python3
"""A tiny client the systemd container tests run inside the container, with its own python3.

    client http HOST:PORT|/unix/path PATH      -> prints the HTTP status code, then the body
    client uwsgi /unix/path PATH               -> the same, over the uwsgi protocol
    client stats /unix/path                    -> the stats server's JSON

nginx is what would speak the uwsgi protocol in production; this is the smallest honest peer
that needs nothing beyond the standard library inside the container.
"""

import socket
import struct
import sys


def connect(address: str) -> socket.socket:
    if address.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(20)
        sock.connect(address)
        return sock
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def uwsgi_packet(path: str) -> bytes:
    query = ""
    if "?" in path:
        path, query = path.split("?", 1)
    variables = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path,
                 "QUERY_STRING": query, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
                 "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost", "SCRIPT_NAME": ""}
    body = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                    for k, v in variables.items())
    return struct.pack("<BHB", 0, len(body), 0) + body


def show_response(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    print(status[1].decode() if len(status) > 1 else "none")
    sys.stdout.write(body.decode(errors="replace"))


def main(argv: list[str]) -> int:
    command, address = argv[0], argv[1]
    with connect(address) as sock:
        if command == "http":
            path = argv[2]
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                         .encode())
            show_response(read_all(sock))
        elif command == "uwsgi":
            sock.sendall(uwsgi_packet(argv[2]))
            show_response(read_all(sock))
        elif command == "stats":
            sys.stdout.write(read_all(sock).decode())
        else:
            print(f"unknown command {command}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
