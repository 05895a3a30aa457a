#!/bin/sh
# Echoes the request body after saying how long it was announced to be.
printf 'Content-Type: application/octet-stream\n\n'
printf 'CONTENT_LENGTH=%s\n' "$CONTENT_LENGTH"
cat
