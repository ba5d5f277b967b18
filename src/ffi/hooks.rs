//! The functions libssl calls back: the three external-cache callbacks
//! installed on every `SSL_CTX` of ours, and the ex_data callbacks of our
//! indices. [`install`] hands them to [`crate::context`], which installs
//! them, so that the dependency goes one way (C boundary → context).

use std::ffi::{c_int, c_long, c_uchar, c_void};

use openssl_sys::{SSL, SSL_CTX, SSL_SESSION};

use super::boundary::boundary;
use crate::context::{self, Hooks, state_of};
use crate::libssl::{Connection, Session};

static HOOKS: Hooks = Hooks {
    new_session: new_session_hook,
    remove_session: remove_session_hook,
    get_session: get_session_hook,
    free_ctx_state,
    free_sid_ctx,
    dup_copies_nothing,
};

/// Gives [`crate::context`] the hooks, before the first call into it.
pub(crate) fn install() {
    context::install_hooks(&HOOKS);
}

/// libssl's new-session callback: cache the session, then offer it to the
/// application's callback with the reference libssl took for it.
unsafe extern "C" fn new_session_hook(ssl: *mut SSL, session: *mut SSL_SESSION) -> c_int {
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
        state.on_new_session(conn, sess);
        Some((state, conn))
    });
    let Some((state, conn)) = prepared else {
        return 0;
    };
    let kept = match state.new_cb() {
        // SAFETY: the application's callback; the reference libssl took is
        // the application's if it returns non-zero, as with plain libssl.
        Some(app_new) => unsafe { app_new(ssl, session) },
        None => 0,
    };
    boundary((), || state.auto_flush_if_due(conn));
    kept
}

/// libssl's remove-session callback: libssl removed a session on its own
/// (an internal call that did not reach our export).
unsafe extern "C" fn remove_session_hook(ctx: *mut SSL_CTX, session: *mut SSL_SESSION) {
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
        state.removed_by_libssl(sess);
    })
}

/// libssl's get-session callback: our cache, then the application's.
unsafe extern "C" fn get_session_hook(
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
        let (found, copy_value) = state.lookup(conn, id, id_len);
        if !copy.is_null() {
            // SAFETY: libssl's out-parameter.
            unsafe { *copy = copy_value };
        }
        found
    })
}

/// ex_data free callback for our ctx index: the ctx is going away.
unsafe extern "C" fn free_ctx_state(
    parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut openssl_sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if ptr.is_null() {
        return;
    }
    // Before the release runs callbacks, and again after the state is
    // gone: nothing remembered in between may outlive it.
    context::forget_state_of(parent);
    // SAFETY: the value at our index of `parent`, which is being freed.
    boundary((), || unsafe { context::release_state(ptr) });
    context::forget_state_of(parent);
}

/// ex_data free callback for a connection's session-ID context.
unsafe extern "C" fn free_sid_ctx(
    _parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut openssl_sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    // SAFETY: the value at our index of a connection being freed.
    boundary((), || unsafe { context::free_connection_sid_ctx(ptr) })
}

/// ex_data dup callback for both our SSL indices: `SSL_dup` starts the copy
/// with nothing recorded. Its session ctx is the original's current ctx
/// (what `session_ctx_of` falls back to), and copying the boxed session-ID
/// context pointer would free it twice.
unsafe extern "C" fn dup_copies_nothing(
    _to: *mut openssl_sys::CRYPTO_EX_DATA,
    _from: *const openssl_sys::CRYPTO_EX_DATA,
    from_d: *mut *mut c_void,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) -> c_int {
    if !from_d.is_null() {
        // SAFETY: libssl passes a valid pointer to the value to copy.
        unsafe { *from_d = std::ptr::null_mut() };
    }
    1
}
