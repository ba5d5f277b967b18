//! The stats file in the Prometheus text exposition format, for
//! node_exporter's textfile collector: every counter as
//! `sesscache_<what>_total{pid="…"}`, the cached sessions as a gauge and the
//! not-resumable marking mode as an info metric, each with `# HELP` and
//! `# TYPE` lines. Every metric counts sessions or lookups, which have no
//! base unit, so no name carries a unit suffix.

/// How one `name=value` line of the stats file is exposed.
struct Metric {
    stat: &'static str,
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A word, exposed as a `mode` label on a gauge of value 1.
    Info,
}

const METRICS: [Metric; 22] = [
    counter(
        "adds",
        "sesscache_sessions_added_total",
        "Sessions that entered the cache.",
    ),
    counter(
        "replaces",
        "sesscache_sessions_replaced_total",
        "Cached sessions dropped for a different session with the same ID.",
    ),
    counter(
        "hits",
        "sesscache_lookup_hits_total",
        "Server lookups found in the cache.",
    ),
    counter(
        "misses",
        "sesscache_lookup_misses_total",
        "Server lookups not found in the cache.",
    ),
    counter(
        "callback_hits",
        "sesscache_callback_hits_total",
        "Lookups answered by the application's get callback.",
    ),
    counter(
        "store_lookups_served",
        "sesscache_store_lookups_served_total",
        "Lookups missed in the cache and answered by the shared store.",
    ),
    counter(
        "removes",
        "sesscache_sessions_removed_total",
        "Sessions removed by SSL_CTX_remove_session.",
    ),
    counter(
        "evictions",
        "sesscache_sessions_evicted_total",
        "Sessions pushed out because the cache was full.",
    ),
    counter(
        "expired",
        "sesscache_sessions_expired_total",
        "Sessions removed by a flush because they had expired.",
    ),
    counter(
        "flushed",
        "sesscache_sessions_flushed_total",
        "Sessions removed by a flush of everything.",
    ),
    counter(
        "ctx_freed",
        "sesscache_sessions_ctx_freed_total",
        "Sessions removed because their SSL_CTX was freed.",
    ),
    Metric {
        stat: "sessions",
        name: "sesscache_sessions",
        kind: Kind::Gauge,
        help: "Sessions cached in the process.",
    },
    Metric {
        stat: "not_resumable_marking",
        name: "sesscache_not_resumable_marking_info",
        kind: Kind::Info,
        help: "How removed sessions are marked not resumable (libssl, learning or store_at_OFFSET).",
    },
    counter(
        "store_hits",
        "sesscache_store_hits_total",
        "Store lookups that found a usable session (announced ones included).",
    ),
    counter(
        "store_misses",
        "sesscache_store_misses_total",
        "Store lookups that found no usable session (none, or expired).",
    ),
    counter(
        "store_errors",
        "sesscache_store_errors_total",
        "Store operations that failed, timed out or could not be prepared.",
    ),
    counter(
        "store_rejected",
        "sesscache_store_rejected_total",
        "Store entries rejected as tampered, unknown-key, other-context or malformed.",
    ),
    counter(
        "store_dropped",
        "sesscache_store_dropped_total",
        "Store changes dropped because the queue was full.",
    ),
    counter(
        "store_writes",
        "sesscache_store_writes_total",
        "Sessions written to the store.",
    ),
    counter(
        "store_deletes",
        "sesscache_store_deletes_total",
        "Sessions deleted from the store.",
    ),
    counter(
        "store_pushes",
        "sesscache_store_pushes_total",
        "Announcements received from other processes.",
    ),
    counter(
        "store_pool_hits",
        "sesscache_store_pool_hits_total",
        "Lookups answered by the pool of announced sessions.",
    ),
];

const fn counter(stat: &'static str, name: &'static str, help: &'static str) -> Metric {
    Metric {
        stat,
        name,
        kind: Kind::Counter,
        help,
    }
}

