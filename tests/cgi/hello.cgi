#!/bin/sh
# uWSGI's t/cgi/hello.cgi (t/runner: test_cgi_helloworld).
echo "Content-Type: text/plain"
echo
echo "Hello world!"
echo "PATH_INFO=$PATH_INFO"
