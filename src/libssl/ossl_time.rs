//! A session's expiry as libssl 3.3 and later keep it: `OSSL_TIME`
//! nanoseconds (`timeout`, `time` and their saturated sum `calc_timeout`,
//! three consecutive 64-bit words of `struct ssl_session_st`), read where
//! libssl itself has shown they are.
//!
//! Why: libssl orders its cache and flushes by `calc_timeout`, which keeps
//! the fraction of a second a session was made at (a session decoded from
//! DER has whole seconds): the public getters give whole seconds only, so
//! the order of two sessions of the same second is not visible through
//! them.
//!
//! How the place is learnt, reading only: two sessions made with
//! `SSL_SESSION_new` get distinctive timeouts and times through libssl's
//! setters; the one aligned place, in a window after the session-ID
//! context (whose address `SSL_SESSION_get0_id_context` gives), where three
//! words read exactly `timeout`, `time` and their sum in nanoseconds for
//! both sessions is the place. Anything else (no such place, two of them)
//! leaves it unknown, and the expiry is computed from the public getters.

use std::ffi::{c_long, c_uint};

use once_cell::sync::OnceCell;

use super::release::NANOS;
use super::{Session, SessionRef, real, sys};

/// Bytes after the start of the session-ID context searched: past the
/// context buffer, far enough for the time words of every layout from 3.3
/// to 4.0, and inside the session in all of them.
const WINDOW: usize = 160;

/// libssl's session-ID context buffer (`SSL_MAX_SID_CTX_LENGTH`), which
/// the search starts after.
const SID_CTX_BUFFER: usize = 32;

/// The learnt offset of `timeout` from the session-ID context's address.
static OFFSET: OnceCell<Option<usize>> = OnceCell::new();

/// Learns the place now, if not yet tried.
pub fn learn_now() {
    OFFSET.get_or_init(learn);
}

/// The session's `calc_timeout` in nanoseconds, if its place is known.
pub fn calc_timeout(sess: Session) -> Option<u64> {
    let offset = (*OFFSET.get_or_init(learn))?;
    // SAFETY: `words` reads inside the session (see `learn`).
    Some(unsafe { words(sess, offset) }?[2])
}

/// Gives the session `time` (nanoseconds) and the `calc_timeout` libssl
/// derives from it, as libssl's own cache does under
/// `SSL_SESS_CACHE_UPDATE_TIME`. `whole_seconds` is the time the session
/// was just given through libssl's setter: the words are written only if
/// the learnt place holds exactly that time, its timeout and their sum
/// (otherwise nothing is written and the time stays whole seconds).
pub fn set_time(sess: Session, whole_seconds: u64, time: u64) {
    let Some(offset) = *OFFSET.get_or_init(learn) else {
        return;
    };
    // SAFETY: an offset inside the window (see `learn`).
    let (Some(p), Some([timeout, was, calc])) = (unsafe { place(sess, offset) }, unsafe {
        words(sess, offset)
    }) else {
        return;
    };
    if Some(was) != whole_seconds.checked_mul(NANOS) || calc != timeout.saturating_add(was) {
        return;
    }
    // SAFETY: the place just read and found holding this session's time
    // and expiry (aligned, inside the live session); the session is held
    // by the caller, and libssl itself writes these words of a session it
    // does not cache without a lock.
    unsafe {
        std::ptr::write_volatile(p.add(1), time);
        std::ptr::write_volatile(p.add(2), timeout.saturating_add(time));
    }
}

/// The address `offset` bytes after the session-ID context of `sess`, if
/// aligned for the words.
///
/// # Safety
/// `offset + 24` bytes after the context lie inside the session: true for
/// every offset below `WINDOW`, in every layout the window is for.
unsafe fn place(sess: Session, offset: usize) -> Option<*mut u64> {
    let mut len: c_uint = 0;
    // SAFETY: live session; libssl returns the address of its own buffer.
    let base = unsafe { sys::SSL_SESSION_get0_id_context(sess.as_ptr(), &mut len) } as usize;
    let at = base.checked_add(offset)?;
    (base != 0 && at % 8 == 0).then_some(at as *mut u64)
}

/// The three words at `offset` from the session-ID context of `sess`.
///
/// # Safety
/// As [`place`].
unsafe fn words(sess: Session, offset: usize) -> Option<[u64; 3]> {
    // SAFETY: per the contract.
    let p = unsafe { place(sess, offset) }?;
    // SAFETY: aligned, inside the live session per the contract; libssl
    // writes these words under its lock, a read sees either value.
    Some(unsafe {
        [
            std::ptr::read_volatile(p),
            std::ptr::read_volatile(p.add(1)),
            std::ptr::read_volatile(p.add(2)),
        ]
    })
}

/// A fresh session with this timeout and time, set through libssl.
fn probe(timeout: i64, time: i64) -> Option<SessionRef> {
    let real = real()?;
    // SAFETY: a new session with the one reference handed to us.
    let sess = unsafe { SessionRef::adopt(sys::SSL_SESSION_new()) }?;
    // SAFETY: live session we own.
    unsafe {
        (real.SSL_SESSION_set_timeout)(sess.as_ptr(), timeout as c_long);
        match real.SSL_SESSION_set_time_ex {
            Some(set_time_ex) => set_time_ex(sess.as_ptr(), time),
            None => (real.SSL_SESSION_set_time)(sess.as_ptr(), time as c_long),
        };
    }
    Some(sess)
}

fn learn() -> Option<usize> {
    let cases = [
        (1_234_567_i64, 1_700_000_123_i64),
        (7_654_321, 1_600_000_321),
    ];
    let probes: Vec<(SessionRef, [u64; 3])> = cases
        .iter()
        .map(|&(timeout, time)| {
            let want = [
                timeout as u64 * NANOS,
                time as u64 * NANOS,
                (timeout + time) as u64 * NANOS,
            ];
            Some((probe(timeout, time)?, want))
        })
        .collect::<Option<_>>()?;
    let mut found = (SID_CTX_BUFFER..WINDOW).step_by(8).filter(|&offset| {
        probes.iter().all(|(sess, want)| {
            // SAFETY: offsets inside the window.
            unsafe { words(sess.view(), offset) }.as_ref() == Some(want)
        })
    });
    let offset = found.next()?;
    found.next().is_none().then_some(offset)
}
