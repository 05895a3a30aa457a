#!/bin/sh
# Prints its environment, its working directory and its arguments.
printf 'Content-Type: text/plain\r\n\r\n'
env
echo "CWD=$(pwd)"
echo "ARGC=$#"
for arg in "$@"; do echo "ARG=$arg"; done
