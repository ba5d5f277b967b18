//! The C ABI: libssl's session-cache entry points, exported under libssl's
//! own names so that a preloaded or earlier-linked `libsesscache` replaces
//! them; [`hooks`] holds the functions libssl calls back (the three
//! external-cache callbacks and the ex_data callbacks), and [`boundary`]
//! the one helper every export and hook runs through.
//!
//! Every export is one call of [`boundary::export`]: its signature is
//! written here by hand (the generated header, compiled beside
//! `<openssl/ssl.h>`, checks it against libssl's, and [`prototype`] checks
//! it against the list of interposed functions), its body names libssl's
//! own function ([`own`]) and sesscache's part, which [`crate::context`]
//! serves. On a libssl release line the library is not exact on, every
//! export is a plain call of libssl's own function
//! ([`crate::libssl::passing_through`]).

use std::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_void};

use openssl_sys::{OSSL_LIB_CTX, SSL, SSL_CTX, SSL_METHOD, SSL_SESSION};

use crate::cache::MAX_SESSION_ID_LEN;
use crate::context::{self, CtxState};
use crate::libssl::{
    Connection, GetSessionCb, INTERPOSED, NewSessionCb, RemoveSessionCb, Session, own, prototype,
};

mod boundary;
mod hooks;
mod later_lines;
use boundary::{boundary, export};
use later_lines::{SSL_CTX_flush_sessions_ex, SSL_SESSION_get_time_ex, SSL_SESSION_set_time_ex};

/// Gives the context layer the callbacks libssl calls, before its first use
/// (at load, so that our ex_data indices come before the application's).
pub(crate) fn install_hooks() {
    hooks::install();
}

/// Checks at compile time that each listed export has the type of libssl's
/// function of its name, and that the list is exactly [`INTERPOSED`].
macro_rules! exports_have_libssl_types {
    ($($name:ident),* $(,)?) => {
        $(const _: prototype::$name = $name;)*
        const EXPORTS_CHECKED: &[&str] = &[$(stringify!($name)),*];
        const _: () = assert!(
            same_names(EXPORTS_CHECKED, INTERPOSED),
            "the exports checked are not the interposed functions"
        );
    };
}

exports_have_libssl_types! {
    SSL_CTX_new,
    SSL_CTX_new_ex,
    SSL_CTX_free,
    SSL_CTX_ctrl,
    SSL_CTX_remove_session,
    SSL_CTX_flush_sessions,
    SSL_CTX_add_session,
    SSL_has_matching_session_id,
    SSL_SESSION_set_time,
    SSL_SESSION_set_timeout,
    SSL_SESSION_set_protocol_version,
    SSL_set_SSL_CTX,
    SSL_CTX_sess_set_new_cb,
    SSL_CTX_sess_set_remove_cb,
    SSL_CTX_sess_set_get_cb,
    SSL_CTX_sess_get_new_cb,
    SSL_CTX_sess_get_remove_cb,
    SSL_CTX_sess_get_get_cb,
    SSL_CTX_set_session_id_context,
    SSL_set_session_id_context,
    SSL_SESSION_get_time_ex,
    SSL_SESSION_set_time_ex,
    SSL_CTX_flush_sessions_ex,
}

/// Whether `a` and `b` hold the same names, each once.
const fn same_names(a: &[&str], b: &[&str]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        let (mut in_b, mut j) = (false, 0);
        while j < b.len() {
            in_b |= str_eq(a[i], b[j]);
            j += 1;
        }
        let mut k = i + 1;
        while k < a.len() {
            if str_eq(a[i], a[k]) {
                return false;
            }
            k += 1;
        }
        if !in_b {
            return false;
        }
        i += 1;
    }
    true
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// ---------------------------------------------------------------------------
// The six functions of SSL_CTX_sess_set_get_cb(3)
// ---------------------------------------------------------------------------

/// Sets the callback called for every new session that libssl would cache
/// (full handshake; in TLS 1.3, every ticket). It receives one reference to
/// the session: return 1 to keep it, 0 to have it released. NULL clears it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_set_new_cb(ctx: *mut SSL_CTX, cb: NewSessionCb) {
    // SAFETY: the caller's live ctx (or NULL) and callback, as received.
    unsafe {
        export((), own::SSL_CTX_sess_set_new_cb(ctx, cb)).setting(ctx, cb, CtxState::set_new_cb)
    }
}

