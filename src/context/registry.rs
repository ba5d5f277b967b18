//! The life of a state: attached to each new ctx, listed while it lives
//! (for the calls that must find every cache holding a session), released
//! with its ctx.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use openssl_sys::SSL_CTX;

use super::probe::{internal_calls_reach_us, probe_reached_here};
use super::rules::mode_for_libssl;
use super::state_cache::{state_generation_changed, state_in_ex_data};
use super::{
    CTRL_GET_SESS_CACHE_MODE, CTRL_GET_SESS_CACHE_SIZE, CTRL_SET_SESS_CACHE_MODE,
    CTRL_SET_SESS_CACHE_SIZE, CTX_INDEX, CtxState, HOOKS,
};
use crate::diag::{self, Event};
use crate::libssl::{self, Ctx, Session, not_resumable};
use crate::store;

/// Every live state, for `SSL_SESSION_set_time`, which must find the cache
/// a session is in.
static REGISTRY: RwLock<Vec<Arc<CtxState>>> = RwLock::new(Vec::new());

/// How many states the registry holds, read without its lock.
static CACHES_ALIVE: AtomicUsize = AtomicUsize::new(0);

fn registry_write() -> std::sync::RwLockWriteGuard<'static, Vec<Arc<CtxState>>> {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner())
}

/// Takes over the cache of a newly created ctx.
///
/// # Safety
/// `ctx` must be a live `SSL_CTX` that nobody else uses yet.
pub unsafe fn attach(ctx: *mut SSL_CTX) {
    if !libssl::serving() {
        return;
    }
    if probe_reached_here() {
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
    let state = Arc::new(CtxState::new(ctx, mode as u32, size));
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

/// Every live state, under the registry's read lock.
pub(super) fn with_states<R>(f: impl FnOnce(&[Arc<CtxState>]) -> R) -> R {
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
/// calls [`super::forget_state_of`] before (callbacks run here) and after.
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

/// How many states the registry holds, read without its lock.
pub(super) fn caches_alive() -> usize {
    CACHES_ALIVE.load(Ordering::Relaxed)
}
