#!/bin/sh
# Run the test suite as on a noisy or slower host, and say how each run went
# and how long it took. The suite must pass in every one of them.
#
#   benchmarks/noisy_host.sh plain [N]  `make test` N times in a row (default 3)
#   benchmarks/noisy_host.sh hog        `make test` with a busy loop pinned to one core
#   benchmarks/noisy_host.sh slow       `make test` with Python about half as fast
#                                       (every process: the suite and its servers)
#   benchmarks/noisy_host.sh reverse    the test files in reverse order (order dependence)
#   benchmarks/noisy_host.sh all        plain 3, hog, slow, reverse
#
# The hog is bounded (`timeout`, 900 s) and stopped by its PID when the run
# ends. DNSBL_SLOW_PYTHON sets how slow "slow" is (1: about half speed, 3:
# about a quarter); see benchmarks/slow_python/sitecustomize.py. Each run's
# output is kept in a log file, named in the summary line.
set -u

cd "$(dirname "$0")/.." || exit 2
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/noisy_host.XXXXXX")
FAILED=0
HOG=""

stop_hog() {
    if [ -n "$HOG" ]; then
        kill "$HOG" 2>/dev/null
        wait "$HOG" 2>/dev/null
        HOG=""
    fi
}
trap 'stop_hog' EXIT
trap 'stop_hog; exit 130' INT TERM

# run LABEL COMMAND...: one run, its outcome and duration on one line.
run() {
    label=$1
    shift
    log="$LOGS/$(echo "$label" | tr -c 'a-zA-Z0-9\n' '-').log"
    started=$(date +%s)
    "$@" >"$log" 2>&1
    status=$?
    took=$(( $(date +%s) - started ))
    summary=$(grep -E '(passed|failed|error)' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then outcome=PASS; else outcome=FAIL; FAILED=1; fi
    echo "$outcome  ${took}s  $label: ${summary:-no summary} ($log)"
}

plain() {
    count=${1:-3}
    i=1
    while [ "$i" -le "$count" ]; do
        run "make test, run $i of $count" make test
        i=$((i + 1))
    done
}

hog() {
    core=$(( $(nproc) - 1 ))
    taskset -c "$core" timeout 900 sh -c 'while :; do :; done' &
    HOG=$!
    run "make test, CPU hog on core $core" make test
    stop_hog
}

slow() {
    run "make test, Python slowed (DNSBL_SLOW_PYTHON=${DNSBL_SLOW_PYTHON:-1})" \
        env PYTHONPATH="$PWD/benchmarks/slow_python" \
        DNSBL_SLOW_PYTHON="${DNSBL_SLOW_PYTHON:-1}" make test
}

reverse() {
    make .venv/.installed >/dev/null || exit 2
    # shellcheck disable=SC2046  # one argument per file: the names have no spaces
    run "test files in reverse order" .venv/bin/python -m pytest -q $(ls tests/test_*.py | sort -r)
}

case "${1:-all}" in
    plain) plain "${2:-3}" ;;
    hog) hog ;;
    slow) slow ;;
    reverse) reverse ;;
    all) plain 3; hog; slow; reverse ;;
    *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
exit "$FAILED"
