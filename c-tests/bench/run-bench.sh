#!/usr/bin/env bash
# A/B benchmarks of sesscache against the machine's libssl (see BENCHMARKS.md).
#
# Every workload runs as: one warm-up pair, then PAIRS pairs, each pair being
# plain libssl (A) then LD_PRELOAD=libsesscache.so (B). Reported: the median
# of A, the median of B and the median of the per-pair ratios B/A, so that a
# machine whose speed drifts affects A and B alike. Two end-to-end rows
# ending in "A/A" are controls with plain libssl on both sides.
#
#   c-tests/bench/run-bench.sh            full run (about 25 minutes on 2 cores)
#   BENCH_QUICK=1 c-tests/bench/run-bench.sh   sanity run (fewer sizes/pairs)
#   BENCH_PAIRS=7 BENCH_ONLY=lookup ...   more pairs / only workloads matching
#   BENCH_SKIP="hs " ...                  leave out workloads matching
#   BENCH_HS_PAIRS=15 ...                 pairs for the end-to-end workloads (default 31)
#   c-tests/bench/run-bench.sh --report   only summarise target/bench/raw.tsv
#
# Needs target/release/libsesscache.so (make build). Writes the table to
# stdout and to target/bench/results.md, the same rows tab-separated to
# target/bench/summary.tsv (for plot.sh); raw numbers to target/bench/raw.tsv.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
lib=${SESSCACHE_LIB:-$root/target/release/libsesscache.so}
out=$root/target/bench
cc=${CC:-cc}
quick=${BENCH_QUICK:-0}
only=${BENCH_ONLY:-}
skip=${BENCH_SKIP:-}

[[ -f $lib ]] || { echo "run-bench: $lib not found (run 'make build')" >&2; exit 2; }
mkdir -p "$out"
for prog in bench_cache bench_hs bench_scale; do
  $cc -O2 -Wall -Wextra -Werror -Iinclude -Ic-tests/bench "c-tests/bench/$prog.c" \
    -o "$out/$prog" -lssl -lcrypto -lpthread
done

if [[ $quick == 1 ]]; then
  pairs=${BENCH_PAIRS:-3}
  hs_pairs=$pairs
  sizes=(1000 100000)
  mem_sizes=(100000)
  hs_threads=(1)
else
  pairs=${BENCH_PAIRS:-5}
  # End to end the cache is a fraction of a percent of a handshake, and
  # single pairs here range from about 0.6 to 1.6: with 9 pairs the medians
  # moved between 0.93 and 1.12 from run to run, with 31 between 0.97 and
  # 1.03 (about 8 minutes for the 18 workloads).
  hs_pairs=${BENCH_HS_PAIRS:-31}
  sizes=(1000 20000 100000 1000000)
  mem_sizes=(100000 1000000)
  hs_threads=(1 2)
fi

# name|command (relative to $out)
workloads=()
for n in "${sizes[@]}"; do
  workloads+=("insert $n|bench_cache insert $n")
  workloads+=("insert_full $n|bench_cache insert_full $n")
  workloads+=("insert_ooo $n|bench_cache insert_ooo $n")
  workloads+=("lookup 1t $n|bench_cache lookup $n 1")
  workloads+=("lookup 2t $n|bench_cache lookup $n 2")
  workloads+=("remove $n|bench_cache remove $n")
  workloads+=("flush $n|bench_cache flush $n")
done
for n in "${mem_sizes[@]}"; do
  workloads+=("memory $n|bench_cache memory $n")
  workloads+=("memory_churn $n|bench_cache memory_churn $n")
  workloads+=("churn_worst $n|bench_cache churn_worst $n")
done
hs_count() { [[ $1 == resume12 ]] && echo 3000 || ([[ $1 == full ]] && echo 400 || echo 1500); }
for kind in full resume12 resume13; do
  hs=$(hs_count $kind)
  [[ $quick == 1 ]] && hs=$((hs / 3))
  for cache in internal external both; do
    for t in "${hs_threads[@]}"; do
      workloads+=("hs $kind $cache ${t}t|bench_hs $kind $cache $t 20000 $hs")
    done
  done
