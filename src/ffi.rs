//! The C ABI: libssl's session-cache entry points, exported under libssl's
//! own names so that a preloaded or earlier-linked `libsesscache` replaces
//! them, plus the three hooks we install on every `SSL_CTX`.
//!
//! Every function here checks its pointers, runs its body inside
//! [`boundary`] (no panic ever unwinds into C) and delegates to
//! [`crate::context`]. A ctx this library did not set up (there should be
//! none) is passed through to libssl unchanged. On a libssl release line
//! the library is not exact on, every export is first of all a plain call
//! of libssl's own function ([`libssl::passing_through`]).

use std::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_void};
use std::panic::AssertUnwindSafe;

use openssl_sys::{OSSL_LIB_CTX, SSL, SSL_CTX, SSL_METHOD, SSL_SESSION};

use crate::cache::{MAX_SESSION_ID_LEN, SessionKeyRef};
use crate::context::{self, state_of};
use crate::diag;
use crate::libssl::{self, Connection, GetSessionCb, NewSessionCb, RemoveSessionCb, Session};

/// Runs `body`, turning a panic into `fallback` and one line on stderr.
pub(crate) fn boundary<R>(fallback: R, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            diag::warn_once(
                "sesscache: internal error caught at the C boundary; returned libssl's failure value",
            );
            fallback
        }
    }
}

// ---------------------------------------------------------------------------
// The six functions of SSL_CTX_sess_set_get_cb(3)
// ---------------------------------------------------------------------------

/// Sets the callback called for every new session that libssl would cache
/// (full handshake; in TLS 1.3, every ticket). It receives one reference to
/// the session: return 1 to keep it, 0 to have it released. NULL clears it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_set_new_cb(ctx: *mut SSL_CTX, new_session_cb: NewSessionCb) {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.set_new_cb)(ctx, new_session_cb) };
    }
    boundary((), || {
        // SAFETY: the caller passes a live ctx (or NULL, refused by state_of).
        match unsafe { state_of(ctx) } {
            Some(state) => state.set_new_cb(new_session_cb),
            None => pass_through(ctx, |real| {
                // SAFETY: non-null ctx that is not ours: libssl's own setter.
                unsafe { (real.set_new_cb)(ctx, new_session_cb) }
            }),
        }
    })
}

/// Sets the callback called whenever a session leaves the cache (removal,
/// expiry, eviction, flush, unclean shutdown, `SSL_CTX_free`), and also for
/// `SSL_CTX_remove_session` on a session that was not cached. The session
/// is already marked not resumable. It is called with no sesscache lock
/// held, so it may itself remove sessions or flush. NULL clears it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_set_remove_cb(
    ctx: *mut SSL_CTX,
    remove_session_cb: RemoveSessionCb,
) {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.set_remove_cb)(ctx, remove_session_cb) };
    }
    boundary((), || {
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.set_remove_cb(remove_session_cb),
            None => pass_through(ctx, |real| {
                // SAFETY: non-null ctx that is not ours.
                unsafe { (real.set_remove_cb)(ctx, remove_session_cb) }
            }),
        }
    })
}

/// Sets the callback asked for a session ID that the cache does not hold
/// (server side; called even when caching is off). `*copy` is 1 on entry:
/// leave it 1 to have a reference taken, or set it to 0 to hand over one
/// reference the callback already owns. NULL clears it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_set_get_cb(ctx: *mut SSL_CTX, get_session_cb: GetSessionCb) {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.set_get_cb)(ctx, get_session_cb) };
    }
    boundary((), || {
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.set_get_cb(get_session_cb),
            None => pass_through(ctx, |real| {
                // SAFETY: non-null ctx that is not ours.
                unsafe { (real.set_get_cb)(ctx, get_session_cb) }
            }),
        }
    })
}

/// The new-session callback the application set, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_get_new_cb(ctx: *mut SSL_CTX) -> NewSessionCb {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.get_new_cb)(ctx) };
    }
    boundary(None, || {
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.new_cb(),
            None => pass_through_or(ctx, None, |real| {
                // SAFETY: non-null ctx that is not ours.
                unsafe { (real.get_new_cb)(ctx) }
            }),
        }
    })
}

/// The remove-session callback the application set, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_get_remove_cb(ctx: *mut SSL_CTX) -> RemoveSessionCb {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.get_remove_cb)(ctx) };
    }
    boundary(None, || {
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.remove_cb(),
            None => pass_through_or(ctx, None, |real| {
                // SAFETY: non-null ctx that is not ours.
                unsafe { (real.get_remove_cb)(ctx) }
            }),
        }
    })
}

