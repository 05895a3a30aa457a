#!/bin/sh
# Writes 1 MiB before reading any of its stdin, then echoes stdin: a gateway that writes the
# whole body first and reads afterwards deadlocks on this one.
printf 'Content-Type: application/octet-stream\n\n'
head -c 1048576 /dev/zero
cat
