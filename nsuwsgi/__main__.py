"""`python -m nsuwsgi` is the same program as the `nsuwsgi` console command."""

from nsuwsgi.cli import main

raise SystemExit(main())
