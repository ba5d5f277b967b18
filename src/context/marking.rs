//! Marking a session not resumable when the public API has no way to:
//! directly where `libssl::not_resumable` knows the flag, else through
//! libssl's own `SSL_CTX_remove_session` on the marker ctx (the start-up
//! probe's) or on the application's ctx.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, Ordering};

use openssl_sys::{SSL_CTX, SSL_SESSION};

use super::FlagSet;
use crate::libssl::{self, Ctx, Session, not_resumable};

thread_local! {
    /// Set while we call libssl's `SSL_CTX_remove_session` on an
    /// application's ctx ourselves: to mark a session not resumable (the
    /// public API has no other way), or to take a parked session (see
    /// [`super::CtxState::park`]) out of libssl's table. Our remove hook ignores
    /// the call it causes.
    static MARKING_NOT_RESUMABLE: Cell<bool> = const { Cell::new(false) };
}

pub fn marking_not_resumable() -> bool {
    MARKING_NOT_RESUMABLE.with(|m| m.get())
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
pub(super) fn mark_not_resumable(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) {
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
pub(super) fn remove_on_app_ctx(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) -> Option<c_int> {
    // SAFETY: callers pass a live ctx and a session they hold.
    let (ctx, sess) = (unsafe { Ctx::from_ptr(ctx) }?, unsafe {
        Session::from_ptr(sess)
    }?);
    let _marking = FlagSet::new(&MARKING_NOT_RESUMABLE);
    // libssl's function takes its own lock; none of ours is held.
    ctx.remove_from_own_table(sess)
}

/// Keeps the probe's ctx: as the marker ctx (see [`mark_not_resumable`]),
/// unless the tests ask for the path taken when there is none.
pub(super) fn keep_probe_ctx(probe: *mut SSL_CTX) {
    if marker_ctx_wanted() {
        MARKER_CTX.store(probe, Ordering::Release);
    } else {
        UNUSED_PROBE_CTX.store(probe, Ordering::Release);
    }
}