/// Sets the callback called whenever a session leaves the cache (removal,
/// expiry, eviction, flush, unclean shutdown, `SSL_CTX_free`), and also for
/// `SSL_CTX_remove_session` on a session that was not cached. The session
/// is already marked not resumable. It is called with no sesscache lock
/// held, so it may itself remove sessions or flush. NULL clears it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_set_remove_cb(ctx: *mut SSL_CTX, cb: RemoveSessionCb) {
    // SAFETY: the caller's live ctx (or NULL) and callback, as received.
    unsafe {
        export((), own::SSL_CTX_sess_set_remove_cb(ctx, cb)).setting(
            ctx,
            cb,
            CtxState::set_remove_cb,
        )
    }
}

/// Sets the callback asked for a session ID that the cache does not hold
/// (server side; called even when caching is off). `*copy` is 1 on entry:
/// leave it 1 to have a reference taken, or set it to 0 to hand over one
/// reference the callback already owns. NULL clears it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_set_get_cb(ctx: *mut SSL_CTX, cb: GetSessionCb) {
    // SAFETY: the caller's live ctx (or NULL) and callback, as received.
    unsafe {
        export((), own::SSL_CTX_sess_set_get_cb(ctx, cb)).setting(ctx, cb, CtxState::set_get_cb)
    }
}

/// The new-session callback the application set, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_get_new_cb(ctx: *mut SSL_CTX) -> NewSessionCb {
    // SAFETY: the caller's live ctx (or NULL), as received.
    unsafe { export(None, own::SSL_CTX_sess_get_new_cb(ctx)).on_ctx(ctx, CtxState::new_cb) }
}

/// The remove-session callback the application set, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_get_remove_cb(ctx: *mut SSL_CTX) -> RemoveSessionCb {
    // SAFETY: the caller's live ctx (or NULL), as received.
    unsafe { export(None, own::SSL_CTX_sess_get_remove_cb(ctx)).on_ctx(ctx, CtxState::remove_cb) }
}

/// The get-session callback the application set, or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_sess_get_get_cb(ctx: *mut SSL_CTX) -> GetSessionCb {
    // SAFETY: the caller's live ctx (or NULL), as received.
    unsafe { export(None, own::SSL_CTX_sess_get_get_cb(ctx)).on_ctx(ctx, CtxState::get_cb) }
}

// ---------------------------------------------------------------------------
// The rest of libssl's cache API
// ---------------------------------------------------------------------------

/// libssl's `SSL_CTX_new`; the new ctx's session cache is sesscache's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_new(meth: *const SSL_METHOD) -> *mut SSL_CTX {
    // SAFETY: the caller's method, as received; libssl's SSL_CTX_new is
    // SSL_CTX_new_ex with no library context or property query.
    unsafe {
        export(std::ptr::null_mut(), own::SSL_CTX_new(meth))
            .unless_passed_through(|| SSL_CTX_new_ex(std::ptr::null_mut(), std::ptr::null(), meth))
    }
}

/// libssl's `SSL_CTX_new_ex`; the new ctx's session cache is sesscache's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_new_ex(
    libctx: *mut OSSL_LIB_CTX,
    propq: *const c_char,
    meth: *const SSL_METHOD,
) -> *mut SSL_CTX {
    // SAFETY: the caller's arguments, as received; a non-null answer is a
    // ctx libssl just created, not yet seen by anyone else.
    unsafe {
        export(
            std::ptr::null_mut(),
            own::SSL_CTX_new_ex(libctx, propq, meth),
        )
        .libssl_then(true, |ctx| {
            if !ctx.is_null() {
                context::attach(ctx)
            }
        })
    }
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
    // SAFETY: the caller's live ctx (or NULL, libssl's to answer) and
    // arguments, as received.
    unsafe {
        export(0, own::SSL_CTX_ctrl(ctx, cmd, larg, parg))
            .answer_or_libssl(|| context::ctrl(ctx, cmd, larg))
    }
}

/// libssl's `SSL_CTX_add_session`: 1 if the session was added, 0 if that
/// same session was cached already (or on bad arguments). A different
/// session with the same protocol version and ID replaces the cached one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_add_session(
    ctx: *mut SSL_CTX,
    session: *mut SSL_SESSION,
) -> c_int {
    // SAFETY: the caller's live ctx and session (or NULL), as received.
    unsafe {
        export(0, own::SSL_CTX_add_session(ctx, session)).on_session(ctx, session, CtxState::add)
    }
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
    // SAFETY: the caller's ctx and session, each live or NULL.
    unsafe {
        export(0, own::SSL_CTX_remove_session(ctx, session)).on_session(
            ctx,
            session,
            CtxState::remove,
        )
    }
}

