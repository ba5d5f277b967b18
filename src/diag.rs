//! Diagnostics: one-time warnings on stderr, and the optional event log.
//!
//! `SESSCACHE_LOG` unset, empty or `0`: no log. `1` or `stderr`: one line
//! per cache event on stderr. Anything else: a file path, appended to. A
//! line names the process, the `SSL_CTX`, the event and the first four
//! bytes of the session ID; never key material.

use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use once_cell::sync::Lazy;

static WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Writes `message` to stderr the first time it is given; never panics,
/// even with stderr closed.
pub fn warn_once(message: &'static str) {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.contains(&message) {
        return;
    }
    warned.push(message);
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
}

impl Event {
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
        _ => match OpenOptions::new().create(true).append(true).open(&value) {
            Ok(file) => Some(Sink::File(Mutex::new(file))),
            Err(_) => {
                warn_once(
                    "sesscache: SESSCACHE_LOG names a file that cannot be opened; logging to stderr",
                );
                Some(Sink::Stderr)
            }
        },
    }
});

/// Whether event logging is on (so callers can skip preparing a line).
pub fn logging() -> bool {
    SINK.is_some()
}

/// Logs one event for the cache of `ctx` about the session with `id`.
pub fn log_event(event: Event, ctx: *const c_void, id: &[u8]) {
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
