#!/usr/bin/env bash
# Sets up everything (Debian packages when root, the virtualenv) and runs every test:
# tests/ (unit + integration, any user) and vm-tests/ (root-only; skipped with a reason
# otherwise), in parallel with pytest-xdist. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
.venv/bin/python -m nsuwsgi.docsgen --check docs/options.md
exec .venv/bin/python -m pytest -n 4 --dist loadgroup -p no:cacheprovider tests vm-tests "$@"
