#!/usr/bin/env bash
# The shared-memory store's benchmarks (BENCHMARKS.md, in make bench):
#  1. bench_shm: a resumption served from another process's session (the
#     store) against one served from the process's own cache, TLS 1.2 and
#     1.3, 1 and 2 threads; pairs of fresh processes, own and other in
#     alternating order, both preloaded with SESSCACHE_STORE=shm. Reported: the medians and the
#     median of the per-pair ratios other/own (target >= 0.97).
#     With valgrind present, the same in instructions per resumption
#     (callgrind, only the resumption threads counted, 1 thread): a count
#     the machine's other load does not move, against timed pairs that move
#     by tens of per cent on a shared machine.
#  2. store_bench: the store's lookup and publish latency (p50, p99, ns)
#     and, for shm, the shard lock hold time, beside a Redis store on
#     127.0.0.1 (a redis-server started here on a free port, stopped at the
#     end). Median over RUNS runs of each figure.
#
#   c-tests/bench/run-shm-bench.sh
#   BENCH_QUICK=1 c-tests/bench/run-shm-bench.sh    3 pairs, 500 sessions
#   BENCH_SHM_PAIRS=9 BENCH_SHM_SESSIONS=2000 ...
#
# Needs target/release/libsesscache.so (make build); writes the tables to
# stdout and target/bench/shm.md, raw lines to target/bench/shm-raw.txt.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
lib=${SESSCACHE_LIB:-$root/target/release/libsesscache.so}
out=$root/target/bench
cc=${CC:-cc}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  pairs=${BENCH_SHM_PAIRS:-3}; sessions=${BENCH_SHM_SESSIONS:-500}; runs=3; ops=5000
else
  pairs=${BENCH_SHM_PAIRS:-7}; sessions=${BENCH_SHM_SESSIONS:-1000}; runs=5; ops=10000
fi
[[ -f $lib ]] || { echo "run-shm-bench: $lib not found (run 'make build')" >&2; exit 2; }
mkdir -p "$out"
$cc -O2 -Wall -Wextra -Werror -Iinclude -Ic-tests/bench c-tests/bench/bench_shm.c \
  -o "$out/bench_shm" -lssl -lcrypto -lpthread
cargo build --release --quiet --features store-bench --example store_bench
store_bench=$root/target/release/examples/store_bench
raw=$out/shm-raw.txt
: >"$raw"

