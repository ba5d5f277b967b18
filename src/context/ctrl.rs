//! The session-cache commands of `SSL_CTX_ctrl`: the mode, the size and
//! the statistics, answered from our cache and corrected libssl counters.

use std::ffi::{c_int, c_long};
use std::sync::atomic::Ordering;

use openssl_sys::SSL_CTX;

use super::parking::parking;
use super::rules::{self, is_cache_command, mode_for_libssl};
use super::{
    CTRL_GET_SESS_CACHE_MODE, CTRL_GET_SESS_CACHE_SIZE, CTRL_SESS_CACHE_FULL, CTRL_SESS_CB_HIT,
    CTRL_SESS_MISSES, CTRL_SESS_NUMBER, CTRL_SET_SESS_CACHE_MODE, CTRL_SET_SESS_CACHE_SIZE,
    CtxState, state_of,
};
use crate::libssl;

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

impl CtxState {
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
