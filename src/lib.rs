//! sesscache: libssl's server-side session cache, served from Rust.
//!
//! Loaded into an OpenSSL 3.0 process (`LD_PRELOAD`, or linked before
//! `-lssl`; any other release line gets libssl's own cache, see
//! `libssl::serving`), this library exports libssl's session-cache functions under
//! their own names. Every `SSL_CTX` created from then on keeps its sessions
//! in a [`cache::SessionCache`] instead of libssl's internal one, and the
//! application's external-cache callbacks (`SSL_CTX_sess_set_new_cb` and
//! friends) are invoked by sesscache exactly as libssl would invoke them.
//!
//! Layout, each module using only those to its right (no cycles):
//!
//! ```text
//! ffi ──► context ──► store ──► libssl ──► diag
//!   │        │          │         │
//!   └────────┴──────────┴─────────┴──────► cache
//! ```
//!
//! - `ffi`: everything C calls — the exports (`ffi.rs`, each one
//!   delegation through `ffi/boundary.rs`: panic boundary, pointer checks,
//!   state lookup, pass-through to libssl) and the hooks libssl calls back
//!   (`ffi/hooks.rs`: the external-cache and ex_data callbacks, handed to
//!   `context` to install).
//! - `context`: the libssl semantics per `SSL_CTX`, one file per concern
//!   under `context/` (`context/rules.rs`: its pure decisions).
//! - `store`: the shared store behind its `Backend` trait.
//! - `libssl`: all access to the real libssl, and the release-line decision.
//! - `diag`: warnings, the event log and the stats files; it prints what
//!   the layers above register with it and imports none of them.
//! - [`cache`]: the pure-Rust core, knows nothing about C.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod cache;
mod context;
mod diag;
mod ffi;
mod libssl;
mod store;

/// libssl's functions the library exports under their own names (for
/// `tests/exports.rs`).
#[doc(hidden)]
pub const INTERPOSED: &[&str] = libssl::INTERPOSED;

/// [`INTERPOSED`], each with the first release line (major, minor) whose
/// libssl has the function.
#[doc(hidden)]
pub const INTERPOSED_SINCE: &[(&str, (u64, u64))] = libssl::INTERPOSED_SINCE;

/// Checks the consistency of a shm store file whose users are stopped or
/// gone (for tests: `examples/shm_check.rs`). `size` is its
/// `SESSCACHE_STORE_SIZE` in bytes.
#[doc(hidden)]
pub fn shm_check_file(path: &std::path::Path, size: usize) -> Result<String, String> {
    store::shm::check_file(path, size)
}

/// Times the store's own lookups and publishes (and, for `shm`, its lock
/// hold times) for `make bench` (`examples/store_bench.rs`): `url` is `shm`
/// (an anonymous mapping of `size` bytes) or a `redis://` URL. Returns one
/// line of `name=value` fields.
#[cfg(feature = "store-bench")]
#[doc(hidden)]
pub fn store_op_bench(
    url: &str,
    size: usize,
    threads: usize,
    ops: usize,
    value_len: usize,
) -> Result<String, String> {
    store::bench::run(url, size, threads, ops, value_len)
}

/// Says once on stderr when the library is loaded as a shared object but
/// the process reaches libssl's own `SSL_CTX_new` first (linked after
/// `-lssl`): then nothing of sesscache is in use. (Linked statically into
/// the executable, or preloaded, the executable's or our definition wins.)
fn warn_if_bypassed() {
    let contains = |path: &[u8], part: &[u8]| path.windows(part.len()).any(|w| w == part);
    let Some(ours) = libssl::object_file_of(warn_if_bypassed as *const std::ffi::c_void) else {
        return;
    };
    if !contains(&ours, b"libsesscache") {
        return;
    }
    let winner = libssl::global_definition_file(b"SSL_CTX_new\0");
    if winner.is_some_and(|w| w != ours) {
        diag::warn_once(
            "sesscache: loaded, but the process calls libssl's own SSL_CTX_new: \
             link -lsesscache before -lssl or use LD_PRELOAD; the session cache is libssl's",
        );
    }
}

/// Runs once when the library is loaded.
extern "C" fn at_load() {
    let _ = std::panic::catch_unwind(|| {
        diag::read_environment();
        store::read_environment();
        libssl::not_resumable::read_environment();
        warn_if_bypassed();
        // Decided now when libssl is already loaded, so that a release
        // line passed through is said at start-up.
        if libssl::loaded() && libssl::serving() {
            ffi::install_hooks();
            context::reserve_ctx_index();
            libssl::learn_session_layout();
        }
    });
}

// SAFETY: a constructor run by the dynamic loader once at load time; it
// reads the environment, may open the log file, looks symbols up and may
// write one line to stderr.
#[used]
#[unsafe(link_section = ".init_array")]
static AT_LOAD: extern "C" fn() = at_load;

#[cfg(test)]
mod tests {
    /// Here, above diagnostics and the layers whose lines it prints.
    #[test]
    fn every_line_the_stats_file_can_hold_has_a_metric() {
        let metrics = crate::diag::metric_stats();
        let mut stats: Vec<&str> = crate::diag::Event::ALL
            .iter()
            .map(|e| e.stat_name())
            .collect();
        stats.extend(["sessions", "not_resumable_marking"]);
        stats.extend(crate::store::counters().iter().map(|(name, _)| *name));
        for stat in &stats {
            assert!(metrics.contains(stat), "no metric for {stat}");
        }
        assert_eq!(
            stats.len(),
            metrics.len(),
            "a metric for a line the stats file never holds"
        );
    }
}