/// libssl's `SSL_CTX_free`: drops a reference to the ctx; the last one
/// removes every cached session through the remove callback, then frees
/// the ctx's ex_data and the ctx.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_free(ctx: *mut SSL_CTX) {
    // SAFETY: the caller's ctx (or NULL, which libssl accepts), as received.
    unsafe { export((), own::SSL_CTX_free(ctx)).libssl_during(|| context::freeing(ctx)) }
}

/// libssl's `SSL_CTX_flush_sessions`: removes every session expired at time
/// `t` (a session expires when `t > time + timeout`), or every session when
/// `t` is 0, calling the remove callback for each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_flush_sessions(ctx: *mut SSL_CTX, t: c_long) {
    // SAFETY: the caller's live ctx (or NULL) and time, as received.
    unsafe { export((), own::SSL_CTX_flush_sessions(ctx, t)).on_ctx(ctx, |s| s.flush(t)) }
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
    let id_usable = id_len as usize <= MAX_SESSION_ID_LEN && (!id.is_null() || id_len == 0);
    // SAFETY: the caller's live connection (or NULL), which holds a
    // reference to its session ctx, and `id_len` readable bytes at `id`.
    unsafe {
        export(0, own::SSL_has_matching_session_id(ssl, id, id_len)).on(
            || {
                let conn = Connection::from_ptr(ssl.cast_mut()).filter(|_| id_usable)?;
                Some((context::session_ctx_of(conn), conn))
            },
            |state, conn| state.has_matching_session_id(conn, bytes(id, id_len)),
        )
    }
}

/// libssl's `SSL_SESSION_set_time`; a cached session moves to its new place
/// in expiry order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_time(s: *mut SSL_SESSION, t: c_long) -> c_long {
    // SAFETY: the caller's live session (or NULL, which libssl checks).
    unsafe { export(0, own::SSL_SESSION_set_time(s, t)).then_times_changed(s) }
}

/// libssl's `SSL_SESSION_set_timeout`; a cached session moves to its new
/// place in expiry order.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_timeout(s: *mut SSL_SESSION, t: c_long) -> c_long {
    // SAFETY: the caller's live session (or NULL; libssl checks it and t).
    unsafe {
        export(0, own::SSL_SESSION_set_timeout(s, t)).libssl_then(true, |ret| {
            if let (1, Some(sess)) = (ret, Session::from_ptr(s)) {
                context::session_times_changed(sess)
            }
        })
    }
}

/// libssl's `SSL_SESSION_set_protocol_version`; a cached session is then
/// found under its new version, as in libssl (which compares the version
/// it reads from the cached session). NULL: returns 0 (libssl crashes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_SESSION_set_protocol_version(
    s: *mut SSL_SESSION,
    version: c_int,
) -> c_int {
    // SAFETY: the caller's session, non-null where libssl is called.
    unsafe {
        export(0, own::SSL_SESSION_set_protocol_version(s, version))
            .libssl_then(!s.is_null(), |_| {
                Session::from_ptr(s).map_or((), context::session_version_changed)
            })
    }
}

/// libssl's `SSL_set_SSL_CTX` (used by SNI servers). The connection's
/// session cache and callbacks stay those of the ctx it was created with.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_set_SSL_CTX(ssl: *mut SSL, ctx: *mut SSL_CTX) -> *mut SSL_CTX {
    // SAFETY: the caller's connection, non-null where used, and ctx.
    unsafe {
        export(std::ptr::null_mut(), own::SSL_set_SSL_CTX(ssl, ctx))
            .ours_first(!ssl.is_null(), || {
                Connection::from_ptr(ssl).map_or((), context::remember_session_ctx)
            })
    }
}

/// libssl's `SSL_CTX_set_session_id_context`; sesscache also remembers the
/// context, to which sessions in a shared store are bound.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_CTX_set_session_id_context(
    ctx: *mut SSL_CTX,
    sid_ctx: *const c_uchar,
    sid_ctx_len: c_uint,
) -> c_int {
    // SAFETY: the caller's ctx, non-null where used; libssl accepts
    // `sid_ctx_len` bytes at `sid_ctx` only if they are there.
    unsafe {
        export(
            0,
            own::SSL_CTX_set_session_id_context(ctx, sid_ctx, sid_ctx_len),
        )
        .libssl_then_on_success(!ctx.is_null(), || {
            context::state_of(ctx).map_or((), |s| s.set_sid_ctx(bytes(sid_ctx, sid_ctx_len)))
        })
    }
}

