#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module (every `func FuzzX` in a
# _test.go file) for a short time each, one after the other: `go test -fuzz`
# takes one target per run. CI runs it after the tests (.ci/run); the total
# is about (number of targets) x (FUZZTIME + ~6 s to build and start), 2 min
# for 11 targets once the instrumented builds are cached (a cold cache builds
# every dependency with coverage instrumentation first: config and azure pull
# in the cloud SDKs, many minutes on a busy machine).
#
#   scripts/fuzz.sh                 # every target, FUZZTIME (default 5s) each
#   FUZZTIME=5m scripts/fuzz.sh FuzzRequestBodies   # only the named targets
#
# A failing input is written to the package's testdata/fuzz/<target>/ and
# printed here; commit it there as a regression seed once the bug is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}

failed=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
		continue
	fi
	dir=$(dirname "$file")
	echo "-- $name ($dir, $fuzztime)"
	before=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort || true)
	# -fuzzminimizetime 0: new coverage is not minimized, which Go may
	# still be doing when -fuzztime ends; it then fails the run with a bare
	# "context deadline exceeded" and no failing input (seen in CI). A run
	# that ends that way, with no new input, is tried once more; a real
	# failure writes its input and fails at once.
	run() { go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 0 "./$dir" >"${TMPDIR:-/tmp}/fuzz-$$.log" 2>&1; }
	spurious() {
		grep -q 'context deadline exceeded' "${TMPDIR:-/tmp}/fuzz-$$.log" &&
			[ "$before" = "$(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort || true)" ]
	}
	if ! run && ! { spurious && echo "   (ended by the fuzz deadline without a failing input: again)" && run; }; then
		cat "${TMPDIR:-/tmp}/fuzz-$$.log"
		for f in $(comm -13 <(echo "$before") <(ls "$dir/testdata/fuzz/$name" 2>/dev/null | sort)); do
			echo "failing input $dir/testdata/fuzz/$name/$f:"
			cat "$dir/testdata/fuzz/$name/$f"
		done
		failed=1
	else
		tail -n 3 "${TMPDIR:-/tmp}/fuzz-$$.log" | grep -E 'execs|^ok' | tail -n 2 || true
	fi
done < <(git grep -nE '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go')
rm -f "${TMPDIR:-/tmp}/fuzz-$$.log"
exit $failed