done
# Controls: plain libssl on both sides of every pair ("A/A"), one 1-thread
# and one 2-thread workload. Their medians show how far from 1.0 a row of
# this run falls when nothing differs, the resolution the end-to-end
# target has to be read against.
for t in "${hs_threads[@]}"; do
  kind=$([[ $t == 1 ]] && echo resume12 || echo resume13)
  cache=$([[ $t == 1 ]] && echo internal || echo both)
  hs=$(hs_count $kind)
  [[ $quick == 1 ]] && hs=$((hs / 3))
  workloads+=("hs $kind $cache ${t}t A/A|bench_hs $kind $cache $t 20000 $hs")
done

# The last "metric=value" line a program prints.
run_one() { # preload(0/1) command...
  local pre=$1; shift
  local line
  if [[ $pre == 1 ]]; then
    line=$(LD_PRELOAD=$lib "$out/$@" | tail -n 1)
  else
    line=$("$out/$@" | tail -n 1)
  fi
  [[ $line == *=* ]] || { echo "run-bench: no result from '$*'" >&2; exit 1; }
  echo "$line"
}

raw=$out/raw.tsv
if [[ ${1:-} == --report ]]; then
  skip_runs=1   # only summarise an existing target/bench/raw.tsv
else
  skip_runs=0
  : > "$raw"
fi
[[ $skip_runs == 1 ]] || {
  echo "# uname: $(uname -srm); nproc: $(nproc); $(openssl version)"
  echo "# pairs: $pairs, end to end $hs_pairs (+1 warm-up each); quick: $quick; started $(date -u +%FT%TZ)"
  echo "# library: $lib; git HEAD at the start: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
  # The yardsticks for 2-thread figures: two threads sharing nothing.
  for t in 1 2 1 2 1 2; do
    printf 'machine\t%s\t%s\n' "${t}t" "$("$out/bench_scale" "$t" | tail -n 1)"
  done
  # What the public API alone costs an insert and a removal (plain libssl,
  # three runs per size): the floor under any cache outside libssl.
  for n in "${sizes[@]}"; do
    for r in 1 2 3; do
      printf 'floor\t%s\t%s\n' "$n" "$("$out/bench_cache" api_floor "$n" | grep -E '_floor(_store)?_ns=' | tr '\n' '\t')"
    done
  done
} >> "$raw"
# Next to each 2-thread lookup pair, the yardsticks of that size (what they
# measure changes within minutes here): wide for every size, dram from 100k
# sessions on, where lookups wait on memory and page walks.
yardsticks() { # yardsticks SESSIONS
  local kind t
  for kind in wide dram; do
    [[ $kind == dram && $1 -lt 100000 ]] && continue
    for t in 1 2; do
      printf 'machine\t%s %s@%s\t%s\n' "$kind" "${t}t" "$1" \
        "$("$out/bench_scale" "$t" "$([[ $kind == wide ]] && echo 50000000 || echo 3000000)" "$kind" | tail -n 1)"
    done
  done >> "$raw"
}
# And each 2-thread lookup pair also runs the 1-thread lookup on both sides,
# so that the 2-thread scaling is a median of ratios taken within a minute.
scale_pair() { # scale_pair SESSIONS PAIR A2 B2
  local a1 b1
  a1=$(run_one 0 bench_cache lookup "$1" 1); b1=$(run_one 1 bench_cache lookup "$1" 1)
  printf 'scale\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$a1" "$3" "$b1" "$4" >> "$raw"
}
echo "sesscache A/B benchmark: $pairs pairs ($hs_pairs end to end) + 1 warm-up per workload; A = libssl, B = sesscache" >&2
for w in "${workloads[@]}"; do
  [[ $skip_runs == 1 ]] && break
  name=${w%%|*}; cmd=${w#*|}
  [[ -n $only && $name != *$only* ]] && continue
  [[ -n $skip && $name == *$skip* ]] && continue
  b_preload=1
  [[ $name == *" A/A" ]] && b_preload=0   # a control: libssl on both sides
  # shellcheck disable=SC2086
  run_one 0 $cmd > /dev/null; run_one $b_preload $cmd > /dev/null   # warm-up pair
  n_pairs=$pairs
  [[ $name == hs* ]] && n_pairs=$hs_pairs
  for ((p = 1; p <= n_pairs; p++)); do
    [[ $name == "lookup 2t"* ]] && yardsticks "${name##* }"
    # shellcheck disable=SC2086
    a=$(run_one 0 $cmd); b=$(run_one $b_preload $cmd)
    printf '%s\t%s\t%s\t%s\n' "$name" "$p" "$a" "$b" >> "$raw"
    [[ $name == "lookup 2t"* ]] && scale_pair "${name##* }" "$p" "$a" "$b"
  done
  echo "  done: $name" >&2
done

python3 - "$raw" "$out/results.md" "$out/summary.tsv" <<'PY'
import sys, statistics as st
from math import comb
raw, md, tsv = sys.argv[1], sys.argv[2], sys.argv[3]
rows, order, header = {}, [], []
machine = {"1t": [], "2t": [], "wide 1t": [], "wide 2t": []}
scale = {}   # sessions -> [(a1, a2, b1, b2)] ns per lookup, one per pair
floors = {}  # sessions -> [{"insert_floor_ns": x, "remove_floor_ns": y}]
for line in open(raw):
    if line.startswith("#"):
        header.append(line.strip("# \n")); continue
    if line.startswith("machine\t"):
        _, t, v = line.rstrip("\n").split("\t")
        if "@" in t:   # "wide 1t@1000": also counted under "wide 1t"
            machine.setdefault(t, []).append(float(v.split("=")[1]))
            t = t.split("@")[0]
        machine.setdefault(t, []).append(float(v.split("=")[1])); continue
    if line.startswith("floor\t"):
        f = line.rstrip("\n").rstrip("\t").split("\t")
        floors.setdefault(f[1], []).append({k: float(v) for k, v in (x.split("=") for x in f[2:])})
        continue
    if line.startswith("scale\t"):
        f = line.rstrip("\n").split("\t")
        scale.setdefault(f[1], []).append(tuple(float(x.split("=")[1]) for x in f[3:7]))
        continue
    name, _, a, b = line.rstrip("\n").split("\t")
    metric, av = a.split("="); _, bv = b.split("=")
    if name not in rows:
        rows[name] = (metric, []); order.append(name)
    rows[name][1].append((float(av), float(bv)))
def rfmt(r):
    return f"{r:.3f}" if r >= 0.01 else f"{r:.1e}"
def median_bounds(xs):
    # Distribution-free: [x(j+1), x(n-j)] holds the true median with
    # probability 1 - 2 P(Bin(n, 1/2) <= j); the narrowest with >= 95 %
    # (the whole range, and its coverage, below 6 pairs).
    s, n = sorted(xs), len(xs)
    cover = lambda j: 1 - 2 * sum(comb(n, i) for i in range(j + 1)) / 2 ** n
    j = 0
    while j + 1 < n // 2 and cover(j + 1) >= 0.95:
        j += 1
    return s[j], s[n - 1 - j], (cover(j) if n > 1 else 0.0)
def median_interval(xs):
    lo, hi, c = median_bounds(xs)
    text = f"{rfmt(lo)}–{rfmt(hi)}"
    return text if c >= 0.95 else f"{text} ({c:.0%})"
def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}" if v < 10 else f"{v:.1f}"
# The same rows, machine-readable, for c-tests/bench/plot.sh.
summary = ["\t".join(["workload", "metric", "a_median", "b_median", "ratio_median",
                      "ratio_ci_low", "ratio_ci_high", "ratio_min", "ratio_max", "pairs"])]
