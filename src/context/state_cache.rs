//! Finding the state of a ctx without libcrypto's ex_data lookup on every
//! call: one process-wide slot, one remembered pair per thread, and a
//! generation that retires both when a ctx gains or loses its state.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use openssl_sys::SSL_CTX;

use super::{CTX_INDEX, CtxState};
use crate::libssl;

/// Bumped whenever a ctx gains or loses its state, so that a thread's
/// remembered (ctx, state) pair from before is never used again: a freed
/// ctx's address may come back for a new one.
static STATE_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last ctx this thread asked about, its state (NULL: not ours) and
    /// the generation it was read in. Saves libcrypto's ex_data lookup on
    /// every call.
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

pub(super) fn state_generation_changed() {
    STATE_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// `ctx` is being freed: nothing remembered of its state may be used again.
pub fn forget_state_of(ctx: *mut c_void) {
    state_generation_changed();
    SHARED_SLOT.release(ctx as usize);
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
pub(super) unsafe fn state_in_ex_data(ctx: *mut SSL_CTX) -> *const CtxState {
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
