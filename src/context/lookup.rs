//! The server lookup libssl asks our get hook for: our cache, then the
//! shared store, then the application's get callback, with libssl's TLS 1.3
//! early-data anti-replay rule.

use std::ffi::{c_int, c_uchar};

use openssl_sys::SSL_SESSION;

use super::connection::expected_sid_ctx;
use super::probe::internal_calls_reach_us;
use super::rules;
use super::state::{log_id, log_session};
use super::{CtxState, SESS_CACHE_NO_INTERNAL_LOOKUP, SESS_CACHE_NO_INTERNAL_STORE};
use crate::cache::SessionKey;
use crate::diag::Event;
use crate::libssl::{Connection, Session, SessionRef};
use crate::store;

impl CtxState {
    /// Server lookup for libssl's `lookup_sess_in_cache`: our cache first,
    /// then the application's get callback. Returns the session and the
    /// `*copy` value to give libssl.
    pub fn lookup(
        &self,
        conn: Connection,
        id_ptr: *const c_uchar,
        id_len: c_int,
    ) -> (*mut SSL_SESSION, c_int) {
        let session_ctx = self.own_ctx();
        let mode = self.mode();
        if mode & SESS_CACHE_NO_INTERNAL_LOOKUP == 0 {
            // libssl refuses an over-long ID before it asks the callback.
            let Ok(len) = usize::try_from(id_len) else {
                return (std::ptr::null_mut(), 1);
            };
            let key = if len == 0 {
                SessionKey::new(conn.version(), &[])
            } else if id_ptr.is_null() {
                None
            } else {
                // SAFETY: libssl passes `id_len` readable bytes at `id_ptr`.
                SessionKey::new(conn.version(), unsafe {
                    std::slice::from_raw_parts(id_ptr, len)
                })
            };
            let Some(key) = key else {
                return (std::ptr::null_mut(), 1);
            };
            if store::remote().is_some_and(|r| r.deleted_by_peer(&key)) {
                // Another process removed this session: it goes here too,
                // before the lookup below counts it.
                if let Some(stale) = self.cache.peek(&key) {
                    self.remove_session(stale.view());
                }
            }
            // Under libssl's anti-replay rule a session is single use, and
            // with a store across every server that shares it: a session
            // that can carry early data, found here, is resumed only if
            // this server takes it out of the store.
            let remote = store::remote();
            let single_use = remote.is_some() && anti_replay(conn);
            let mut lost = false;
            if let (true, Some(remote)) = (single_use, remote) {
                if let Some(local) = self.cache.peek(&key) {
                    if local.view().max_early_data() > 0 && !remote.claim(&key) {
                        // Another server sharing the store may have resumed
                        // it: early data is single use across all of them.
                        self.remove_session(local.view());
                        lost = true;
                    }
                }
            }
            if let Some(found) = self.cache.get(&key) {
                log_id(Event::Hit, session_ctx, key.id());
                self.lend_for_anti_replay(conn, found.as_ptr());
                // Our reference goes to libssl (*copy = 0), as the one
                // libssl's own lookup would have taken.
                return (found.into_raw(), 0);
            }
            log_id(Event::Miss, session_ctx, key.id());
            if let Some(remote) = remote.filter(|_| !lost) {
                if let Some(shared) = remote.fetch(&key, &expected_sid_ctx(conn), single_use) {
                    log_id(Event::StoreHit, session_ctx, key.id());
                    if mode & SESS_CACHE_NO_INTERNAL_STORE == 0 {
                        self.cache_shared(key, &shared);
                    }
                    self.lend_for_anti_replay(conn, shared.as_ptr());
                    return (shared.into_raw(), 0);
                }
            }
        }
        let Some(app_get) = self.get_cb() else {
            return (std::ptr::null_mut(), 1);
        };
        let mut copy: c_int = 1;
        // SAFETY: the application's callback with libssl's own arguments;
        // `copy` is a valid out-parameter preset to 1 as libssl does.
        let ret = unsafe { app_get(conn.as_ptr(), id_ptr, id_len, &mut copy) };
        // SAFETY: a session returned by the callback is live; libssl itself
        // reads it next.
        if let Some(sess) = unsafe { Session::from_ptr(ret) } {
            // libssl stores a callback hit in its cache unless told not to,
            // and ignores a session flagged not resumable.
            if sess.not_resumable_flag_clear() {
                log_session(Event::CallbackHit, session_ctx, ret);
            }
            if mode & SESS_CACHE_NO_INTERNAL_STORE == 0 && sess.not_resumable_flag_clear() {
                self.add_session(sess);
                self.lend_for_anti_replay(conn, ret);
            }
        }
        (ret, copy)
    }

    /// A session from the shared store joins the local cache (as libssl
    /// adds an external hit), without being written back to the store.
    fn cache_shared(&self, key: SessionKey, shared: &SessionRef) {
        let outcome = self
            .cache
            .insert(key, shared.clone(), shared.view().expiry());
        if outcome.added {
            log_id(Event::Add, self.own_ctx(), key.id());
        }
        drop(outcome.released);
        if !outcome.evicted.is_empty() {
            self.notify_evicted(outcome.evicted);
        }
    }
}

/// libssl's anti-replay rule applies to the connection: a TLS 1.3 server
/// that accepts early data removes every session it resumes from the cache,
/// and resumes it only if that removal found it (`tls_parse_ctos_psk`).
fn anti_replay(conn: Connection) -> bool {
    conn.is_tls13()
        && conn.is_server()
        && rules::early_data_single_use(conn.max_early_data(), conn.options())
}

/// TLS 1.3 early-data anti-replay: right after the lookup, libssl calls
/// `SSL_CTX_remove_session` and accepts the ticket only if that returns 1.
/// Where that internal call does not reach our export (`-Bsymbolic`), the
/// session is put in libssl's own table for that one call; libssl removes it
/// at once and our remove hook then drops it from our cache as well.
impl CtxState {
    fn lend_for_anti_replay(&self, conn: Connection, sess: *mut SSL_SESSION) {
        if !anti_replay(conn) || internal_calls_reach_us() {
            return;
        }
        // SAFETY: libssl or our cache holds a reference to the session.
        if let Some(sess) = unsafe { Session::from_ptr(sess) } {
            self.own_ctx_view().add_to_own_table(sess);
        }
    }
}
