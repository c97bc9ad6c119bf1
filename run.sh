#!/usr/bin/env bash
# botify's one entry point.
#   ./run.sh [--plan NAME] [...]   run a plan end to end (default: the seed experiment: day 0,
#                                  day 1, the A/B day, the report; options: ./run.sh experiment --help)
#   ./run.sh plans                 list the plans (conf/plans/) with a line each
#   ./run.sh compare [--plan NAME] a leaderboard of recorded runs (MLflow)
#   ./run.sh calibrate --plan NAME [--replications N] [--scale S] [--run runs/<id>] [--day D]
#                                  each analysis method's coverage, A/A false positives, power
#                                  and bias over replications of the plan's simulated A/B day;
#                                  an interleaved day's sign agreement and users for power
#   ./run.sh test [pytest args]    the test suite against a private HDFS + Redis on free ports
#                                  (./run.sh test -m "not slow": the quick part, no JVM)
#   ./run.sh up | down | status    the local stack for a person at the keyboard (HDFS, Redis, service)
# Every command first sets itself up: .venv with the project, Hadoop jars (Maven), redis-server (apt).
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "error: $*" >&2; exit 2; }

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
        [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))'; then
            echo "$candidate"; return 0
        fi
    done
    die "Python 3.11 or 3.12 not found: install it, or point PYTHON at one."
}

setup_venv() {
    if [ ! -x .venv/bin/python ]; then
        echo "creating .venv ..."
        "$(find_python)" -m venv .venv || die "could not create .venv (on Debian: apt-get install -y python3-venv)"
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    local stamp=.venv/.botify-installed want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "installing botify and its dependencies into .venv ..."
        if ! { .venv/bin/python -m pip install -q --upgrade pip &&
               .venv/bin/python -m pip install -q -e '.[test]'; } > .venv/pip-install.log 2>&1; then
            tail -n 30 .venv/pip-install.log >&2
            die "pip install failed (full log: .venv/pip-install.log)"
        fi
        echo "$want" > "$stamp"
    fi
}

setup_redis() {
    command -v redis-server >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "redis-server not found: install it (sudo apt-get install -y redis-server)"
    echo "installing redis-server with apt ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
        || die "apt-get could not install redis-server"
}

setup() {
    setup_venv
    setup_redis
    .venv/bin/python -m infra fetch >/dev/null
}

command=${1:-experiment}
case "$command" in -h|--help) command=help ;; esac
case "$command" in
    test)
        shift
        setup
        # The first test that needs HDFS or Redis starts them on free ports (tests/conftest.py);
        # they stop with pytest, however it ends.
        exec .venv/bin/python -m pytest "$@"
        ;;
    up)
        shift
        setup
        exec .venv/bin/python -m infra up "$@"
        ;;
    plans|compare)
        setup_venv
        exec .venv/bin/python -m pipeline "$@"
        ;;
    calibrate)
        shift
        setup
        exec .venv/bin/python -m pipeline.calibrate "$@"
        ;;
    down|status)
        [ -x .venv/bin/python ] || die "no .venv yet: nothing was started here"
        exec .venv/bin/python -m infra "$command"
        ;;
    experiment|--*)
        if [ "$command" = experiment ] && [ $# -gt 0 ]; then shift; fi
        setup
        exec .venv/bin/python -m pipeline "$@"
        ;;
    help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command '$command' (try ./run.sh --help)"
        ;;
esac