REDIS_PID=
cleanup() { [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

shm_run() { # own|other KIND THREADS -> "WALL CPU" resumptions/s
  LD_PRELOAD=$lib SESSCACHE_STORE=shm SESSCACHE_STORE_SIZE=64m "$out/bench_shm" "$@" "$sessions" |
    awk -F= '$1 == "ops_per_s" { w = $2 } $1 == "cpu_ops_per_s" { c = $2 } END { if (w == "") exit 1; print w, c }'
}

echo "# $(uname -srm); nproc $(nproc); $(openssl version); load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"
echo "# pairs $pairs of $sessions sessions; store runs $runs of $ops ops; git $(git rev-parse --short HEAD 2>/dev/null || echo none); $(date -u +%FT%TZ)" >>"$raw"
for kind in resume12 resume13; do
  for t in 1 2; do
    shm_run own "$kind" "$t" >/dev/null; shm_run other "$kind" "$t" >/dev/null   # warm-up pair
    for ((p = 1; p <= pairs; p++)); do
      # the order alternates, so that a drift of the machine's load within
      # a pair favours neither side
      if ((p % 2)); then
        a=$(shm_run own "$kind" "$t"); b=$(shm_run other "$kind" "$t")
      else
        b=$(shm_run other "$kind" "$t"); a=$(shm_run own "$kind" "$t")
      fi
      printf 'hs\t%s %st\t%s\t%s\n' "$kind" "$t" "$a" "$b" >>"$raw"
    done
    echo "  done: $kind ${t}t" >&2
  done
done

# Instructions of the resumptions of one run (callgrind prints a
# "Collected" line per process; the child that made the sessions counts 0).
instr() { # own|other KIND SESSIONS
  GLIBC_TUNABLES=glibc.malloc.mxfast=0 LD_PRELOAD=$lib SESSCACHE_STORE=shm SESSCACHE_STORE_SIZE=64m \
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
    --toggle-collect=resume "$out/bench_shm" "$1" "$2" 1 "$3" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | sort -n | tail -n 1
}
if command -v valgrind >/dev/null; then
  for kind in resume12 resume13; do
    n=$([[ $kind == resume12 ]] && echo 100 || echo 50)
    printf 'instr\t%s\t%s\t%s\t%s\n' "$kind" "$n" "$(instr own "$kind" "$n")" "$(instr other "$kind" "$n")" >>"$raw"
  done
  echo "  done: instructions" >&2
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$port" --daemonize no \
  --protected-mode yes >"$out/shm-bench-redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 100); do
  [[ $(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null) == PONG ]] && break
  sleep 0.05
done
for store in shm "redis://127.0.0.1:$port"; do
  for t in 1 2; do
    for ((r = 1; r <= runs; r++)); do
      printf 'ops\t%s\n' "$("$store_bench" "$store" "$t" "$ops" 300 2>/dev/null)" >>"$raw"
      [[ $store == redis* ]] && redis-cli -h 127.0.0.1 -p "$port" FLUSHALL >/dev/null
    done
  done
done

python3 - "$raw" "$out/shm.md" <<'PY'
import sys, statistics as st
raw, md = sys.argv[1], sys.argv[2]
hs, ops, header, instr = {}, {}, [], []
for line in open(raw):
    if line.startswith("#"):
        header.append(line.strip("# \n")); continue
    f = line.rstrip("\n").split("\t")
    if f[0] == "hs":
        (aw, ac), (bw, bc) = (map(float, x.split()) for x in f[2:4])
        hs.setdefault(f[1], []).append((aw, bw, ac, bc))
    elif f[0] == "instr":
        instr.append((f[1], int(f[2]), int(f[3]), int(f[4])))
    elif f[0] == "ops" and "=" in f[1]:
        d = dict(x.split("=", 1) for x in f[1].split())
        ops.setdefault((d["store"], d["threads"]), []).append(d)
lines = ["| workload | own cache resumptions/s | from another process | other/own (median of pair ratios) | range | per CPU-second: own | other | other/own | range | pairs |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name, pairs in hs.items():
    r = [b / a for a, b, _, _ in pairs]
    rc = [bc / ac for _, _, ac, bc in pairs]
    m = lambda i: st.median(p[i] for p in pairs)
    lines.append(f"| {name} | {m(0):,.0f} | {m(1):,.0f} | {st.median(r):.3f} | {min(r):.3f}–{max(r):.3f} | "
                 f"{m(2):,.0f} | {m(3):,.0f} | {st.median(rc):.3f} | {min(rc):.3f}–{max(rc):.3f} | {len(pairs)} |")
if instr:
    lines += ["", "| workload (1 thread, callgrind) | own cache instructions per resumption | from another process | own/other |",
              "| --- | ---: | ---: | ---: |"]
    for kind, n, a, b in instr:
        lines.append(f"| {kind} | {a / n:,.0f} | {b / n:,.0f} | {a / b:.3f} |")
lines += ["", "| store | threads | lookup p50 ns | lookup p99 ns | publish p50 ns | publish p99 ns | lock hold p50 ns | lock hold p99 ns | hits of lookups | runs |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
def med(runs, k):
    v = [r[k] for r in runs]
    return "-" if "-" in v else f"{st.median(float(x) for x in v):,.0f}"
for (store, t), runs in ops.items():
    hits = min(int(r["hits"]) for r in runs)
    lines.append(f"| {store} | {t} | " + " | ".join(med(runs, k) for k in
                 ("lookup_p50_ns", "lookup_p99_ns", "publish_p50_ns", "publish_p99_ns", "lock_hold_p50_ns", "lock_hold_p99_ns"))
                 + f" | {hits} of {runs[0]['ops']} (min) | {len(runs)} |")
text = "\n".join(["<!-- " + h + " -->" for h in header] + [""] + lines) + "\n"
open(md, "w").write(text)
print(text)
PY
echo "written: $out/shm.md (raw: $raw)" >&2
