#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs them all.
# Services: the Redis tests start their own redis-server and the PostgreSQL store tests
# their own postgres (real servers, on free loopback ports, in temp dirs); this script
# makes sure the binaries are there, installing them from Debian's packages if absent,
# and does the same for chromium (the dashboard's headless browser test).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

if ! command -v redis-server >/dev/null 2>&1; then
  echo "scripts/test.sh: redis-server not found; installing it from Debian's packages" >&2
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # Debian's package starts a service on :6379 where init exists; the tests use their own.
  fi
fi
command -v redis-server >/dev/null 2>&1 || { echo "scripts/test.sh: redis-server is still missing" >&2; exit 1; }

have_postgres() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if ! have_postgres; then
  echo "scripts/test.sh: PostgreSQL not found; installing it from Debian's packages" >&2
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } \
      || echo "scripts/test.sh: postgresql could not be installed" >&2
    # The tests run their own server (initdb as an unprivileged user when run as root), not Debian's service.
  fi
fi
have_postgres || echo "scripts/test.sh: PostgreSQL is still missing: the PostgreSQL store tests will be skipped" >&2

# The dashboard's browser test drives Debian's headless Chromium (it skips, saying so, without it).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  echo "scripts/test.sh: chromium not found; installing it from Debian's packages" >&2
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; } \
      || echo "scripts/test.sh: chromium could not be installed; the dashboard browser test will skip" >&2
  fi
fi

set +e
python3 -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
