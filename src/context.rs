//! Per-`SSL_CTX` state and the libssl session-cache semantics built on the
//! core cache.
//!
//! How the take-over works: every `SSL_CTX` gets a [`CtxState`] in its
//! ex_data. On the real ctx we set `SSL_SESS_CACHE_NO_INTERNAL_STORE` (so
//! libssl's own table stays empty but for the rare sessions parked there,
//! see [`parking`]) and install our three hooks as libssl's external
//! cache callbacks. libssl then asks our get hook on every server lookup
//! that its own table misses, tells our new hook about every session it
//! would have cached, and tells our remove hook about every removal it
//! performs itself. The hooks alone carry the semantics, which matters
//! with a libssl linked `-Bsymbolic` (upstream's default) whose internal
//! calls never reach our exported functions; with Debian's libssl,
//! internal calls such as `SSL_CTX_remove_session` from an alert reach our
//! exports as well.
//!
//! The application's own callbacks and cache mode are kept here and never
//! given to libssl; they run with none of our locks held.
//!
//! One file per concern:
//! - [`state`]: [`CtxState`], libssl's add, remove, flush and new-session
//!   semantics on our cache;
//! - [`lookup`]: the server lookup (our cache, the shared store, the
//!   application's get callback) and early-data anti-replay;
//! - [`ctrl`]: the cache commands of `SSL_CTX_ctrl`;
//! - [`parking`]: libssl's own table, for the rare sessions parked there;
//! - [`marking`]: marking a session not resumable through libssl;
//! - [`probe`]: whether libssl's internal calls reach our exports;
//! - [`state_cache`]: finding a ctx's state fast (the ctx→state cache);
//! - [`connection`]: what is recorded on a connection (session ctx,
//!   session-ID context);
//! - [`registry`]: attaching a state to a new ctx, releasing it, and every
//!   live state;
//! - [`rules`]: the decisions that need no libssl, unit-tested.
//!
//! Where libssl's behaviour is reproduced, and so where a release line can
//! differ: the decisions in [`rules`], the command numbers and counters in
//! [`ctrl`], the TLS 1.3 lookup rules in [`lookup`], what libssl's own
//! lookup does with a marked session ([`parking`]), how the not-resumable
//! flag is set ([`marking`], `libssl::not_resumable`) and whether internal
//! calls reach the exports ([`probe`]).

use std::cell::Cell;
use std::ffi::c_int;

use once_cell::sync::OnceCell;

use crate::libssl;

mod connection;
mod ctrl;
mod lookup;
mod marking;
mod parking;
mod probe;
mod registry;
mod rules;
mod state;
mod state_cache;

pub use connection::{
    free_connection_sid_ctx, remember_connection_sid_ctx, remember_session_ctx, session_ctx_of,
};
pub use ctrl::ctrl;
pub use marking::marking_not_resumable;
pub use parking::freeing;
pub use registry::{attach, release_state, session_times_changed, session_version_changed};
pub use state::CtxState;
pub use state_cache::{forget_state_of, state_of};

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