lines = ["| workload | metric | libssl (A) median | sesscache (B) median | B/A (median of pair ratios) | 95 % interval of that median | B/A range | pairs |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for name in order:
    metric, pairs = rows[name]
    a = st.median(p[0] for p in pairs); b = st.median(p[1] for p in pairs)
    ratios = [p[1] / p[0] for p in pairs]
    r = st.median(ratios)
    spread = f"{rfmt(min(ratios))}–{rfmt(max(ratios))}"
    lines.append(f"| {name} | {metric} | {fmt(a)} | {fmt(b)} | {rfmt(r)} | {median_interval(ratios)} | {spread} | {len(pairs)} |")
    lo, hi, _ = median_bounds(ratios)
    summary.append("\t".join([name, metric] + [f"{v:.6g}" for v in (a, b, r, lo, hi, min(ratios), max(ratios))]
                             + [str(len(pairs))]))
if any(name.endswith(" A/A") for name in order):
    lines += ["", "Rows ending in A/A are controls: plain libssl on both sides of every pair."]
# 2-thread lookup scaling: 1-thread ns per lookup / 2-thread ns per lookup
# (both are wall time over all lookups), from the medians of each side.
scaling = []
for name in order:
    if name.startswith("lookup 1t "):
        n = name.split()[-1]; two = f"lookup 2t {n}"
        if two in rows:
            one_p, two_p = rows[name][1], rows[two][1]
            sa = st.median(p[0] for p in one_p) / st.median(p[0] for p in two_p)
            sb = st.median(p[1] for p in one_p) / st.median(p[1] for p in two_p)
            scaling.append(f"| {n} | {sa:.2f}x | {sb:.2f}x |")
if scaling:
    lines += ["", "2-thread lookup throughput / 1-thread (medians):", "",
              "| sessions | libssl | sesscache |", "| ---: | ---: | ---: |"] + scaling
if machine["1t"] and machine["2t"]:
    m = st.median(machine["2t"]) / st.median(machine["1t"])
    lines += ["", f"Machine yardstick (bench_scale chain, two threads sharing nothing): {m:.2f}x one thread."]
if machine["wide 1t"] and machine["wide 2t"]:
    # one 1t and one 2t sample per 2-thread lookup pair, in that order
    w = [b / a for a, b in zip(machine["wide 1t"], machine["wide 2t"])]
    lines += [f"Wide yardstick (bench_scale wide, next to each 2-thread lookup pair): "
              f"median {st.median(w):.2f}x one thread, range {min(w):.2f}x-{max(w):.2f}x over {len(w)} samples."]
def ratio_cell(v):
    return f"{st.median(v):.2f}x ({min(v):.2f}-{max(v):.2f})" if v else "-"
def yard(kind, n):
    one, two = machine.get(f"{kind} 1t@{n}", []), machine.get(f"{kind} 2t@{n}", [])
    return ratio_cell([b / a for a, b in zip(one, two)])
if scale:
    lines += ["", "2-thread lookup scaling per pair (1-thread ns / 2-thread ns, both runs within the same minute; "
              "median of the pairs, range) next to the yardsticks of that size (2-thread / 1-thread ops):", "",
              "| sessions | libssl | sesscache | wide yardstick | dram yardstick |",
              "| ---: | ---: | ---: | ---: | ---: |"]
    for n in sorted(scale, key=int):
        s = scale[n]
        lines.append(f"| {n} | {ratio_cell([a1 / a2 for a1, a2, _, _ in s])} | "
                     f"{ratio_cell([b1 / b2 for _, _, b1, b2 in s])} | {yard('wide', n)} | {yard('dram', n)} |")
if floors:
    lines += ["", "The public-API floor (`bench_cache api_floor`, plain libssl, median of 3 runs): what any cache "
              "outside libssl must call per insert (up_ref, 4 getters) and per removal (2 getters, "
              "SSL_CTX_remove_session on an empty ctx to mark the session not resumable, free), "
              "against the target's budget (target ratio x libssl's median in this run). The removal "
              "floor in brackets leaves the marking call out: sesscache marks with a store of its own "
              "once libssl has shown where its flag is (README):", "",
              "| sessions | insert floor ns | insert budget (0.6 x libssl) ns | left for the cache ns | "
              "remove floor ns (without marking) | remove budget (0.7 x libssl) ns | left for the cache ns (without marking) |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in sorted(floors, key=int):
        fi = st.median(x["insert_floor_ns"] for x in floors[n])
        fr = st.median(x["remove_floor_ns"] for x in floors[n])
        fs = st.median(x.get("remove_floor_store_ns", float("nan")) for x in floors[n])
        def budget(name, k):
            if name not in rows: return None
            return k * st.median(p[0] for p in rows[name][1])
        bi, br = budget(f"insert {n}", 0.6), budget(f"remove {n}", 0.7)
        c = lambda v: "-" if v is None else f"{v:.1f}"
        lines.append(f"| {n} | {fi:.1f} | {c(bi)} | {c(None if bi is None else bi - fi)} | "
                     f"{fr:.1f} ({fs:.1f}) | {c(br)} | {c(None if br is None else br - fr)} "
                     f"({c(None if br is None else br - fs)}) |")
text = "\n".join(["<!-- " + h + " -->" for h in header] + [""] + lines) + "\n"
open(md, "w").write(text)
open(tsv, "w").write("".join(f"# {h}\n" for h in header) + "\n".join(summary) + "\n")
print(text)
PY
echo "written: $out/results.md, $out/summary.tsv (raw: $raw)" >&2