/// The get-session callback the application set, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_get_get_cb(ctx: *mut SSL_CTX) -> GetSessionCb {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.get_get_cb)(ctx) };
    }
    boundary(None, || {
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.get_cb(),
            None => pass_through_or(ctx, None, |real| {
                // SAFETY: non-null ctx that is not ours.
                unsafe { (real.get_get_cb)(ctx) }
            }),
        }
    })
}

// ---------------------------------------------------------------------------
// The rest of libssl's cache API
// ---------------------------------------------------------------------------

/// libssl's `SSL_CTX_new`; the new ctx's session cache is sesscache's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_new(meth: *const SSL_METHOD) -> *mut SSL_CTX {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_new)(meth) };
    }
    // SAFETY: same contract as libssl's SSL_CTX_new, which is exactly this.
    unsafe { SSL_CTX_new_ex(std::ptr::null_mut(), std::ptr::null(), meth) }
}

/// libssl's `SSL_CTX_new_ex`; the new ctx's session cache is sesscache's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_new_ex(
    libctx: *mut OSSL_LIB_CTX,
    propq: *const c_char,
    meth: *const SSL_METHOD,
) -> *mut SSL_CTX {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_new_ex)(libctx, propq, meth) };
    }
    let Some(real) = libssl::real() else {
        return std::ptr::null_mut();
    };
    // SAFETY: arguments are passed to libssl exactly as received.
    let ctx = unsafe { (real.ctx_new_ex)(libctx, propq, meth) };
    if !ctx.is_null() {
        boundary((), || {
            // SAFETY: a ctx libssl just created, not yet seen by anyone else.
            unsafe { context::attach(ctx) }
        });
    }
    ctx
}

/// libssl's `SSL_CTX_ctrl`. The session-cache commands (mode, size, number
/// and the `SSL_CTX_sess_*` statistics) are answered by sesscache; every
/// other command goes to libssl untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_ctrl(
    ctx: *mut SSL_CTX,
    cmd: c_int,
    larg: c_long,
    parg: *mut c_void,
) -> c_long {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_ctrl)(ctx, cmd, larg, parg) };
    }
    let ours = boundary(None, || {
        // libssl's own add, parking a session, asks its own table's size
        // and count (see `context::park`).
        if !is_cache_command(cmd) || context::parking() {
            return None;
        }
        // SAFETY: live ctx or NULL (NULL is libssl's to answer).
        unsafe { state_of(ctx) }?.ctrl(ctx, cmd, larg)
    });
    match (ours, libssl::real()) {
        (Some(answer), _) => answer,
        // SAFETY: arguments are passed to libssl exactly as received.
        (None, Some(real)) => unsafe { (real.ctx_ctrl)(ctx, cmd, larg, parg) },
        (None, None) => 0,
    }
}

fn is_cache_command(cmd: c_int) -> bool {
    (context::CTRL_SESS_NUMBER..=context::CTRL_SESS_CACHE_FULL).contains(&cmd)
        || (context::CTRL_SET_SESS_CACHE_SIZE..=context::CTRL_GET_SESS_CACHE_MODE).contains(&cmd)
}

/// libssl's `SSL_CTX_add_session`: 1 if the session was added, 0 if that
/// same session was cached already (or on bad arguments). A different
/// session with the same protocol version and ID replaces the cached one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_add_session(
    ctx: *mut SSL_CTX,
    session: *mut SSL_SESSION,
) -> c_int {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_add_session)(ctx, session) };
    }
    boundary(0, || {
        // SAFETY: the caller passes a live session or NULL.
        let Some(sess) = (unsafe { Session::from_ptr(session) }) else {
            return 0;
        };
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => c_int::from(state.add_session(ctx, sess)),
            None => pass_through_or(ctx, 0, |real| {
                // SAFETY: non-null ctx that is not ours, live session.
                unsafe { (real.ctx_add_session)(ctx, session) }
            }),
        }
    })
}

/// libssl's `SSL_CTX_remove_session`: removes the session cached under this
/// session's version and ID, marks the session not resumable and calls the
/// remove callback with it (also when nothing was cached). Returns 1 if a
/// session was removed from the cache.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_remove_session(
    ctx: *mut SSL_CTX,
    session: *mut SSL_SESSION,
) -> c_int {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_remove_session)(ctx, session) };
    }
    boundary(0, || {
        // SAFETY: live session or NULL.
        let Some(sess) = (unsafe { Session::from_ptr(session) }) else {
            return 0;
        };
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.remove_session(ctx, sess),
            None => pass_through_or(ctx, 0, |real| {
                // SAFETY: non-null ctx that is not ours, live session.
                unsafe { (real.ctx_remove_session)(ctx, session) }
            }),
        }
    })
}

