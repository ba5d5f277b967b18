//! What this library records on a connection (its ex_data): the ctx whose
//! cache it uses after an SNI switch, and the session-ID context the
//! application set on it.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use openssl_sys::SSL_CTX;

use super::ExIndex;
use super::state_of;
use crate::libssl::{self, Connection};

static SSL_INDEX: ExIndex = ExIndex::new(|h| libssl::new_ssl_index(h.dup_copies_nothing, None));
/// A connection's own session-ID context (`SSL_set_session_id_context`),
/// as a `Box<Vec<u8>>`.
static SSL_SID_CTX_INDEX: ExIndex =
    ExIndex::new(|h| libssl::new_ssl_index(h.dup_copies_nothing, Some(h.free_sid_ctx)));

/// Whether any connection ever switched `SSL_CTX`; until one does, a
/// connection's current ctx is its session ctx and the lookup is skipped.
static ANY_CTX_SWITCH: AtomicBool = AtomicBool::new(false);

/// The `SSL_CTX` whose cache a connection uses: the one it was created with,
/// even after `SSL_set_SSL_CTX` (libssl's `session_ctx`).
pub fn session_ctx_of(conn: Connection) -> *mut SSL_CTX {
    if !ANY_CTX_SWITCH.load(Ordering::Acquire) {
        return conn.current_ctx();
    }
    if let Some(idx) = SSL_INDEX.get() {
        let recorded = conn.ex_data(idx);
        if !recorded.is_null() {
            return recorded.cast();
        }
    }
    conn.current_ctx()
}

/// The session-ID context a connection resumes in: its own if the
/// application set one on it, else its current ctx's (libssl copies the
/// ctx's at `SSL_new` and follows an SNI switch).
pub(super) fn expected_sid_ctx(conn: Connection) -> Vec<u8> {
    if let Some(idx) = SSL_SID_CTX_INDEX.get() {
        let own = conn.ex_data(idx).cast::<Vec<u8>>();
        // SAFETY: a non-null value at this index is the Box<Vec<u8>> stored
        // by `remember_connection_sid_ctx`, alive while the connection is.
        if let Some(own) = unsafe { own.as_ref() } {
            return own.clone();
        }
    }
    // SAFETY: the connection holds a reference to its current ctx.
    unsafe { state_of(conn.current_ctx()) }.map_or_else(Vec::new, |s| s.sid_ctx())
}

/// Records the session-ID context the application set on one connection.
pub fn remember_connection_sid_ctx(conn: Connection, sid_ctx: &[u8]) {
    let Some(idx) = SSL_SID_CTX_INDEX.get() else {
        return;
    };
    let old = conn.ex_data(idx).cast::<Vec<u8>>();
    let fresh = Box::into_raw(Box::new(sid_ctx.to_vec()));
    if conn.set_ex_data(idx, fresh.cast()) {
        if !old.is_null() {
            // SAFETY: the previous Box stored at this index, replaced above.
            drop(unsafe { Box::from_raw(old) });
        }
    } else {
        // SAFETY: not stored; still ours.
        drop(unsafe { Box::from_raw(fresh) });
    }
}

/// A connection with a session-ID context of its own is freed.
///
/// # Safety
/// `ptr` is NULL or the value at our session-ID context index of a
/// connection being freed (libssl's ex_data free callback, called once).
pub unsafe fn free_connection_sid_ctx(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: the Box<Vec<u8>> stored by `remember_connection_sid_ctx`,
        // freed once with its connection.
        drop(unsafe { Box::from_raw(ptr.cast::<Vec<u8>>()) });
    }
}

/// Called before a connection switches `SSL_CTX`: remembers its session ctx
/// the first time.
pub fn remember_session_ctx(conn: Connection) {
    let Some(idx) = SSL_INDEX.get() else { return };
    if conn.ex_data(idx).is_null() {
        conn.set_ex_data(idx, conn.current_ctx().cast());
        ANY_CTX_SWITCH.store(true, Ordering::Release);
    }
}
