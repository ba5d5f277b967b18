//! Parking: a session marked not resumable that joins our cache goes into
//! libssl's own table as well, because libssl's own lookup ignores the
//! mark and would resume it (see [`CtxState::park`]).

use std::cell::Cell;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicUsize, Ordering};

use openssl_sys::{SSL_CTX, SSL_SESSION};

use super::marking::remove_on_app_ctx;
use super::registry::{caches_alive, with_states};
use super::{CtxState, FlagSet};
use crate::libssl::{self, Session};

thread_local! {
    /// Set while libssl's own `SSL_CTX_add_session` parks a session: its
    /// size check must see its own table, not our cache.
    static PARKING: Cell<bool> = const { Cell::new(false) };
}

pub fn parking() -> bool {
    PARKING.with(|p| p.get())
}

thread_local! {
    /// The ctx this thread frees through our `SSL_CTX_free` export (null:
    /// none).
    static FREEING: Cell<*mut SSL_CTX> = const { Cell::new(std::ptr::null_mut()) };
}

/// While alive, this thread is in `SSL_CTX_free` of its ctx: libssl's own
/// flush there removes the sessions parked in its table before our ex_data
/// goes, and those are then left for our flush ([`CtxState::removed_by_libssl`]).
pub struct Freeing {
    before: *mut SSL_CTX,
}

/// See [`Freeing`].
pub fn freeing(ctx: *mut SSL_CTX) -> Freeing {
    Freeing {
        before: FREEING.with(|f| f.replace(ctx)),
    }
}

impl Drop for Freeing {
    fn drop(&mut self) {
        FREEING.with(|f| f.set(self.before));
    }
}

/// Whether this thread is in `SSL_CTX_free(ctx)`.
pub(super) fn being_freed_here(ctx: *mut SSL_CTX) -> bool {
    !ctx.is_null() && FREEING.with(|f| f.get()) == ctx
}

/// A parking in progress ([`CtxState::begin_parking`]): holds `park_lock`
/// and one raise of the parked count, which it gives back when dropped
/// (still under the lock) unless libssl's table took the session. Else
/// every removal through another ctx of a session not cached there, and
/// every add of a session parked already, would leave the count raised
/// for good, and every later removal would take the slow unparking path.
pub(super) struct Parking<'a> {
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

impl CtxState {
    /// Takes `park_lock` and raises the parked count, before the session
    /// to park can be seen in our cache: a removal that finds it there
    /// then sees the count, waits for the lock and takes it out of
    /// libssl's table again.
    pub(super) fn begin_parking(&self) -> Parking<'_> {
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
    /// on for this, see [`super::rules::mode_for_libssl`]) finds it first and goes on
    /// exactly as without us. The table holds nothing else, so every other
    /// lookup misses it and reaches our get hook.
    pub(super) fn park(&self, parking: &mut Parking<'_>, sess: *mut SSL_SESSION) {
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
    pub(super) fn park_where_else_cached(&self, sess: Session) {
        if caches_alive() < 2 {
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
    pub(super) fn unpark(&self, sess: *mut SSL_SESSION) {
        self.unpark_locked(sess, false)
    }

    /// [`CtxState::unpark`]; `locked`: the caller holds `park_lock`.
    // Inline, with the work out of line: every removal asks, twice, and
    // while nothing is parked the answer is one load.
    #[inline]
    pub(super) fn unpark_locked(&self, sess: *mut SSL_SESSION, locked: bool) {
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
}