/// libssl's `SSL_CTX_flush_sessions`: removes every session expired at time
/// `t` (a session expires when `t > time + timeout`), or every session when
/// `t` is 0, calling the remove callback for each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_flush_sessions(ctx: *mut SSL_CTX, t: c_long) {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_flush_sessions)(ctx, t) };
    }
    boundary((), || {
        // SAFETY: live ctx or NULL.
        match unsafe { state_of(ctx) } {
            Some(state) => state.flush(ctx, t),
            None => pass_through(ctx, |real| {
                // SAFETY: non-null ctx that is not ours.
                unsafe { (real.ctx_flush_sessions)(ctx, t) }
            }),
        }
    })
}

/// libssl's `SSL_has_matching_session_id`: whether the connection's session
/// cache holds a session with this ID for the connection's protocol
/// version. IDs longer than 32 bytes, NULL pointers: 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_has_matching_session_id(
    ssl: *const SSL,
    id: *const c_uchar,
    id_len: c_uint,
) -> c_int {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.has_matching_session_id)(ssl, id, id_len) };
    }
    boundary(0, || {
        let len = id_len as usize;
        if len > MAX_SESSION_ID_LEN || (id.is_null() && len > 0) {
            return 0;
        }
        // SAFETY: the caller passes a live connection or NULL.
        let Some(conn) = (unsafe { Connection::from_ptr(ssl.cast_mut()) }) else {
            return 0;
        };
        let session_ctx = context::session_ctx_of(conn);
        // SAFETY: the connection holds a reference to its session ctx.
        let Some(state) = (unsafe { state_of(session_ctx) }) else {
            return pass_through_or(session_ctx, 0, |real| {
                // SAFETY: arguments as received.
                unsafe { (real.has_matching_session_id)(ssl, id, id_len) }
            });
        };
        let id = if len == 0 {
            &[][..]
        } else {
            // SAFETY: `id_len` (at most 32) readable bytes at non-null `id`.
            unsafe { std::slice::from_raw_parts(id, len) }
        };
        SessionKeyRef::new(conn.version(), id)
            .map_or(0, |key| c_int::from(state.cache.contains_ref(key)))
    })
}

/// libssl's `SSL_SESSION_set_time`; a cached session moves to its new place
/// in expiry order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_time(s: *mut SSL_SESSION, t: c_long) -> c_long {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.session_set_time)(s, t) };
    }
    let Some(real) = libssl::real() else { return 0 };
    // SAFETY: arguments as received; libssl checks for NULL.
    let ret = unsafe { (real.session_set_time)(s, t) };
    boundary((), || {
        // SAFETY: live session or NULL.
        if let Some(sess) = unsafe { Session::from_ptr(s) } {
            context::session_times_changed(sess);
        }
    });
    ret
}

/// libssl's `SSL_SESSION_set_timeout`; a cached session moves to its new
/// place in expiry order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_timeout(s: *mut SSL_SESSION, t: c_long) -> c_long {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.session_set_timeout)(s, t) };
    }
    let Some(real) = libssl::real() else { return 0 };
    // SAFETY: arguments as received; libssl checks for NULL and t < 0.
    let ret = unsafe { (real.session_set_timeout)(s, t) };
    if ret == 1 {
        boundary((), || {
            // SAFETY: live session (libssl accepted it).
            if let Some(sess) = unsafe { Session::from_ptr(s) } {
                context::session_times_changed(sess);
            }
        });
    }
    ret
}

/// libssl's `SSL_SESSION_set_protocol_version`; a cached session is then
/// found under its new version, as in libssl (which compares the version
/// it reads from the cached session). NULL: returns 0 (libssl crashes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_protocol_version(
    s: *mut SSL_SESSION,
    version: c_int,
) -> c_int {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.session_set_protocol_version)(s, version) };
    }
    // libssl itself would crash on NULL.
    let (Some(real), false) = (libssl::real(), s.is_null()) else {
        return 0;
    };
    // SAFETY: a non-null session from the caller.
    let ret = unsafe { (real.session_set_protocol_version)(s, version) };
    boundary((), || {
        // SAFETY: a live session (checked non-null above, libssl just
        // wrote to it).
        if let Some(sess) = unsafe { Session::from_ptr(s) } {
            context::session_version_changed(sess);
        }
    });
    ret
}

