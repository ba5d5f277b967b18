#!/usr/bin/env bash
# End to end in instructions: what a handshake costs with and without the
# library, counted by valgrind's callgrind instead of timed.
#
# Why: the timed end-to-end pairs (run-bench.sh) move by up to ±30 % on a
# shared VM, far more than the cache's share of a handshake, so they can
# neither show nor refute "the cache is invisible next to the handshake".
# Instruction counts do not depend on what else the machine is doing: the
# same binary and inputs give the same count to a few thousand instructions
# in hundreds of millions.
#
# Method: each workload of bench_hs runs under callgrind with H and 3H
# handshakes per thread, plain libssl (A) and with the library preloaded
# (B). The difference of the two totals divided by 2H × threads is the cost
# of one handshake,
# with program start, certificate loading and the 20,000-session prefill
# cancelled out. The ratio B/A of those per-handshake counts is what the
# cache adds to (or saves from) a handshake.
#
# Instructions are not time: a locked instruction or a cache miss costs
# more than an add. The figure says how much work the library adds, which
# is what the timed pairs cannot resolve; the timed pairs remain the
# measure of speed.
#
# glibc's allocator runs without fast bins here (GLIBC_TUNABLES=
# glibc.malloc.mxfast=0, for A and B alike): with them, some runs of the
# same binary spent about 2 M instructions more in free() merging them
# (malloc_consolidate), depending on where earlier blocks landed, and one
# such run in the H or the 3H count moved a row by up to 1.5 %. Without
# them four runs of one workload differed by 0.18 M instead of 2.1 M.
# INSTR_MALLOC=default keeps glibc's default. Each count is also the median
# of INSTR_RUNS runs (default 3).
#
# Usage: c-tests/bench/run-instr.sh        (all 18 workloads, ~18 min)
#        BENCH_QUICK=1 c-tests/bench/run-instr.sh   (1 thread only)
#        INSTR_RUNS=1 c-tests/bench/run-instr.sh    (one run per count, ~6 min)
# Writes target/bench/instr.md and prints it.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
lib=${SESSCACHE_LIB:-$root/target/release/libsesscache.so}
out=$root/target/bench
prog=$out/bench_hs
quick=${BENCH_QUICK:-0}
runs=${INSTR_RUNS:-3}
malloc_env=(GLIBC_TUNABLES=glibc.malloc.mxfast=0)
[[ ${INSTR_MALLOC:-} == default ]] && malloc_env=()

command -v valgrind > /dev/null || { echo "run-instr: valgrind not found" >&2; exit 2; }
[[ -f $lib ]] || { echo "run-instr: $lib not found (run 'make build')" >&2; exit 2; }
mkdir -p "$out"
${CC:-cc} -O2 -Wall -Wextra -Werror -Iinclude -Ic-tests/bench c-tests/bench/bench_hs.c \
  -o "$prog" -lssl -lcrypto -lpthread

threads=(1 2)
[[ $quick == 1 ]] && threads=(1)

# Total instructions of one run: callgrind prints "Collected : N".
count_once() { # preload(0/1) kind cache threads handshakes
  local pre=$1 kind=$2 cache=$3 t=$4 hs=$5 env=(env "${malloc_env[@]}")
  [[ $pre == 1 ]] && env+=("LD_PRELOAD=$lib")
  local log
  log=$("${env[@]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$prog" "$kind" "$cache" "$t" 20000 "$hs" 2>&1 > /dev/null) || {
    echo "run-instr: bench_hs $kind $cache $t failed (preload=$pre):" >&2
    echo "$log" | tail -n 5 >&2
    exit 1
  }
  echo "$log" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
# The median of $runs runs.
count() { # preload(0/1) kind cache threads handshakes
  local r all=()
  for ((r = 0; r < runs; r++)); do all+=("$(count_once "$@")"); done
  printf '%s\n' "${all[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

rows=()
for kind in full resume12 resume13; do
  # enough handshakes that 2H of them dwarf the few thousand instructions
  # of run-to-run difference, few enough for ~10 s per run under callgrind
  case $kind in full) h=10 ;; resume12) h=100 ;; resume13) h=30 ;; esac
  for cache in internal external both; do
    for t in "${threads[@]}"; do
      per=()
      for pre in 0 1; do
        lo=$(count "$pre" "$kind" "$cache" "$t" "$h")
        hi=$(count "$pre" "$kind" "$cache" "$t" $((3 * h)))
        # HANDSHAKES is per thread
        per+=($(((hi - lo) / (2 * h * t))))
      done
      rows+=("$kind $cache ${t}t|${per[0]}|${per[1]}|$((2 * h * t))")
      echo "  done: hs $kind $cache ${t}t" >&2
    done
  done
done

python3 - "$out/instr.md" "${rows[@]}" <<'PY'
import sys
md, rows = sys.argv[1], sys.argv[2:]
lines = ["| workload | libssl (A) instructions per handshake | sesscache (B) | B/A | B − A | handshakes counted |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
for r in rows:
    name, a, b, n = r.split("|")
    a, b = int(a), int(b)
    lines.append(f"| hs {name} | {a:,} | {b:,} | {b / a:.4f} | {b - a:+,} | {n} |")
text = "\n".join(lines) + "\n"
open(md, "w").write(text)
print(text)
PY
echo "written: $out/instr.md" >&2
