"""A tiny socket-activation launcher, as systemd's service manager passes sockets.

    python listen_fds_launcher.py NAME=PATH [NAME=PATH...] -- PROGRAM ARGS...

Binds and listens on each unix socket PATH, puts them on fds 3, 4, ... in order, sets
LISTEN_FDS, LISTEN_FDNAMES (the NAMEs) and LISTEN_PID (our own pid, which the program keeps
because we exec it), and execs PROGRAM. The sockets' files stay behind, as systemd's do.
"""

import os
import socket
import sys


def main(argv: list[str]) -> None:
    split = argv.index("--")
    specs, program = argv[:split], argv[split + 1:]
    socks = []
    for spec in specs:
        _, _, path = spec.partition("=")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(16)
        socks.append(sock)
    high = [os.dup2(sock.fileno(), 100 + i) for i, sock in enumerate(socks)]
    for sock in socks:                      # fds 3... are free for the passed ones now
        sock.close()
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i)                  # dup2 makes the copy inheritable
        os.close(fd)
    names = [spec.partition("=")[0] for spec in specs]
    os.environ.update(LISTEN_FDS=str(len(socks)), LISTEN_FDNAMES=":".join(names),
                      LISTEN_PID=str(os.getpid()))
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