/// libssl's `SSL_set_SSL_CTX` (used by SNI servers). The connection's
/// session cache and callbacks stay those of the ctx it was created with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_set_SSL_CTX(ssl: *mut SSL, ctx: *mut SSL_CTX) -> *mut SSL_CTX {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.set_ssl_ctx)(ssl, ctx) };
    }
    let Some(real) = libssl::real() else {
        return std::ptr::null_mut();
    };
    // SAFETY: live connection or NULL.
    let Some(conn) = (unsafe { Connection::from_ptr(ssl) }) else {
        return std::ptr::null_mut();
    };
    boundary((), || context::remember_session_ctx(conn));
    // SAFETY: arguments as received.
    unsafe { (real.set_ssl_ctx)(ssl, ctx) }
}

/// libssl's `SSL_CTX_set_session_id_context`; sesscache also remembers the
/// context, to which sessions in a shared store are bound.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_set_session_id_context(
    ctx: *mut SSL_CTX,
    sid_ctx: *const c_uchar,
    sid_ctx_len: c_uint,
) -> c_int {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.ctx_set_sid_ctx)(ctx, sid_ctx, sid_ctx_len) };
    }
    let Some(real) = libssl::real() else { return 0 };
    if ctx.is_null() {
        return 0;
    }
    // SAFETY: arguments as received; libssl checks the length.
    let ret = unsafe { (real.ctx_set_sid_ctx)(ctx, sid_ctx, sid_ctx_len) };
    if ret == 1 {
        boundary((), || {
            // SAFETY: live ctx; libssl accepted `sid_ctx_len` bytes at `sid_ctx`.
            if let Some(state) = unsafe { state_of(ctx) } {
                state.set_sid_ctx(unsafe { bytes(sid_ctx, sid_ctx_len) });
            }
        });
    }
    ret
}

/// libssl's `SSL_set_session_id_context`; sesscache also remembers the
/// context, to which sessions in a shared store are bound.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_set_session_id_context(
    ssl: *mut SSL,
    sid_ctx: *const c_uchar,
    sid_ctx_len: c_uint,
) -> c_int {
    if let Some(real) = libssl::passing_through() {
        // SAFETY: arguments as received, to libssl's own function.
        return unsafe { (real.set_sid_ctx)(ssl, sid_ctx, sid_ctx_len) };
    }
    let Some(real) = libssl::real() else { return 0 };
    // SAFETY: live connection or NULL.
    let Some(conn) = (unsafe { Connection::from_ptr(ssl) }) else {
        return 0;
    };
    // SAFETY: arguments as received; libssl checks the length.
    let ret = unsafe { (real.set_sid_ctx)(ssl, sid_ctx, sid_ctx_len) };
    if ret == 1 {
        // SAFETY: libssl accepted `sid_ctx_len` bytes at `sid_ctx`.
        boundary((), || {
            context::remember_connection_sid_ctx(conn, unsafe { bytes(sid_ctx, sid_ctx_len) })
        });
    }
    ret
}

/// # Safety
/// `len` readable bytes at `p` (or `len == 0`).
unsafe fn bytes<'a>(p: *const c_uchar, len: c_uint) -> &'a [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { std::slice::from_raw_parts(p, len as usize) }
}

// ---------------------------------------------------------------------------
// What sesscache adds to libssl's API
// ---------------------------------------------------------------------------

/// Sets one sesscache setting by its environment-variable name
/// (`SESSCACHE_STORE`, `SESSCACHE_STORE_KEY_FILE`, `SESSCACHE_STORE_PREFIX`,
/// `SESSCACHE_STORE_TIMEOUT_MS`, `SESSCACHE_STORE_PUSH`,
/// `SESSCACHE_STORE_QUEUE`, `SESSCACHE_STORE_POOL`), overriding the
/// environment. Only before the process's first `SSL_CTX_new`. Returns 1
/// if the setting was taken, 0 for an unknown name, an invalid value, NULL,
/// or a call after the first `SSL_CTX_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sesscache_configure(name: *const c_char, value: *const c_char) -> c_int {
    boundary(0, || {
        if name.is_null() || value.is_null() {
            return 0;
        }
        // SAFETY: the caller passes NUL-terminated strings.
        let (name, value) = unsafe {
            (
                std::ffi::CStr::from_ptr(name),
                std::ffi::CStr::from_ptr(value),
            )
        };
        match (name.to_str(), value.to_str()) {
            (Ok(name), Ok(value)) => c_int::from(crate::store::configure(name, value)),
            _ => 0,
        }
    })
}