/// libssl's `SSL_set_session_id_context`; sesscache also remembers the
/// context, to which sessions in a shared store are bound.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SSL_set_session_id_context(
    ssl: *mut SSL,
    sid_ctx: *const c_uchar,
    sid_ctx_len: c_uint,
) -> c_int {
    // SAFETY: the caller's connection, non-null where used; libssl accepts
    // `sid_ctx_len` bytes at `sid_ctx` only if they are there.
    unsafe {
        export(
            0,
            own::SSL_set_session_id_context(ssl, sid_ctx, sid_ctx_len),
        )
        .libssl_then_on_success(!ssl.is_null(), || {
            Connection::from_ptr(ssl).map_or((), |c| {
                context::remember_connection_sid_ctx(c, bytes(sid_ctx, sid_ctx_len))
            })
        })
    }
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
    // SAFETY: the caller's NUL-terminated strings (or NULL).
    boundary(0, || unsafe { configure(name, value) })
}

/// # Safety
/// `name` and `value` are NULL or NUL-terminated strings.
unsafe fn configure(name: *const c_char, value: *const c_char) -> c_int {
    // SAFETY: per the contract.
    let (Some(name), Some(value)) = (unsafe { c_str(name) }, unsafe { c_str(value) }) else {
        return 0;
    };
    match (name.to_str(), value.to_str()) {
        (Ok(name), Ok(value)) => c_int::from(crate::store::configure(name, value)),
        _ => 0,
    }
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
    // SAFETY: the caller's NUL-terminated string and out-parameter (or NULL).
    boundary(0, || unsafe { counter(name, value) })
}

/// # Safety
/// `name` is NULL or a NUL-terminated string, `value` NULL or writable.
unsafe fn counter(name: *const c_char, value: *mut u64) -> c_int {
    // SAFETY: per the contract.
    let Some(name) = (unsafe { c_str(name) }).filter(|_| !value.is_null()) else {
        return 0;
    };
    let Some((_, v)) = crate::store::counters()
        .into_iter()
        .find(|(n, _)| name.to_bytes() == n.as_bytes())
    else {
        return 0;
    };
    // SAFETY: the caller's out-parameter, non-null.
    unsafe { *value = v };
    1
}

/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a std::ffi::CStr> {
    // SAFETY: per the contract.
    (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CTRL_SESS_NUMBER;
    use crate::libssl::{real, tls_method};

    unsafe extern "C" {
        fn SSL_SESSION_new() -> *mut SSL_SESSION;
        fn SSL_SESSION_set1_id(s: *mut SSL_SESSION, id: *const c_uchar, len: c_uint) -> c_int;
    }

    unsafe extern "C" fn keep_session(_: *mut SSL, _: *mut SSL_SESSION) -> c_int {
        0
    }

    /// A ctx that this library did not set up (made by libssl's own
    /// `SSL_CTX_new_ex`, which never reaches our export) keeps libssl's own
    /// callbacks and cache through the callback, add, remove, ctrl and free
    /// exports.
    #[test]
    fn a_ctx_without_state_is_served_by_libssl() {
        let real = real().expect("the test binary links libssl");
        // SAFETY: libssl's own ctx creation with a static method; the ctx
        // and session are freed below, and every call gets live pointers.
        unsafe {
            let ctx =
                own::SSL_CTX_new_ex(std::ptr::null_mut(), std::ptr::null(), tls_method())(real);
            assert!(!ctx.is_null());
            assert!(context::state_of(ctx).is_none());

            SSL_CTX_sess_set_new_cb(ctx, Some(keep_session));
            let address = |cb: NewSessionCb| cb.map(|f| f as usize);
            let kept = address(Some(keep_session));
            assert_eq!(address(SSL_CTX_sess_get_new_cb(ctx)), kept);
            let in_libssl = own::SSL_CTX_sess_get_new_cb(ctx)(real);
            assert_eq!(address(in_libssl), kept, "stored in libssl's ctx");

            let session = SSL_SESSION_new();
            let id = [7u8; 32];
            assert_eq!(SSL_SESSION_set1_id(session, id.as_ptr(), 32), 1);
            assert_eq!(SSL_CTX_add_session(ctx, session), 1);
            assert_eq!(
                SSL_CTX_add_session(ctx, session),
                0,
                "already in libssl's table"
            );
            assert_eq!(
                SSL_CTX_ctrl(ctx, CTRL_SESS_NUMBER, 0, std::ptr::null_mut()),
                1
            );
            assert_eq!(SSL_CTX_remove_session(ctx, session), 1);
            assert_eq!(
                SSL_CTX_ctrl(ctx, CTRL_SESS_NUMBER, 0, std::ptr::null_mut()),
                0
            );

            openssl_sys::SSL_SESSION_free(session);
            SSL_CTX_free(ctx);
        }
    }
}
