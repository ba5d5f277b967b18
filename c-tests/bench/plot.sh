#!/usr/bin/env bash
# Draws the benchmark figures (PNG, gnuplot) from one run's results:
#
#   c-tests/bench/plot.sh [DIR]    (default target/bench)
#
# reads DIR/summary.tsv (run-bench.sh) and, if present,
# DIR/nginx-resumption.tsv (nginx-resumption.sh), and writes into DIR:
#   insert-ooo.png         out-of-order insert, ns per insert against
#                          cached sessions (log-log), libssl and sesscache
#   lookup-threads.png     lookups per second with 1 and 2 threads
#   nginx-resumption.png   returning clients resumed, by nginx workers
set -euo pipefail

DIR="${1:-target/bench}"
SUMMARY="$DIR/summary.tsv"
[ -f "$SUMMARY" ] || { echo "plot: $SUMMARY not found (run c-tests/bench/run-bench.sh)" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-plot.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
STYLE='set terminal pngcairo size 900,560 font "DejaVu Sans,12"; set grid; set key top left box opaque'

# rows WORKLOAD-PREFIX: "sessions a_median b_median" for rows "PREFIX <sessions>".
rows() {
    awk -F'\t' -v p="$1 " '!/^#/ && index($1, p) == 1 { n = substr($1, length(p) + 1); if (n ~ /^[0-9]+$/) print n, $3, $4 }' "$SUMMARY" | sort -n
}

rows insert_ooo >"$TMP/ooo"
if [ -s "$TMP/ooo" ]; then
    gnuplot <<EOF
$STYLE
set output "$DIR/insert-ooo.png"
set title "SSL_CTX_add_session of a session as old as the oldest cached" noenhanced
set logscale xy
set xrange [500:2e6]
set format x "10^{%L}"; set format y "10^{%L}"
set xlabel "sessions cached"; set ylabel "ns per insert (median)"
plot "$TMP/ooo" using 1:2 with linespoints lw 2 pt 7 title "libssl 3.0", \
     "" using 1:3 with linespoints lw 2 pt 5 title "sesscache"
EOF
fi

rows "lookup 1t" >"$TMP/l1"
rows "lookup 2t" >"$TMP/l2"
if [ -s "$TMP/l1" ] && [ -s "$TMP/l2" ]; then
    # lookups per second of all threads: 1e9 / (wall ns per lookup) / 1e6
    join "$TMP/l1" "$TMP/l2" | awk '{ printf "%s %.2f %.2f %.2f %.2f\n", ($1 >= 1e6 ? $1 / 1e6 "M" : $1 / 1e3 "k"), 1e3 / $2, 1e3 / $4, 1e3 / $3, 1e3 / $5 }' >"$TMP/lookup"
    gnuplot <<EOF
$STYLE
set output "$DIR/lookup-threads.png"
set title "SSL_has_matching_session_id hits, one SSL_CTX" noenhanced
set key below horizontal
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.85 border -1
set boxwidth 0.9; set yrange [0:*]; set grid noxtics
set ylabel "million lookups per second (all threads)"; set xlabel "sessions cached" offset 0,0.6
plot "$TMP/lookup" using 2:xtic(1) title "libssl, 1 thread" lc rgb "#9ecae1", \
     "" using 3 title "libssl, 2 threads" lc rgb "#3182bd", \
     "" using 4 title "sesscache, 1 thread" lc rgb "#fdae6b", \
     "" using 5 title "sesscache, 2 threads" lc rgb "#e6550d"
EOF
fi

NGINX="$DIR/nginx-resumption.tsv"
if [ -f "$NGINX" ]; then
    # One line per TLS version and worker count: the rate of each setup in
    # the order the file first names them.
    awk -F'\t' '!/^#/ && $1 != "protocol" { key = $1 " " $2; if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
                   if (!($3 in col)) { col[$3] = ++nc; names[nc] = $3 }
                   rate[key, $3] = 100 * $4 / $5 }
         END { printf "setup"; for (c = 1; c <= nc; c++) printf " %s", names[c]; print ""
               for (k = 1; k <= nk; k++) { split(keys[k], f, " "); printf "\"TLS %s, %s worker(s)\"", f[1], f[2]
                   for (c = 1; c <= nc; c++) printf " %s", ((keys[k], names[c]) in rate) ? rate[keys[k], names[c]] : "NaN"; print "" } }' \
        "$NGINX" >"$TMP/nginx"
    setups="$(head -n 1 "$TMP/nginx" | wc -w)"
    gnuplot <<EOF
$STYLE
set output "$DIR/nginx-resumption.png"
set title "nginx 1.22, ssl_session_cache builtin: returning clients resumed" noenhanced
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.85 border -1
set boxwidth 0.9; set yrange [0:105]; set grid noxtics; set key below horizontal
set ylabel "% of connections resumed"; set xtics rotate by -25
plot for [c=2:$setups] "$TMP/nginx" using c:xtic(1) title columnheader(c)
EOF
fi
ls "$DIR"/*.png 2>/dev/null || true