/// Reads one of the shared store's counters by name into `*value`:
/// `store_hits`, `store_misses`, `store_errors`, `store_rejected` (blobs
/// that failed authentication, were for another session-ID context, or did
/// not decode), `store_dropped` (writes dropped because the queue was
/// full), `store_writes`, `store_deletes`, `store_pushes` (announcements
/// received from other processes), `store_pool_hits`. Returns 1, or 0 for
/// an unknown name or NULL pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sesscache_counter(name: *const c_char, value: *mut u64) -> c_int {
    boundary(0, || {
        if name.is_null() || value.is_null() {
            return 0;
        }
        // SAFETY: the caller passes a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(name) };
        let Some((_, v)) = crate::store::counters()
            .into_iter()
            .find(|(n, _)| name.to_bytes() == n.as_bytes())
        else {
            return 0;
        };
        // SAFETY: the caller's out-parameter.
        unsafe { *value = v };
        1
    })
}

// ---------------------------------------------------------------------------
// The hooks installed on every SSL_CTX (libssl's external-cache callbacks)
// ---------------------------------------------------------------------------

/// libssl's new-session callback: cache the session, then offer it to the
/// application's callback with the reference libssl took for it.
pub(crate) unsafe extern "C" fn new_session_hook(
    ssl: *mut SSL,
    session: *mut SSL_SESSION,
) -> c_int {
    // Our part runs inside the boundary; the application's callback, which
    // takes over libssl's reference when it returns non-zero, runs outside
    // it, so a failure of ours can never make libssl free a reference the
    // application kept.
    let prepared = boundary(None, || {
        // SAFETY: libssl passes its live connection and session.
        let (conn, sess) = unsafe { (Connection::from_ptr(ssl)?, Session::from_ptr(session)?) };
        let session_ctx = context::session_ctx_of(conn);
        // SAFETY: the connection holds a reference to its session ctx.
        let state = unsafe { state_of(session_ctx) }?;
        state.on_new_session(session_ctx, conn, sess);
        Some((state, session_ctx, conn))
    });
    let Some((state, session_ctx, conn)) = prepared else {
        return 0;
    };
    let kept = match state.new_cb() {
        // SAFETY: the application's callback; the reference libssl took is
        // the application's if it returns non-zero, as with plain libssl.
        Some(app_new) => unsafe { app_new(ssl, session) },
        None => 0,
    };
    boundary((), || state.auto_flush_if_due(session_ctx, conn));
    kept
}

/// libssl's remove-session callback: libssl removed a session on its own
/// (an internal call that did not reach our export).
pub(crate) unsafe extern "C" fn remove_session_hook(ctx: *mut SSL_CTX, session: *mut SSL_SESSION) {
    if context::marking_not_resumable() {
        return;
    }
    boundary((), || {
        // SAFETY: libssl passes its live ctx and session.
        let (Some(state), Some(sess)) = (unsafe { state_of(ctx) }, unsafe {
            Session::from_ptr(session)
        }) else {
            return;
        };
        state.removed_by_libssl(ctx, sess);
    })
}

/// libssl's get-session callback: our cache, then the application's.
pub(crate) unsafe extern "C" fn get_session_hook(
    ssl: *mut SSL,
    id: *const c_uchar,
    id_len: c_int,
    copy: *mut c_int,
) -> *mut SSL_SESSION {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: libssl passes its live connection.
        let Some(conn) = (unsafe { Connection::from_ptr(ssl) }) else {
            return std::ptr::null_mut();
        };
        let session_ctx = context::session_ctx_of(conn);
        // SAFETY: the connection holds a reference to its session ctx.
        let Some(state) = (unsafe { state_of(session_ctx) }) else {
            return std::ptr::null_mut();
        };
        let (found, copy_value) = state.lookup(session_ctx, conn, id, id_len);
        if !copy.is_null() {
            // SAFETY: libssl's out-parameter.
            unsafe { *copy = copy_value };
        }
        found
    })
}

fn pass_through(ctx: *mut SSL_CTX, call: impl FnOnce(&'static libssl::Real)) {
    pass_through_or(ctx, (), call)
}

/// Calls libssl for a ctx that is not ours; NULL gets `fallback` (libssl
/// itself would crash).
fn pass_through_or<R>(
    ctx: *mut SSL_CTX,
    fallback: R,
    call: impl FnOnce(&'static libssl::Real) -> R,
) -> R {
    match libssl::real() {
        Some(real) if !ctx.is_null() => call(real),
        _ => fallback,
    }
}
