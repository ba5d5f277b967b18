//! Per-`SSL_CTX` state and the libssl session-cache semantics built on the
//! core cache.
//!
//! How the take-over works: every `SSL_CTX` gets a [`CtxState`] in its
//! ex_data. On the real ctx we set `SSL_SESS_CACHE_NO_INTERNAL_STORE` (so
//! libssl's own table stays empty but for the rare sessions parked there,
//! see [`CtxState::park`]) and install our three hooks as libssl's external
//! cache callbacks. libssl then asks our get hook on every server lookup
//! that its own table misses, tells our new hook about every session it
//! would have cached, and tells our remove hook about every removal it
//! performs itself. The hooks alone
//! carry the semantics, which matters with a libssl linked `-Bsymbolic`
//! (upstream's default) whose internal calls never reach our exported
//! functions; with Debian's libssl, internal calls such as
//! `SSL_CTX_remove_session` from an alert reach our exports as well.
//!
//! The application's own callbacks and cache mode are kept here and never
//! given to libssl; they run with none of our locks held.

use std::cell::Cell;
use std::ffi::{c_int, c_long, c_uchar, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use once_cell::sync::OnceCell;
use openssl_sys::{SSL_CTX, SSL_SESSION};

use crate::cache::{DEFAULT_CAPACITY, Evicted, SessionCache, SessionKey, SessionKeyRef};
use crate::diag::{self, Event};
use crate::libssl::{
    self, Connection, Ctx, GetSessionCb, NewSessionCb, RemoveSessionCb, Session, SessionRef,
    not_resumable,
};
use crate::store;

mod rules;
use rules::{NewSessionFacts, auto_flush_due, libssl_caches_new_session, mode_for_libssl};

pub const SESS_CACHE_CLIENT: u32 = 0x0001;
pub const SESS_CACHE_SERVER: u32 = 0x0002;
pub const SESS_CACHE_NO_AUTO_CLEAR: u32 = 0x0080;
pub const SESS_CACHE_NO_INTERNAL_LOOKUP: u32 = 0x0100;
pub const SESS_CACHE_NO_INTERNAL_STORE: u32 = 0x0200;
pub const SESS_CACHE_UPDATE_TIME: u32 = 0x0400;

pub const CTRL_SESS_NUMBER: c_int = 20;
pub const CTRL_SESS_CONNECT_GOOD: c_int = 22;
pub const CTRL_SESS_ACCEPT_GOOD: c_int = 25;
pub const CTRL_SESS_CB_HIT: c_int = 28;
pub const CTRL_SESS_MISSES: c_int = 29;
pub const CTRL_SESS_CACHE_FULL: c_int = 31;
pub const CTRL_SET_SESS_CACHE_SIZE: c_int = 42;
pub const CTRL_GET_SESS_CACHE_SIZE: c_int = 43;
pub const CTRL_SET_SESS_CACHE_MODE: c_int = 44;
pub const CTRL_GET_SESS_CACHE_MODE: c_int = 45;

thread_local! {
    /// Set while we call libssl's `SSL_CTX_remove_session` on an
    /// application's ctx ourselves: to mark a session not resumable (the
    /// public API has no other way), or to take a parked session (see
    /// [`CtxState::park`]) out of libssl's table. Our remove hook ignores
    /// the call it causes.
    static MARKING_NOT_RESUMABLE: Cell<bool> = const { Cell::new(false) };
    /// Set while libssl's own `SSL_CTX_add_session` parks a session: its
    /// size check must see its own table, not our cache.
    static PARKING: Cell<bool> = const { Cell::new(false) };
    /// Set while the start-up probe runs libssl's `SSL_CTX_new`.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// Sets one of the thread's re-entrancy flags for its lifetime: the flag
/// goes back to what it was on every way out, a panic included.
struct FlagSet {
    flag: &'static std::thread::LocalKey<Cell<bool>>,
    before: bool,
}

impl FlagSet {
    fn new(flag: &'static std::thread::LocalKey<Cell<bool>>) -> Self {
        let before = flag.with(|f| f.replace(true));
        FlagSet { flag, before }
    }
}

impl Drop for FlagSet {
    fn drop(&mut self) {
        self.flag.with(|f| f.set(self.before));
    }
}

/// Whether libssl's internal calls reach our exports (Debian's libssl: yes;
/// one linked `-Bsymbolic`: no). Decided once by a probe.
static INTERNAL_CALLS_REACH_US: OnceCell<bool> = OnceCell::new();
static PROBE_REACHED: AtomicBool = AtomicBool::new(false);

/// The functions libssl calls back on every ctx of ours, given by the C
/// boundary (`ffi::hooks`) before its first call into this module: this
/// module installs them but, below the boundary, cannot name them.
pub struct Hooks {
    /// libssl's new-session callback.
    pub new_session: libssl::NewSessionFn,
    /// libssl's remove-session callback.
    pub remove_session: libssl::RemoveSessionFn,
    /// libssl's get-session callback.
    pub get_session: libssl::GetSessionFn,
    /// ex_data free callback of the ctx index: calls [`release_state`].
    pub free_ctx_state: libssl::ExFree,
    /// ex_data free callback of a connection's session-ID context: calls
    /// [`free_connection_sid_ctx`].
    pub free_sid_ctx: libssl::ExFree,
    /// ex_data dup callback of both connection indices: copies nothing
    /// (`SSL_dup` starts the copy with nothing recorded; copying the boxed
    /// session-ID context would free it twice).
    pub dup_copies_nothing: libssl::ExDup,
}

static HOOKS: OnceCell<&'static Hooks> = OnceCell::new();

/// Gives this module the hooks it installs; the first call counts.
pub fn install_hooks(hooks: &'static Hooks) {
    let _ = HOOKS.set(hooks);
}

/// One ex_data index, allocated at first use once the hooks are there.
struct ExIndex {
    idx: OnceCell<Option<c_int>>,
    new: fn(&Hooks) -> Option<c_int>,
}

impl ExIndex {
    const fn new(new: fn(&Hooks) -> Option<c_int>) -> ExIndex {
        ExIndex {
            idx: OnceCell::new(),
            new,
        }
    }

    fn get(&self) -> Option<c_int> {
        *self
            .idx
            .get_or_try_init(|| HOOKS.get().map(|hooks| (self.new)(hooks)).ok_or(()))
            .ok()?
    }
}

static CTX_INDEX: ExIndex = ExIndex::new(|h| libssl::new_ctx_index(h.free_ctx_state));

/// Takes our `SSL_CTX` ex_data index now, at load, before the application
/// takes any (the hooks must be installed first): libcrypto runs a ctx's
/// ex_data free callbacks in index order, so ours (which removes the ctx's
/// sessions through the remove callback) then runs before every
/// application's, as libssl's own flush in `SSL_CTX_free` does, also where
/// that flush does not reach our export (`-Bsymbolic`).
pub fn reserve_ctx_index() {
    let _ = CTX_INDEX.get();
}
static SSL_INDEX: ExIndex = ExIndex::new(|h| libssl::new_ssl_index(h.dup_copies_nothing, None));
/// A connection's own session-ID context (`SSL_set_session_id_context`),
/// as a `Box<Vec<u8>>`.
static SSL_SID_CTX_INDEX: ExIndex =
    ExIndex::new(|h| libssl::new_ssl_index(h.dup_copies_nothing, Some(h.free_sid_ctx)));

/// Every live state, for `SSL_SESSION_set_time`, which must find the cache
/// a session is in.
static REGISTRY: RwLock<Vec<Arc<CtxState>>> = RwLock::new(Vec::new());

/// How many states the registry holds, read without its lock.
static CACHES_ALIVE: AtomicUsize = AtomicUsize::new(0);

fn registry_write() -> std::sync::RwLockWriteGuard<'static, Vec<Arc<CtxState>>> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

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

/// A parking in progress ([`CtxState::begin_parking`]): holds `park_lock`
/// and one raise of the parked count, which it gives back when dropped
/// (still under the lock) unless libssl's table took the session. Else
/// every removal through another ctx of a session not cached there, and
/// every add of a session parked already, would leave the count raised
/// for good, and every later removal would take the slow unparking path.
struct Parking<'a> {
    parked: &'a AtomicUsize,
    taken: bool,
    _lock: MutexGuard<'a, ()>,
}

impl Drop for Parking<'_> {
    fn drop(&mut self) {
        if !self.taken {
            self.parked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The session cache of one `SSL_CTX`, with the application's callbacks and
/// cache mode.
pub struct CtxState {
    new_cb: CallbackSlot,
    remove_cb: CallbackSlot,
    get_cb: CallbackSlot,
    /// The cache mode the application set (libssl holds it
    /// `| NO_INTERNAL_STORE`, see [`mode_for_libssl`]).
    mode: AtomicU32,
    /// The ctx's session-ID context, as last set through our export; the
    /// shared store binds sealed sessions to it.
    sid_ctx: std::sync::Mutex<Vec<u8>>,
    pub cache: SessionCache<SessionRef>,
    /// Never below the number of sessions parked in libssl's own table
    /// (see [`CtxState::park`]): raised before each parking and lowered
    /// again when that parking put nothing into libssl's table (see
    /// [`Parking`]), or when libssl's table gives one up to us. While it
    /// is 0, nothing that leaves our cache needs a look at libssl's table.
    parked: AtomicUsize,
    /// The ctx this state belongs to (its address): where sessions are
    /// parked for it when another ctx marks one it holds.
    ctx: usize,
    /// Held while a marked session joins our cache and libssl's table, and
    /// while one that left our cache leaves libssl's: a removal that found
    /// the session in our cache waits until its parking is complete.
    park_lock: Mutex<()>,
}

impl CtxState {
    pub fn mode(&self) -> u32 {
        self.mode.load(Ordering::Relaxed)
    }

    pub fn set_sid_ctx(&self, sid_ctx: &[u8]) {
        *self.sid_ctx.lock().unwrap_or_else(|e| e.into_inner()) = sid_ctx.to_vec();
    }

    fn sid_ctx(&self) -> Vec<u8> {
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
    fn own_ctx(&self) -> *mut SSL_CTX {
        self.ctx as *mut SSL_CTX
    }

    /// The ctx this state belongs to, as a view.
    fn own_ctx_view(&self) -> Ctx {
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
            sess.set_time_in_libssl(libssl::now() as c_long);
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
    fn notify_evicted(&self, evicted: Evicted<SessionRef>) {
        for victim in evicted {
            // libssl frees each evicted session right after its callback.
            self.notify_removed(victim.as_ptr(), Event::Evict);
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
        let removed = sess.key().and_then(|key| self.cache.remove(&key));
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
    pub fn flush(&self, t: c_long) {
        if t == 0 {
            self.flush_all(Event::FlushAll)
        } else {
            self.notify_all_removed(self.cache.take_expired(t), Event::Expire)
        }
    }

    fn flush_all(&self, event: Event) {
        self.notify_all_removed(self.cache.take_all(), event)
    }

    /// libssl calls every callback of a flush first and frees afterwards.
    fn notify_all_removed(&self, victims: Vec<SessionRef>, event: Event) {
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
    fn notify_removed(&self, sess: *mut SSL_SESSION, event: Event) {
        let ctx = self.own_ctx();
        log_session(event, ctx, sess);
        // A session removed or expired here must not be resumed elsewhere;
        // one evicted for room, or dropped with its ctx, stays valid there.
        if matches!(event, Event::Remove | Event::Expire) {
            self.forget_in_store(sess);
        }
        self.unpark(sess);
        mark_not_resumable(ctx, sess);
        if let Some(cb) = self.remove_cb() {
            // SAFETY: the application's callback, with a live ctx and session.
            unsafe { cb(ctx, sess) };
        }
    }

    /// Takes `park_lock` and raises the parked count, before the session
    /// to park can be seen in our cache: a removal that finds it there
    /// then sees the count, waits for the lock and takes it out of
    /// libssl's table again.
    fn begin_parking(&self) -> Parking<'_> {
        let lock = self.park_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.parked.fetch_add(1, Ordering::Relaxed);
        Parking {
            parked: &self.parked,
            taken: false,
            _lock: lock,
        }
    }

    /// A session marked not resumable joins our cache (the application
    /// added a removed or evicted session back, or one its own callback
    /// marked): it goes into libssl's own table of `ctx` as well, "parked"
    /// there, as part of `parking`.
    ///
    /// Why: libssl's internal lookup does not look at the mark, so plain
    /// libssl resumes such a session from its cache (or, expired, counts a
    /// timeout and, in TLS 1.2, removes it), while a session reaching libssl
    /// through the get callback, as our hits do, is dropped when marked.
    /// With the session in libssl's table, libssl's internal lookup (left
    /// on for this, see [`mode_for_libssl`]) finds it first and goes on
    /// exactly as without us. The table holds nothing else, so every other
    /// lookup misses it and reaches our get hook.
    fn park(&self, parking: &mut Parking<'_>, sess: *mut SSL_SESSION) {
        let ctx = self.own_ctx_view();
        // SAFETY: callers pass a session they hold.
        let Some(sess) = (unsafe { Session::from_ptr(sess) }) else {
            return;
        };
        if libssl::real().is_none() {
            return;
        }
        let _parking = FlagSet::new(&PARKING);
        // libssl's add takes its own reference and lock, runs no callback (its table has no size limit, see
        // `attach`, and its size check reaches libssl's own counts while
        // `PARKING` is set) and, with `UPDATE_TIME` kept from it, changes
        // nothing in the session. It releases no reference: the only
        // session it could replace, one parked under the same key, left its
        // table just before (`add_session`). It returns 0, and takes
        // nothing into its table, when the session is there already.
        parking.taken = ctx.add_to_own_table(sess) == Some(1);
    }

    /// `sess`, not cached here, was just marked not resumable through this
    /// ctx: plain libssl still resumes it from any other ctx's cache that
    /// holds it (its internal lookup ignores the mark), so it is parked
    /// there. Only where more than one ctx has a cache.
    fn park_where_else_cached(&self, sess: Session) {
        if CACHES_ALIVE.load(Ordering::Relaxed) < 2 {
            return;
        }
        let Some(key) = sess.key() else { return };
        with_states(|states| {
            for other in states.iter().filter(|o| !std::ptr::eq(o.as_ref(), self)) {
                let mut parking = other.begin_parking();
                if other
                    .cache
                    .contains_where(&key, |s| s.as_ptr() == sess.as_ptr())
                {
                    other.park(&mut parking, sess.as_ptr());
                }
            }
        })
    }

    /// `sess` left our cache: if it was parked, it leaves libssl's table.
    #[inline]
    fn unpark(&self, sess: *mut SSL_SESSION) {
        self.unpark_locked(sess, false)
    }

    /// [`CtxState::unpark`]; `locked`: the caller holds `park_lock`.
    // Inline, with the work out of line: every removal asks, twice, and
    // while nothing is parked the answer is one load.
    #[inline]
    fn unpark_locked(&self, sess: *mut SSL_SESSION, locked: bool) {
        // After the session left our cache: had it been found there while
        // being parked, the count is raised already (see `add_session`).
        if self.parked.load(Ordering::Relaxed) != 0 {
            self.unpark_slow(sess, locked);
        }
    }

    #[cold]
    fn unpark_slow(&self, sess: *mut SSL_SESSION, locked: bool) {
        let _parking = (!locked).then(|| self.park_lock.lock().unwrap_or_else(|e| e.into_inner()));
        // SAFETY: callers pass a session they hold.
        let marked =
            unsafe { Session::from_ptr(sess) }.is_some_and(|s| !s.not_resumable_flag_clear());
        if let (true, Some(_)) = (marked, libssl::real()) {
            if remove_on_app_ctx(self.own_ctx(), sess) == Some(1) {
                // One parked session fewer (it cannot go below 0: every
                // parking raised it first).
                let _ = self
                    .parked
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
    }

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
                lend_for_anti_replay(session_ctx, conn, found.as_ptr());
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
                    lend_for_anti_replay(session_ctx, conn, shared.as_ptr());
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
                lend_for_anti_replay(session_ctx, conn, ret);
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
        for victim in outcome.evicted {
            self.notify_removed(victim.as_ptr(), Event::Evict);
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
        let stat = if conn.is_server() {
            CTRL_SESS_ACCEPT_GOOD
        } else {
            CTRL_SESS_CONNECT_GOOD
        };
        // A statistics read.
        let Some(good) = self.own_ctx_view().ctrl(stat, 0) else {
            return;
        };
        if auto_flush_due(mode, conn.is_server(), good) {
            self.flush(libssl::now() as c_long);
        }
    }

    /// libssl's `SSL_has_matching_session_id` for a usable `id`.
    pub fn has_matching_session_id(&self, conn: Connection, id: &[u8]) -> c_int {
        SessionKeyRef::new(conn.version(), id)
            .map_or(0, |key| c_int::from(self.cache.contains_ref(key)))
    }

    /// The cache commands of `SSL_CTX_ctrl`; `None` for every other command.
    pub fn ctrl(&self, cmd: c_int, larg: c_long) -> Option<c_long> {
        libssl::real()?;
        let own = self.own_ctx_view();
        // One of libssl's own counters.
        let real_stat = || own.ctrl(cmd, 0).unwrap_or(0);
        let stats = self.cache.stats();
        Some(match cmd {
            CTRL_SET_SESS_CACHE_SIZE => {
                let Ok(size) = usize::try_from(larg) else {
                    return Some(0);
                };
                self.cache.set_capacity(size) as c_long
            }
            CTRL_GET_SESS_CACHE_SIZE => self.cache.capacity() as c_long,
            CTRL_SET_SESS_CACHE_MODE => {
                let mode = larg as u32;
                let previous = self.mode.swap(mode, Ordering::Relaxed);
                // libssl keeps NO_INTERNAL_STORE so its own table holds
                // parked sessions only, whatever the application asks.
                own.ctrl(CTRL_SET_SESS_CACHE_MODE, mode_for_libssl(mode));
                c_long::from(previous)
            }
            CTRL_GET_SESS_CACHE_MODE => c_long::from(self.mode()),
            CTRL_SESS_NUMBER => self.cache.len() as c_long,
            // libssl counts our internal hits as callback hits, since they
            // reach it through our get hook.
            CTRL_SESS_CB_HIT => rules::without_our_hits(real_stat(), stats.hits),
            // libssl counts a miss for every lookup that does not find a
            // parked session, our hits included: those were not misses.
            CTRL_SESS_MISSES => rules::without_our_hits(real_stat(), stats.hits),
            CTRL_SESS_CACHE_FULL => stats.evictions as c_long,
            _ => return None,
        })
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

fn log_id(event: Event, ctx: *mut SSL_CTX, id: &[u8]) {
    if diag::logging() {
        diag::log_event(event, ctx.cast_const().cast(), id);
    }
}

#[inline]
fn log_session(event: Event, ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
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
fn lend_for_anti_replay(session_ctx: *mut SSL_CTX, conn: Connection, sess: *mut SSL_SESSION) {
    if !anti_replay(conn) || internal_calls_reach_us() {
        return;
    }
    // SAFETY: the connection holds a reference to its session ctx, and
    // libssl or our cache one to the session.
    if let (Some(ctx), Some(sess)) = (unsafe { Ctx::from_ptr(session_ctx) }, unsafe {
        Session::from_ptr(sess)
    }) {
        ctx.add_to_own_table(sess);
    }
}

/// Marks `sess` not resumable by letting libssl's own
/// `SSL_CTX_remove_session` do it (the public API has no other way). On the
/// marker ctx, whose table is empty and which has no callbacks, that is all
/// it does. Without one (its creation failed), on `ctx`, whose table holds
/// parked sessions only (one under this key has left it already, see
/// `CtxState::unpark`), but whose remove hook is ours: the hook ignores
/// that call.
///
/// Once libssl has shown where it keeps the flag, marking is one store
/// there instead (see `libssl::not_resumable`).
#[inline]
fn mark_not_resumable(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
    // SAFETY: callers pass a session they hold.
    let Some(session) = (unsafe { Session::from_ptr(sess) }) else {
        return;
    };
    if !not_resumable::mark_directly(session) {
        mark_not_resumable_through_libssl(ctx, session);
    }
}

#[cold]
#[inline(never)]
fn mark_not_resumable_through_libssl(ctx: *mut SSL_CTX, session: Session) {
    if libssl::real().is_none() {
        return;
    }
    let watch = not_resumable::watch(session);
    // SAFETY: the marker ctx, once set, lives as long as the process.
    match unsafe { Ctx::from_ptr(MARKER_CTX.load(Ordering::Acquire)) } {
        None => {
            remove_on_app_ctx(ctx, session.as_ptr());
        }
        Some(marker) => {
            marker.remove_from_own_table(session);
        }
    }
    if let Some(watch) = watch {
        watch.learn(session);
    }
}

/// libssl's own `SSL_CTX_remove_session` on an application's ctx, whose
/// table holds parked sessions only: marks `sess` not resumable and takes
/// whatever session libssl's table has under its key out of it (returns 1
/// if there was one). Our remove hook ignores the call.
fn remove_on_app_ctx(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) -> Option<c_int> {
    // SAFETY: callers pass a live ctx and a session they hold.
    let (ctx, sess) = (unsafe { Ctx::from_ptr(ctx) }?, unsafe {
        Session::from_ptr(sess)
    }?);
    let _marking = FlagSet::new(&MARKING_NOT_RESUMABLE);
    // libssl's function takes its own lock; none of ours is held.
    ctx.remove_from_own_table(sess)
}

pub fn parking() -> bool {
    PARKING.with(|p| p.get())
}

pub fn marking_not_resumable() -> bool {
    MARKING_NOT_RESUMABLE.with(|m| m.get())
}

/// Bumped whenever a ctx gains or loses its state, so that a thread's
/// remembered (ctx, state) pair from before is never used again: a freed
/// ctx's address may come back for a new one.
static STATE_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last ctx this thread asked about, its state (NULL: not ours) and
    /// the generation it was read in. Saves libcrypto's ex_data lookup (a
    /// third of the instructions of a cache lookup) on every call.
    static LAST_STATE: Cell<(usize, *const CtxState, u64)> =
        const { Cell::new((0, std::ptr::null(), u64::MAX)) };
}

/// One process-wide remembered (ctx, state) pair, read without thread-local
/// storage: in a shared library every thread-local access is a call to
/// `__tls_get_addr`, a visible part of a lookup's cost. It serves the first ctx with a state asked about while it is
/// empty (a server usually has one ctx that caches sessions); every other
/// ctx goes through the thread-local pair below.
///
/// Why two plain loads are enough: the slot names a ctx only from a `claim`
/// for it until its `release`, and `release` runs when that ctx is freed
/// (before and after its state is released, where the generation changes).
/// A caller's ctx is live for the whole call, so if the slot names it, no
/// `release` of it can run during the call, and the `Release` store of the
/// ctx in `claim` makes the state stored before it visible. A freed ctx's
/// address that comes back for a new ctx was released from the slot before
/// the old ctx's memory went. Writers are serialised by `writer`.
struct SharedSlot {
    ctx: AtomicUsize,
    state: AtomicPtr<CtxState>,
    writer: Mutex<()>,
}

static SHARED_SLOT: SharedSlot = SharedSlot {
    ctx: AtomicUsize::new(0),
    state: AtomicPtr::new(std::ptr::null_mut()),
    writer: Mutex::new(()),
};

impl SharedSlot {
    fn state_of(&self, ctx: usize) -> Option<*const CtxState> {
        if self.ctx.load(Ordering::Acquire) != ctx {
            return None;
        }
        let state = self.state.load(Ordering::Relaxed);
        (!state.is_null()).then_some(state.cast_const())
    }

    /// Takes the slot for `ctx` if it is free (and `state` is one of ours).
    fn claim(&self, ctx: usize, state: *const CtxState) {
        if state.is_null() || ctx == 0 || self.ctx.load(Ordering::Relaxed) != 0 {
            return;
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.ctx.load(Ordering::Relaxed) == 0 {
            self.state.store(state.cast_mut(), Ordering::Relaxed);
            self.ctx.store(ctx, Ordering::Release);
        }
    }

    /// `ctx` is being freed: the slot, if it names `ctx`, is free again.
    fn release(&self, ctx: usize) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.ctx.load(Ordering::Relaxed) == ctx {
            self.ctx.store(0, Ordering::Relaxed);
            self.state.store(std::ptr::null_mut(), Ordering::Relaxed);
        }
    }
}

fn state_generation_changed() {
    STATE_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// `ctx` is being freed: nothing remembered of its state may be used again.
pub fn forget_state_of(ctx: *mut c_void) {
    state_generation_changed();
    SHARED_SLOT.release(ctx as usize);
}

/// The cache commands of `SSL_CTX_ctrl`, answered for a ctx of ours;
/// `None`: libssl answers.
///
/// # Safety
/// `ctx` must be NULL or a live `SSL_CTX`.
pub unsafe fn ctrl(ctx: *mut SSL_CTX, cmd: c_int, larg: c_long) -> Option<c_long> {
    // libssl's own add, parking a session, asks its own table's size and
    // count (see `CtxState::park`).
    if !is_cache_command(cmd) || parking() {
        return None;
    }
    // SAFETY: per the contract.
    unsafe { state_of(ctx) }?.ctrl(cmd, larg)
}

fn is_cache_command(cmd: c_int) -> bool {
    (CTRL_SESS_NUMBER..=CTRL_SESS_CACHE_FULL).contains(&cmd)
        || (CTRL_SET_SESS_CACHE_SIZE..=CTRL_GET_SESS_CACHE_MODE).contains(&cmd)
}

/// The state of `ctx`, if it is one of ours.
///
/// # Safety
/// `ctx` must be a live `SSL_CTX` for all of `'a`.
// Inline, with the thread-local and ex_data paths out of line: every call
// asks, and for the ctx in the shared slot the answer is two loads.
#[inline]
pub unsafe fn state_of<'a>(ctx: *mut SSL_CTX) -> Option<&'a CtxState> {
    if ctx.is_null() {
        return None;
    }
    let state = match SHARED_SLOT.state_of(ctx as usize) {
        Some(state) => state,
        // SAFETY: live ctx per the contract.
        None => unsafe { state_of_other_ctx(ctx) },
    };
    // SAFETY: a non-null state was read from the ctx's ex_data in this
    // generation; it stays there (and alive) until the ctx is freed, which
    // starts a new generation.
    unsafe { state.as_ref() }
}

/// [`state_of`] for a ctx that is not in the shared slot: this thread's
/// remembered pair, or the ctx's ex_data.
///
/// # Safety
/// `ctx` must be a live `SSL_CTX`.
#[inline(never)]
unsafe fn state_of_other_ctx(ctx: *mut SSL_CTX) -> *const CtxState {
    let generation = STATE_GENERATION.load(Ordering::Acquire);
    let (last_ctx, last_state, last_generation) = LAST_STATE.with(Cell::get);
    if last_ctx == ctx as usize && last_generation == generation {
        return last_state;
    }
    // SAFETY: live ctx per the contract.
    let state = unsafe { state_in_ex_data(ctx) };
    LAST_STATE.with(|l| l.set((ctx as usize, state, generation)));
    SHARED_SLOT.claim(ctx as usize, state);
    state
}

/// The state pointer stored at our index of `ctx` (NULL when none).
///
/// # Safety
/// `ctx` must be a live `SSL_CTX`.
unsafe fn state_in_ex_data(ctx: *mut SSL_CTX) -> *const CtxState {
    let Some(idx) = CTX_INDEX.get() else {
        return std::ptr::null();
    };
    // SAFETY: live ctx per the contract. A non-null value at our index is
    // an `Arc<CtxState>` we put there, released only by the ex_data free
    // callback when the ctx goes.
    unsafe { libssl::ctx_ex_data(ctx, idx) }
        .cast::<CtxState>()
        .cast_const()
}

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
fn expected_sid_ctx(conn: Connection) -> Vec<u8> {
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

/// Takes over the cache of a newly created ctx.
///
/// # Safety
/// `ctx` must be a live `SSL_CTX` that nobody else uses yet.
pub unsafe fn attach(ctx: *mut SSL_CTX) {
    if !libssl::serving() {
        return;
    }
    if PROBING.with(|p| p.get()) {
        PROBE_REACHED.store(true, Ordering::Relaxed);
        return;
    }
    // SAFETY: live ctx per the contract.
    let (Some(view), Some(_), Some(idx), Some(hooks)) = (
        unsafe { Ctx::from_ptr(ctx) },
        libssl::real(),
        CTX_INDEX.get(),
        HOOKS.get(),
    ) else {
        return;
    };
    // SAFETY: live ctx per the contract.
    if !unsafe { state_in_ex_data(ctx) }.is_null() {
        return;
    }
    internal_calls_reach_us();
    store::freeze();
    // Its defaults (libssl's functions were found above).
    let (mode, size) = (
        view.ctrl(CTRL_GET_SESS_CACHE_MODE, 0).unwrap_or(0),
        view.ctrl(CTRL_GET_SESS_CACHE_SIZE, 0).unwrap_or(0),
    );
    let state = Arc::new(CtxState {
        new_cb: CallbackSlot::empty(),
        remove_cb: CallbackSlot::empty(),
        get_cb: CallbackSlot::empty(),
        mode: AtomicU32::new(mode as u32),
        sid_ctx: std::sync::Mutex::new(Vec::new()),
        cache: SessionCache::new(usize::try_from(size).unwrap_or(DEFAULT_CAPACITY)),
        parked: AtomicUsize::new(0),
        ctx: ctx as usize,
        park_lock: Mutex::new(()),
    });
    let raw = Arc::into_raw(Arc::clone(&state));
    // SAFETY: live ctx; the pointer is released by `free_ctx_state`.
    if !unsafe { libssl::set_ctx_ex_data(ctx, idx, raw.cast_mut().cast()) } {
        // SAFETY: `raw` came from `Arc::into_raw` just above and was not stored.
        drop(unsafe { Arc::from_raw(raw) });
        return; // libssl keeps its own cache for this ctx
    }
    state_generation_changed();
    {
        let mut registry = registry_write();
        registry.push(state);
        CACHES_ALIVE.store(registry.len(), Ordering::Relaxed);
    }
    diag::set_stats_sources(&STATS_SOURCES);
    // Our hooks, and libssl's own store and lookup off.
    view.set_callbacks(hooks.new_session, hooks.remove_session, hooks.get_session);
    view.ctrl(CTRL_SET_SESS_CACHE_MODE, mode_for_libssl(mode as u32));
    // Parked sessions only: libssl must never evict one by itself.
    view.ctrl(CTRL_SET_SESS_CACHE_SIZE, 0);
}

/// The start-up probe's ctx, kept for the rest of the process: it has no
/// state of ours, no callbacks and an empty table, so libssl's
/// `SSL_CTX_remove_session` on it only marks the session not resumable.
/// Marking on the application's ctx instead costs a thread-local flag for
/// our remove hook to ignore the call, and the hook's call itself, on every
/// removal. Kept rather than freed: an application's `SSL_CTX` ex_data
/// free callback never runs for a ctx it did not make.
static MARKER_CTX: AtomicPtr<SSL_CTX> = AtomicPtr::new(std::ptr::null_mut());

/// The probe's ctx when it is not the marker ctx: kept, not freed, so that
/// the process's ctx count is the same either way.
static UNUSED_PROBE_CTX: AtomicPtr<SSL_CTX> = AtomicPtr::new(std::ptr::null_mut());

/// `SESSCACHE_TEST_NO_MARKER_CTX=1` makes the library mark removed sessions
/// on the application's ctx, the path otherwise taken only when creating the
/// marker ctx failed, so that `c-tests/run.sh` can compare that path with
/// libssl too. For tests; it changes no result, only the cost of a removal.
fn marker_ctx_wanted() -> bool {
    std::env::var_os("SESSCACHE_TEST_NO_MARKER_CTX").is_none_or(|v| v.is_empty() || v == "0")
}

/// Whether libssl's internal calls reach our exports; probed once by
/// creating a ctx with libssl's `SSL_CTX_new`, which calls `SSL_CTX_new_ex`
/// internally (that ctx is then kept as the marker ctx).
pub fn internal_calls_reach_us() -> bool {
    *INTERNAL_CALLS_REACH_US.get_or_init(|| {
        if libssl::real().is_none() {
            return false;
        }
        let probing = FlagSet::new(&PROBING);
        let probe = libssl::own_ctx_new().unwrap_or(std::ptr::null_mut());
        drop(probing);
        // Kept as the marker ctx (see `mark_not_resumable`), unless the tests
        // ask for the path taken when there is none.
        if marker_ctx_wanted() {
            MARKER_CTX.store(probe, Ordering::Release);
        } else {
            UNUSED_PROBE_CTX.store(probe, Ordering::Release);
        }
        PROBE_REACHED.load(Ordering::Relaxed)
    })
}

/// Every live state, under the registry's read lock.
fn with_states<R>(f: impl FnOnce(&[Arc<CtxState>]) -> R) -> R {
    f(&REGISTRY.read().unwrap_or_else(|e| e.into_inner()))
}

/// Sessions cached by every ctx of the process.
fn sessions_cached() -> usize {
    with_states(|states| states.iter().map(|s| s.cache.len()).sum())
}

/// The stats file's lines after the event counters: the sessions cached,
/// how sessions are marked not resumable, the shared store's.
static STATS_SOURCES: [fn() -> String; 3] = [
    || format!("sessions={}\n", sessions_cached()),
    not_resumable::stats_line,
    store::stats_lines,
];

/// Re-positions `sess` in every cache that holds it, after its time or
/// timeout changed (libssl re-links it in its owner's list).
pub fn session_times_changed(sess: Session) {
    let Some(key) = sess.key() else { return };
    let expiry = sess.expiry();
    // Every cache that holds it (libssl re-links it only in the ctx it was
    // added to last, and its lists are corrupt by then anyway).
    with_states(|states| {
        for state in states {
            state
                .cache
                .reposition_where(&key, expiry, |s| s.as_ptr() == sess.as_ptr());
        }
    })
}

/// Tells every cache that holds `sess` its new protocol version: libssl
/// reads the version from the session itself, so a session added to two
/// contexts is found under the new version in both.
pub fn session_version_changed(sess: Session) {
    let Some(key) = sess.key() else { return };
    with_states(|states| {
        for state in states {
            state
                .cache
                .version_changed_where(&key, |s| s.as_ptr() == sess.as_ptr());
        }
    })
}

/// A ctx of ours is being freed (libssl's ex_data free callback): its
/// sessions go, through the application's remove callback. The caller
/// calls [`forget_state_of`] before (callbacks run here) and after.
///
/// # Safety
/// `ptr` is the value at our index of a ctx, the `Arc` stored by
/// `attach`; libssl calls its free callback once, when the ctx is freed.
pub unsafe fn release_state(ptr: *mut c_void) {
    // SAFETY: per the contract.
    let state = unsafe { Arc::from_raw(ptr.cast::<CtxState>().cast_const()) };
    // With Debian's libssl, SSL_CTX_free's flush reached our export and
    // the cache is empty already; otherwise the sessions go now, still
    // through the application's remove callback.
    state.flush_all(Event::CtxFree);
    let mut registry = registry_write();
    registry.retain(|s| !Arc::ptr_eq(s, &state));
    CACHES_ALIVE.store(registry.len(), Ordering::Relaxed);
}
