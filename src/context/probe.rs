//! Whether libssl's internal calls reach our exports, found once by a
//! probe: it decides which of libssl's internal calls our hooks must
//! stand in for.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use once_cell::sync::OnceCell;

use super::FlagSet;
use super::marking::keep_probe_ctx;
use crate::libssl;

thread_local! {
    /// Set while the start-up probe runs libssl's `SSL_CTX_new`.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// Whether libssl's internal calls reach our exports (Debian's libssl: yes;
/// one linked `-Bsymbolic`: no). Decided once by a probe.
static INTERNAL_CALLS_REACH_US: OnceCell<bool> = OnceCell::new();
static PROBE_REACHED: AtomicBool = AtomicBool::new(false);

/// Whether libssl's internal calls reach our exports; probed once by
/// creating a ctx with libssl's `SSL_CTX_new`, which calls `SSL_CTX_new_ex`
/// internally (that ctx is then kept as the marker ctx).
pub(super) fn internal_calls_reach_us() -> bool {
    *INTERNAL_CALLS_REACH_US.get_or_init(|| {
        if libssl::real().is_none() {
            return false;
        }
        let probing = FlagSet::new(&PROBING);
        let probe = libssl::own_ctx_new().unwrap_or(std::ptr::null_mut());
        drop(probing);
        keep_probe_ctx(probe);
        PROBE_REACHED.load(Ordering::Relaxed)
    })
}

/// Whether a ctx being attached is the probe's: then the probe has reached
/// our export, and the ctx gets no state.
pub(super) fn probe_reached_here() -> bool {
    let probing = PROBING.with(|p| p.get());
    if probing {
        PROBE_REACHED.store(true, Ordering::Relaxed);
    }
    probing
}
