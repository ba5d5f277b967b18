//! The cache entry points that release lines after 3.0 added: the
//! `time_t` forms of the session-time functions (3.3) and of the flush
//! (3.4), which libssl 3.4 and later calls itself from `SSL_CTX_free` and
//! its flush every 255 handshakes. On a libssl without them (3.0), each is
//! served as its 3.0 name is, and libssl's part is the 3.0 name's.

use libc::time_t;
use openssl_sys::{SSL_CTX, SSL_SESSION};

use super::boundary::export;
use crate::libssl::own_or_older;

/// libssl's `SSL_CTX_flush_sessions_ex`: removes every session expired at
/// time `t`, or every session when `t` is 0, calling the remove callback
/// for each (as `SSL_CTX_flush_sessions`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_flush_sessions_ex(ctx: *mut SSL_CTX, t: time_t) {
    // SAFETY: the caller's live ctx (or NULL) and time, as received.
    unsafe {
        export((), own_or_older::SSL_CTX_flush_sessions_ex(ctx, t)).on_ctx(ctx, |s| s.flush(t))
    }
}

/// libssl's `SSL_SESSION_set_time_ex`; a cached session moves to its new
/// place in expiry order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_time_ex(s: *mut SSL_SESSION, t: time_t) -> time_t {
    // SAFETY: the caller's live session (or NULL, which libssl checks).
    unsafe { export(0, own_or_older::SSL_SESSION_set_time_ex(s, t)).then_times_changed(s) }
}

/// libssl's `SSL_SESSION_get_time_ex`: the session's time, which nothing
/// of sesscache changes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_get_time_ex(s: *const SSL_SESSION) -> time_t {
    // SAFETY: the caller's live session (or NULL, which libssl checks).
    unsafe { export(0, own_or_older::SSL_SESSION_get_time_ex(s)).libssl_then(true, |_| ()) }
}
