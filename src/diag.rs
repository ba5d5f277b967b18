//! Diagnostics: one-time warnings on stderr, and the optional event log.
//!
//! `SESSCACHE_LOG` unset, empty or `0`: no log. `1` or `stderr`: one line
//! per cache event on stderr. Anything else: a file path, appended to. A
//! line names the process, the `SSL_CTX`, the event and the first four
//! bytes of the session ID; never key material.
//!
//! `SESSCACHE_STATS=DIR`: the process keeps event counters and writes them
//! to `DIR/sesscache.<pid>.stats` (`name=value` lines), at most once a
//! second while events happen and once more at exit, replacing the file
//! atomically so a reader never sees half of it; beside it the same
//! counters in the Prometheus text format, `DIR/sesscache.<pid>.prom`
//! ([`prometheus`]), for node_exporter's textfile collector.
//!
//! Both are opened at load, and never through a planted symlink
//! ([`files`]).

mod files;
mod prometheus;

#[cfg(test)]
pub(crate) use prometheus::metric_stats;

use std::ffi::c_void;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use once_cell::sync::{Lazy, OnceCell};

static WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Writes `message` to stderr the first time it is given; never panics,
/// even with stderr closed.
pub fn warn_once(message: &'static str) {
    warn_once_about(message, message);
}

/// Writes `message` to stderr the first time a warning about `what` is
/// given (the list of what was warned about stays as short as the set of
/// `what`s in the code).
pub fn warn_once_about(what: &'static str, message: &str) {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.contains(&what) {
        return;
    }
    warned.push(what);
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// A cache event worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A session entered the cache.
    Add,
    /// A different session with the same key was dropped for a new one.
    Replace,
    /// A server lookup found the session in the cache.
    Hit,
    /// A server lookup did not.
    Miss,
    /// The application's get callback supplied a usable session.
    CallbackHit,
    /// Removed by `SSL_CTX_remove_session` (the application, or libssl on an
    /// alert, an unclean shutdown, an expired hit or early-data anti-replay).
    Remove,
    /// Pushed out because the cache was full.
    Evict,
    /// Removed by a flush because it had expired.
    Expire,
    /// Removed by a flush of everything (`SSL_CTX_flush_sessions(ctx, 0)`).
    FlushAll,
    /// Removed because its `SSL_CTX` was freed.
    CtxFree,
    /// A server lookup was answered by the shared store.
    StoreHit,
}

impl Event {
    pub(crate) const ALL: [Event; 11] = [
        Event::Add,
        Event::Replace,
        Event::Hit,
        Event::Miss,
        Event::CallbackHit,
        Event::Remove,
        Event::Evict,
        Event::Expire,
        Event::FlushAll,
        Event::CtxFree,
        Event::StoreHit,
    ];

    fn index(self) -> usize {
        Event::ALL.iter().position(|&e| e == self).unwrap_or(0)
    }

    /// The counter's name in the stats file.
    pub(crate) fn stat_name(self) -> &'static str {
        match self {
            Event::Add => "adds",
            Event::Replace => "replaces",
            Event::Hit => "hits",
            Event::Miss => "misses",
            Event::CallbackHit => "callback_hits",
            Event::Remove => "removes",
            Event::Evict => "evictions",
            Event::Expire => "expired",
            Event::FlushAll => "flushed",
            Event::CtxFree => "ctx_freed",
            Event::StoreHit => "store_lookups_served",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Event::Add => "add",
            Event::Replace => "replace",
            Event::Hit => "hit",
            Event::Miss => "miss",
            Event::CallbackHit => "callback-hit",
            Event::Remove => "remove",
            Event::Evict => "evict",
            Event::Expire => "expire",
            Event::FlushAll => "flush",
            Event::CtxFree => "ctx-free",
            Event::StoreHit => "store-hit",
        }
    }
}

enum Sink {
    Stderr,
    File(Mutex<std::fs::File>),
}

static SINK: Lazy<Option<Sink>> = Lazy::new(|| {
    let value = std::env::var_os("SESSCACHE_LOG")?;
    match value.to_str() {
        Some("") | Some("0") => None,
        Some("1") | Some("stderr") => Some(Sink::Stderr),
        _ => match files::open_log(&value) {
            Ok(file) => Some(Sink::File(Mutex::new(file))),
            Err(why) => {
                warn_once_about("SESSCACHE_LOG", &why);
                Some(Sink::Stderr)
            }
        },
    }
});

/// Whether events need to be reported at all (log or stats).
pub fn logging() -> bool {
    SINK.is_some() || STATS.is_some()
}

