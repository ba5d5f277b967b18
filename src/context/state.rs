//! [`CtxState`]: the session cache of one `SSL_CTX` with the application's
//! callbacks and cache mode, and libssl's semantics for adding, removing,
//! flushing and new sessions on it.

use std::ffi::{c_int, c_long};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use openssl_sys::{SSL_CTX, SSL_SESSION};

use super::marking::mark_not_resumable;
use super::parking::being_freed_here;
use super::probe::internal_calls_reach_us;
use super::rules::{self, NewSessionFacts, auto_flush_due, libssl_caches_new_session};
use super::{SESS_CACHE_NO_INTERNAL_STORE, SESS_CACHE_SERVER, SESS_CACHE_UPDATE_TIME};
use crate::cache::{DEFAULT_CAPACITY, Evicted, SessionCache, SessionKey, SessionKeyRef};
use crate::diag::{self, Event};
use crate::libssl::{
    self, Connection, Ctx, GetSessionCb, NewSessionCb, RemoveSessionCb, Session, SessionRef,
};
use crate::store;

/// One application callback pointer, stored as an address (0 = unset).
struct CallbackSlot(AtomicUsize);

impl CallbackSlot {
    const fn empty() -> CallbackSlot {
        CallbackSlot(AtomicUsize::new(0))
    }
    fn store(&self, addr: usize) {
        self.0.store(addr, Ordering::Release)
    }
    fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A function pointer's address, 0 for `None`.
macro_rules! cb_addr {
    ($cb:expr) => {
        $cb.map_or(0usize, |f| f as usize)
    };
}

/// Back from an address to the callback type that was stored there.
macro_rules! cb_from_addr {
    ($addr:expr, $fn_type:ty) => {{
        let addr: usize = $addr;
        if addr == 0 {
            None
        } else {
            // SAFETY: the address was stored from a non-null function
            // pointer of exactly this type by the matching setter.
            Some(unsafe { std::mem::transmute::<usize, $fn_type>(addr) })
        }
    }};
}

/// The session cache of one `SSL_CTX`, with the application's callbacks and
/// cache mode.
pub struct CtxState {
    new_cb: CallbackSlot,
    remove_cb: CallbackSlot,
    get_cb: CallbackSlot,
    /// The cache mode the application set (libssl holds it
    /// `| NO_INTERNAL_STORE`, see [`super::rules::mode_for_libssl`]).
    pub(super) mode: AtomicU32,
    /// The ctx's session-ID context, as last set through our export; the
    /// shared store binds sealed sessions to it.
    sid_ctx: Mutex<Vec<u8>>,
    pub cache: SessionCache<SessionRef>,
    /// Never below the number of sessions parked in libssl's own table
    /// (see [`CtxState::park`]): raised before each parking and lowered
    /// again when that parking put nothing into libssl's table (see
    /// [`super::parking::Parking`]), or when libssl's table gives one up to us. While it
    /// is 0, nothing that leaves our cache needs a look at libssl's table.
    pub(super) parked: AtomicUsize,
    /// The ctx this state belongs to (its address): where sessions are
    /// parked for it when another ctx marks one it holds.
    ctx: usize,
    /// Held while a marked session joins our cache and libssl's table, and
    /// while one that left our cache leaves libssl's: a removal that found
    /// the session in our cache waits until its parking is complete.
    pub(super) park_lock: Mutex<()>,
}

impl CtxState {
    /// A state for `ctx`, with libssl's defaults for its cache mode and size.
    pub(super) fn new(ctx: *mut SSL_CTX, mode: u32, size: c_long) -> CtxState {
        CtxState {
            new_cb: CallbackSlot::empty(),
            remove_cb: CallbackSlot::empty(),
            get_cb: CallbackSlot::empty(),
            mode: AtomicU32::new(mode),
            sid_ctx: Mutex::new(Vec::new()),
            cache: new_cache(usize::try_from(size).unwrap_or(DEFAULT_CAPACITY)),
            parked: AtomicUsize::new(0),
            ctx: ctx as usize,
            park_lock: Mutex::new(()),
        }
    }

