# PASS/FAIL lines and their count, for every shell test runner: sourced, not
# run. A runner ends with `finish`, which prints "N passed, M failed" and
# returns nonzero when anything failed.

PASSED=0
FAILED=0

# pass WHAT... / fail WHAT...: one PASS or FAIL line, counted.
pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# verdict NAME STATUS NUMBERS: "PASS NAME: NUMBERS" when STATUS is 0, else
# the same as a FAIL line.
verdict() { if [ "$2" = 0 ]; then pass "$1: $3"; else fail "$1: $3"; fi; }

# pass_unless PROBLEMS WHAT: PASS WHAT when PROBLEMS is empty, else FAIL
# WHAT followed by PROBLEMS.
pass_unless() { if [ -z "$1" ]; then pass "$2"; else fail "$2$1"; fi; }

# finish: the count; status 0 exactly when nothing failed.
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" = 0 ]; }