/// A word fit for a label value without escaping.
fn is_word(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The Prometheus text for a stats file's `name=value` lines (`pid=` gives
/// the label). Lines it does not know, or whose value is not of the
/// metric's kind, are left out.
pub fn render(stats: &str) -> String {
    let value_of = |stat: &str| {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(stat)?.strip_prefix('='))
    };
    let Some(pid) = value_of("pid").filter(|p| p.parse::<u32>().is_ok()) else {
        return String::new();
    };
    let mut out = String::new();
    for metric in &METRICS {
        let Some(value) = value_of(metric.stat) else {
            continue;
        };
        let sample = match metric.kind {
            Kind::Counter | Kind::Gauge if value.parse::<u64>().is_ok() => {
                format!("{}{{pid=\"{pid}\"}} {value}\n", metric.name)
            }
            Kind::Info if is_word(value) => {
                format!("{}{{pid=\"{pid}\",mode=\"{value}\"}} 1\n", metric.name)
            }
            _ => continue,
        };
        let kind = if metric.kind == Kind::Counter {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} {kind}\n",
            metric.name, metric.help, metric.name
        ));
        out.push_str(&sample);
    }
    out
}

/// The stats-file line each metric is read from (for the test, above
/// diagnostics, that every line the file can hold has one).
#[cfg(test)]
pub(crate) fn metric_stats() -> Vec<&'static str> {
    METRICS.iter().map(|m| m.stat).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_the_marking_mode() {
        let text =
            render("pid=42\nhits=7\nmisses=3\nsessions=5\nnot_resumable_marking=store_at_324\n");
        assert_eq!(
            text,
            "# HELP sesscache_lookup_hits_total Server lookups found in the cache.\n\
             # TYPE sesscache_lookup_hits_total counter\n\
             sesscache_lookup_hits_total{pid=\"42\"} 7\n\
             # HELP sesscache_lookup_misses_total Server lookups not found in the cache.\n\
             # TYPE sesscache_lookup_misses_total counter\n\
             sesscache_lookup_misses_total{pid=\"42\"} 3\n\
             # HELP sesscache_sessions Sessions cached in the process.\n\
             # TYPE sesscache_sessions gauge\n\
             sesscache_sessions{pid=\"42\"} 5\n\
             # HELP sesscache_not_resumable_marking_info How removed sessions are marked not \
             resumable (libssl, learning or store_at_OFFSET).\n\
             # TYPE sesscache_not_resumable_marking_info gauge\n\
             sesscache_not_resumable_marking_info{pid=\"42\",mode=\"store_at_324\"} 1\n"
        );
    }

    #[test]
    fn names_follow_the_conventions() {
        for metric in &METRICS {
            assert!(metric.name.starts_with("sesscache_"), "{}", metric.name);
            assert!(
                metric
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}",
                metric.name
            );
            assert_eq!(
                metric.kind == Kind::Info,
                metric.name.ends_with("_info"),
                "{}",
                metric.name
            );
        }
    }

    #[test]
    fn bad_values_and_unknown_lines_are_left_out() {
        let text = render(
            "pid=9\nhits=-1\nmisses=1e3\nadds=18446744073709551616\nsessions=\n\
             not_resumable_marking=a\"b\nwhatever=3\nremoves=2\n",
        );
        assert_eq!(
            text,
            "# HELP sesscache_sessions_removed_total Sessions removed by SSL_CTX_remove_session.\n\
             # TYPE sesscache_sessions_removed_total counter\n\
             sesscache_sessions_removed_total{pid=\"9\"} 2\n"
        );
        assert_eq!(render("hits=1\n"), "", "no pid, no label: nothing");
        assert_eq!(render("pid=x\nhits=1\n"), "");
    }

    #[test]
    fn a_prefix_of_another_name_is_not_that_name() {
        // "store_hits" must not be read from "store_hits_extra=…", nor
        // "hits" from "hits_x=…".
        let text = render("pid=1\nhits_x=5\nstore_hits_extra=6\n");
        assert_eq!(text, "");
    }
}