    pub fn mode(&self) -> u32 {
        self.mode.load(Ordering::Relaxed)
    }

    pub fn set_sid_ctx(&self, sid_ctx: &[u8]) {
        *self.sid_ctx.lock().unwrap_or_else(|e| e.into_inner()) = sid_ctx.to_vec();
    }

    pub(super) fn sid_ctx(&self) -> Vec<u8> {
        self.sid_ctx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells the shared store (if any) that a server session is gone.
    // Inline, with the work out of line: every removal asks, and without a
    // store the answer is two loads.
    #[inline]
    fn forget_in_store(&self, sess: *mut SSL_SESSION) {
        if self.mode() & SESS_CACHE_SERVER == 0 {
            return;
        }
        if let Some(remote) = store::remote() {
            forget_in_remote(remote, sess);
        }
    }

    pub fn set_new_cb(&self, cb: NewSessionCb) {
        self.new_cb.store(cb_addr!(cb))
    }
    pub fn set_remove_cb(&self, cb: RemoveSessionCb) {
        self.remove_cb.store(cb_addr!(cb))
    }
    pub fn set_get_cb(&self, cb: GetSessionCb) {
        self.get_cb.store(cb_addr!(cb))
    }
    pub fn new_cb(&self) -> NewSessionCb {
        cb_from_addr!(self.new_cb.load(), libssl::NewSessionFn)
    }
    pub fn remove_cb(&self) -> RemoveSessionCb {
        cb_from_addr!(self.remove_cb.load(), libssl::RemoveSessionFn)
    }
    pub fn get_cb(&self) -> GetSessionCb {
        cb_from_addr!(self.get_cb.load(), libssl::GetSessionFn)
    }

    /// The ctx this state belongs to.
    pub(super) fn own_ctx(&self) -> *mut SSL_CTX {
        self.ctx as *mut SSL_CTX
    }

    /// The ctx this state belongs to, as a view.
    pub(super) fn own_ctx_view(&self) -> Ctx {
        // SAFETY: `attach` stored a live, non-null ctx; the state is
        // released by that ctx's ex_data free callback, so the ctx lives
        // while the state can be used.
        unsafe { Ctx::from_ptr(self.own_ctx()) }.expect("a state's ctx is not NULL")
    }

    /// `SSL_CTX_add_session` on this state's ctx: 1 if the session was new.
    pub fn add(&self, sess: Session) -> c_int {
        c_int::from(self.add_session(sess))
    }

    /// `SSL_CTX_remove_session` on this state's ctx.
    pub fn remove(&self, sess: Session) -> c_int {
        self.remove_session(sess)
    }

    /// libssl's `SSL_CTX_add_session`: returns whether the session was new.
    #[inline]
    pub fn add_session(&self, sess: Session) -> bool {
        let ctx = self.own_ctx();
        if self.mode() & SESS_CACHE_UPDATE_TIME != 0 {
            sess.set_time_now();
        }
        // A session marked not resumable is parked as well; the lock keeps
        // a removal from seeing it in our cache before it is in libssl's
        // table (sessions libssl hands us are never marked).
        let mut parking = (!sess.not_resumable_flag_clear()).then(|| self.begin_parking());
        // SAFETY: `sess` is live (the caller holds it).
        let Some(handle) = (unsafe { SessionRef::up_ref(sess.as_ptr()) }) else {
            return false;
        };
        let mut evicted = Evicted::default();
        let expiry = sess.expiry();
        // The key is borrowed from the session, which the caller holds.
        let Some(outcome) =
            sess.with_key_ref(|key| self.cache.insert_into(key, handle, expiry, &mut evicted))
        else {
            return false;
        };
        if outcome.added {
            if outcome.released.is_some() {
                log_session(Event::Replace, ctx, sess.as_ptr());
            }
            log_session(Event::Add, ctx, sess.as_ptr());
        }
        if let Some(replaced) = &outcome.released {
            if replaced.as_ptr() != sess.as_ptr() {
                // Out of libssl's table first: it has the same key.
                self.unpark_locked(replaced.as_ptr(), parking.is_some());
            }
        }
        if let Some(parking) = parking.as_mut() {
            self.park(parking, sess.as_ptr());
        }
        drop(parking);
        drop(outcome.released);
        if !evicted.is_empty() {
            self.notify_evicted(evicted);
        }
        outcome.added
    }

    /// The sessions an insert evicted, out of line: most inserts evict
    /// nothing.
    #[inline(never)]
    pub(super) fn notify_evicted<E>(&self, evicted: E)
    where
        E: IntoIterator<Item = SessionRef>,
        E::IntoIter: DoubleEndedIterator,
    {
        // libssl frees each evicted session right after its callback.
        let notify = |victim: SessionRef| self.notify_removed(victim.as_ptr(), Event::Evict);
        if libssl::running_behaviour().removals_newest_first {
            evicted.into_iter().rev().for_each(notify);
        } else {
            evicted.into_iter().for_each(notify);
        }
    }

    /// libssl's `SSL_CTX_remove_session`, for a call that reached our export.
    #[inline]
    pub fn remove_session(&self, sess: Session) -> c_int {
        // The key is borrowed from the session, which the caller holds; an
        // empty ID is ignored, as libssl does.
        let Some(removed) = sess
            .with_key_ref(|key| {
                (!key.id().is_empty())
                    .then(|| self.cache.remove_ref(key, |c| c.as_ptr() == sess.as_ptr()))
            })
            .flatten()
        else {
            return 0;
        };
        if let Some(cached) = &removed {
            self.unpark(cached.as_ptr());
        }
        // libssl reports the session it was asked about, even when the cache
        // held a different one under that key, and frees after the callback.
        self.notify_removed(sess.as_ptr(), Event::Remove);
        if removed.is_none() {
            self.park_where_else_cached(sess);
        }
        c_int::from(removed.is_some())
    }

    /// libssl removed `sess` itself (an internal call that did not reach our
    /// export, perhaps of a session parked in its table) and already marked
    /// it not resumable.
    pub fn removed_by_libssl(&self, sess: Session) {
        let ctx = self.own_ctx();
        // libssl's flush in the `SSL_CTX_free` that frees this ctx: a
        // session parked here is still in our cache, and leaves with the
        // others when our ex_data goes right after, in libssl's order.
        let key = sess.key();
        let held_here = |key: &SessionKey| {
            self.cache
                .contains_where(key, |s| s.as_ptr() == sess.as_ptr())
        };
        if being_freed_here(ctx) && key.as_ref().is_some_and(held_here) {
            return;
        }
        let removed = key.and_then(|key| self.cache.remove(&key));
        if removed.is_none() {
            self.park_where_else_cached(sess);
        }
        log_session(Event::Remove, ctx, sess.as_ptr());
        self.forget_in_store(sess.as_ptr());
        if let Some(cb) = self.remove_cb() {
            // SAFETY: the application's callback, with libssl's arguments.
            unsafe { cb(ctx, sess.as_ptr()) };
        }
        drop(removed);
    }

    /// libssl's `SSL_CTX_flush_sessions`: `t == 0` removes everything.
    pub fn flush(&self, t: i64) {
        if t == 0 {
            return self.flush_all(Event::FlushAll);
        }
        let line = libssl::running_behaviour();
        let now = line.time(t);
        let expired = if line.readd_moves_session {
            self.cache.take_expired(now)
        } else {
            self.cache
                .take_expired_by(|s| s.view().expiry().has_passed(now))
        };
        self.notify_all_removed(expired, Event::Expire)
    }

    pub(super) fn flush_all(&self, event: Event) {
        self.notify_all_removed(self.cache.take_all(), event)
    }

    /// libssl calls every callback of a flush first and frees afterwards,
    /// or (see `removals_newest_first`) frees each after its callback,
    /// newest first.
    fn notify_all_removed(&self, mut victims: Vec<SessionRef>, event: Event) {
        if libssl::running_behaviour().removals_newest_first {
            while let Some(victim) = victims.pop() {
                self.notify_removed(victim.as_ptr(), event);
            }
            return;
        }
        for victim in &victims {
            self.notify_removed(victim.as_ptr(), event);
        }
        drop(victims);
    }

    /// A removal: the session is marked not resumable and the application's
    /// remove callback is told.
    // Inline: on every removal; what is rare (logging, a store, parked
    // sessions, marking through libssl) is out of line.
    #[inline]
    pub(super) fn notify_removed(&self, sess: *mut SSL_SESSION, event: Event) {
        let ctx = self.own_ctx();
        log_session(event, ctx, sess);
        // A session removed or expired here must not be resumed elsewhere;
        // one evicted for room, or dropped with its ctx, stays valid there.
        if rules::removal_leaves_store(event) {
            self.forget_in_store(sess);
        }
        self.unpark(sess);
        mark_not_resumable(ctx, sess);
        if let Some(cb) = self.remove_cb() {
            // SAFETY: the application's callback, with a live ctx and session.
            unsafe { cb(ctx, sess) };
        }
    }

    /// libssl would store this new session (`ssl_update_cache`): store it
    /// if the application's mode and libssl's TLS 1.3 rule say so, and
    /// share it through the store if there is one.
    pub fn on_new_session(&self, conn: Connection, sess: Session) {
        if self.mode() & SESS_CACHE_NO_INTERNAL_STORE != 0 {
            return;
        }
        let store = libssl_caches_new_session(NewSessionFacts {
            tls13: conn.is_tls13(),
            server: conn.is_server(),
            max_early_data: conn.max_early_data(),
            options: conn.options(),
            has_remove_cb: self.remove_cb().is_some(),
        });
        if store && self.add_session(sess) && conn.is_server() {
            if let (Some(remote), Some(key)) = (store::remote(), sess.key()) {
                remote.session_stored(&key, sess);
            }
        }
    }

    /// libssl's flush every 255 good handshakes, for a libssl whose own call
    /// to `SSL_CTX_flush_sessions` does not reach us.
    pub fn auto_flush_if_due(&self, conn: Connection) {
        if internal_calls_reach_us() {
            return;
        }
        let mode = self.mode();
        let stat = rules::good_handshakes_counter(conn.is_server());
        // A statistics read.
        let Some(good) = self.own_ctx_view().ctrl(stat, 0) else {
            return;
        };
        if auto_flush_due(mode, conn.is_server(), good) {
            self.flush(libssl::now());
        }
    }

    /// libssl's `SSL_has_matching_session_id` for a usable `id`.
    pub fn has_matching_session_id(&self, conn: Connection, id: &[u8]) -> c_int {
        SessionKeyRef::new(conn.version(), id)
            .map_or(0, |key| c_int::from(self.cache.contains_ref(key)))
    }
}

#[cold]
#[inline(never)]
fn forget_in_remote(remote: &store::Remote, sess: *mut SSL_SESSION) {
    // SAFETY: callers pass a session they hold or were handed by libssl.
    if let Some(key) = unsafe { Session::from_ptr(sess) }.and_then(|s| s.key()) {
        remote.session_removed(&key);
    }
}

pub(super) fn log_id(event: Event, ctx: *mut SSL_CTX, id: &[u8]) {
    if diag::logging() {
        diag::log_event(event, ctx.cast_const().cast(), id);
    }
}

#[inline]
pub(super) fn log_session(event: Event, ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
    if diag::logging() {
        log_session_now(event, ctx, sess);
    }
}

#[cold]
#[inline(never)]
fn log_session_now(event: Event, ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
    // SAFETY: callers pass a session they hold or were handed by libssl.
    if let Some(key) = unsafe { Session::from_ptr(sess) }.and_then(|s| s.key()) {
        diag::log_event(event, ctx.cast_const().cast(), key.id());
    }
}

/// An empty cache of `capacity`, re-adding as the running libssl does.
fn new_cache(capacity: usize) -> SessionCache<SessionRef> {
    let cache = SessionCache::new(capacity);
    if libssl::running_behaviour().readd_moves_session {
        cache
    } else {
        cache.keeping_place_on_readd()
    }
}