struct Stats {
    dir: files::StatsDir,
    counters: [AtomicU64; Event::ALL.len()],
    last_write: AtomicI64,
}

static STATS: Lazy<Option<Stats>> = Lazy::new(|| {
    let path = std::env::var_os("SESSCACHE_STATS").filter(|d| !d.is_empty())?;
    let dir = match files::StatsDir::open(&path) {
        Ok(dir) => dir,
        Err(why) => {
            warn_once_about("SESSCACHE_STATS", &why);
            return None;
        }
    };
    // SAFETY: registers plain functions to run at exit and in forked
    // children.
    unsafe {
        libc::atexit(write_stats_at_exit);
        libc::pthread_atfork(None, None, Some(zero_stats_in_child));
    }
    Some(Stats {
        dir,
        counters: Default::default(),
        last_write: AtomicI64::new(0),
    })
});

/// What the layers above add to the stats file after the event counters,
/// each a function giving its `name=value` lines: diagnostics print what
/// they are given and depend on nothing they print.
static STATS_SOURCES: OnceCell<&'static [fn() -> String]> = OnceCell::new();

/// Tells the stats writer where its further lines come from, in order; the
/// first call counts.
pub fn set_stats_sources(sources: &'static [fn() -> String]) {
    let _ = STATS_SOURCES.set(sources);
}

/// A forked child counts its own events (its file is named by its pid).
extern "C" fn zero_stats_in_child() {
    if let Some(stats) = Lazy::get(&STATS).and_then(|s| s.as_ref()) {
        for counter in &stats.counters {
            counter.store(0, Ordering::Relaxed);
        }
        stats.last_write.store(0, Ordering::Relaxed);
    }
}

/// Reads `SESSCACHE_LOG` and `SESSCACHE_STATS` now, at load time: servers
/// such as nginx empty their workers' environment before the first cache
/// event would otherwise read them.
pub fn read_environment() {
    Lazy::force(&SINK);
    Lazy::force(&STATS);
}

/// The last write of a process that had cache events: a process that had
/// none (a shell command run with the library preloaded, a server's
/// configuration check) leaves no file behind.
extern "C" fn write_stats_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(stats) = STATS.as_ref() {
            let had_events = stats.last_write.load(Ordering::Relaxed) != 0
                || stats
                    .counters
                    .iter()
                    .any(|c| c.load(Ordering::Relaxed) != 0);
            if had_events {
                write_stats(stats);
            }
        }
    });
}

fn write_stats(stats: &Stats) {
    let pid = std::process::id();
    let mut text = format!("pid={pid}\n");
    for event in Event::ALL {
        let n = stats.counters[event.index()].load(Ordering::Relaxed);
        text.push_str(&format!("{}={n}\n", event.stat_name()));
    }
    for source in STATS_SOURCES.get().copied().unwrap_or_default() {
        text.push_str(&source());
    }
    let prom = prometheus::render(&text);
    let written = stats
        .dir
        .write(&format!("sesscache.{pid}.stats"), &text)
        .and_then(|()| stats.dir.write(&format!("sesscache.{pid}.prom"), &prom));
    if let Err(why) = written {
        warn_once_about("SESSCACHE_STATS file", &why);
    }
}

fn count_event(event: Event) {
    let Some(stats) = STATS.as_ref() else { return };
    stats.counters[event.index()].fetch_add(1, Ordering::Relaxed);
    // SAFETY: time(NULL) has no preconditions.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let last = stats.last_write.load(Ordering::Relaxed);
    if now > last
        && stats
            .last_write
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        write_stats(stats);
    }
}

/// Writes one line about the library itself to the `SESSCACHE_LOG` file,
/// if the log is a file (a log on stderr has had the line already).
pub fn log_line_to_file(text: &str) {
    if let Some(Sink::File(file)) = SINK.as_ref() {
        let line = format!("sesscache[{}] {text}\n", std::process::id());
        let _ = file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes());
    }
}

/// Reports one event for the cache of `ctx` about the session with `id`.
pub fn log_event(event: Event, ctx: *const c_void, id: &[u8]) {
    count_event(event);
    let Some(sink) = SINK.as_ref() else { return };
    let mut prefix = String::with_capacity(8);
    for byte in id.iter().take(4) {
        prefix.push_str(&format!("{byte:02x}"));
    }
    if id.is_empty() {
        prefix.push('-');
    }
    let line = format!(
        "sesscache[{}] ctx={:p} {} id={}\n",
        std::process::id(),
        ctx,
        event.name(),
        prefix
    );
    // One write per line, so lines from several processes do not mix.
    let _ = match sink {
        Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
        Sink::File(file) => file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes()),
    };
}
