//! Marking a removed session not resumable with one store, at the place
//! where libssl keeps its private `not_resumable` flag, once libssl itself
//! has shown where that is.
//!
//! Why: libssl's public API has one way to set the flag, which every
//! removal, expiry and flush must set (libssl's own cache does it with a
//! plain store under its lock): `SSL_CTX_remove_session`, called on an empty
//! ctx. That call takes the ctx's lock and hashes the session for its empty
//! table: a large part of every removal, locked instructions included
//! (BENCHMARKS.md measures it).
//!
//! How the place is learnt, without writing anything before it is known:
//! while it is not known, every marking still goes through libssl, and the
//! library copies a window of the session just before and just after. When
//! libssl turned the session from resumable to not resumable
//! (`SSL_SESSION_is_resumable`) and exactly one aligned 32-bit word of the
//! window changed, from 0 to 1, that word is a candidate. Two sessions that
//! name the same word make it known; from then on marking is one store of 1
//! there. Any marking that contradicts the candidate (the session turned
//! not resumable but the window did not change that way) ends the learning
//! for good, and marking stays with libssl.
//!
//! The window is the [`WINDOW`] bytes right after the session's session-ID
//! context, whose address `SSL_SESSION_get0_id_context` gives: libssl 1.1.1
//! to 3.x keep the flag there, after the two PSK identity pointers
//! (`struct ssl_session_st` in `ssl/ssl_local.h`), and the struct goes on
//! for hundreds of bytes after it, so the window is inside the session.
//! It ends before the session's reference count, which other threads
//! change. This is the one assumption about libssl's private layout; the
//! learning checks everything else.
//!
//! Only the flag is written, as libssl's own removal writes it: the store
//! is atomic on our side; libssl reads the flag with a plain load, as it
//! does when its own removal sets it under a lock its readers do not take.
//!
//! Where it is used, and checked: only on the libssl releases the library
//! serves ([`super::release::SERVED_RELEASES`], those the differential
//! tests cover). The first [`CHECKED_STORES`] stores into sessions that
//! were resumable are checked: the word must read 0 before and
//! `SSL_SESSION_is_resumable()` 0 after.
//! One that fails ends the direct stores for good (said once on stderr and
//! in the stats file); that session and every later one are marked through
//! libssl.
//!
//! `SESSCACHE_NOT_RESUMABLE_MARKING=libssl` (the operator's setting; the
//! default is `auto`) and `SESSCACHE_TEST_NO_MARKER_CTX=1` keep every
//! marking with libssl. `SESSCACHE_TEST_WRONG_FLAG_OFFSET=1` makes the
//! learnt offset one word too far, so that the tests see the check fail
//! and the library fall back (in the x86_64 builds the tests run, that
//! word is the padding after the flag).

use std::ffi::{OsStr, c_uint};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};

use once_cell::sync::Lazy;

use super::{SSL_SESSION_get0_id_context, Session, release_served};

/// Bytes of the session watched after its session-ID context.
const WINDOW: usize = 32;

/// `SSL_MAX_SID_CTX_LENGTH`: the session-ID context buffer's size.
const SID_CTX_CAPACITY: usize = 32;

/// Markings watched at most while learning; after that, marking stays with
/// libssl (learning costs two copies of the window per marking).
const MAX_OBSERVATIONS: u32 = 64;

/// Sessions that must name the same word before it is used.
const CONFIRMATIONS: u32 = 2;

/// Direct stores into resumable sessions checked before the rest go
/// unchecked.
const CHECKED_STORES: u32 = 16;

/// `SESSCACHE_NOT_RESUMABLE_MARKING`: whether the flag may be written
/// directly (`auto`, the default) or marking stays with libssl (`libssl`).
/// `Err` for any other value.
fn direct_marking_allowed(value: Option<&OsStr>) -> Result<bool, ()> {
    match value.map(|v| v.to_str()) {
        None | Some(Some("" | "auto")) => Ok(true),
        Some(Some("libssl")) => Ok(false),
        Some(_) => Err(()),
    }
}

/// What one checked direct store says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Check {
    /// The session was not resumable before (already marked, or no ID and
    /// no ticket): nothing to see, nothing written.
    SaysNothing,
    /// The word read 0 and the store turned the session not resumable.
    Took,
    /// The word was not 0 in a resumable session, or the store left it
    /// resumable: the word is not the flag.
    Wrong,
}

/// Before the store: a resumable session's flag reads 0.
fn check_before(resumable: bool, word: i32) -> Option<Check> {
    match (resumable, word) {
        (false, _) => Some(Check::SaysNothing),
        (true, 0) => None,
        (true, _) => Some(Check::Wrong),
    }
}

/// After the store into a session that was resumable.
fn check_after(resumable: bool) -> Check {
    if resumable { Check::Wrong } else { Check::Took }
}

/// What one watched marking says about the flag's place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Evidence {
    /// The session was not resumable before, or still is after: it says
    /// nothing (already marked, or no ID and no ticket).
    Nothing,
    /// The flag is the word at this offset from the session's start.
    FlagAt(usize),
    /// The session turned not resumable, but not by one word going 0 to 1.
    Against,
}

/// What a marking watched from the start of the window (`window_start`
/// bytes from the session's start) tells: `before` and `after` are the
/// window's bytes around libssl's marking.
fn evidence(
    window_start: usize,
    before: &[u8; WINDOW],
    after: &[u8; WINDOW],
    resumable_before: bool,
    resumable_after: bool,
) -> Evidence {
    if !resumable_before || resumable_after {
        return Evidence::Nothing;
    }
    // Words aligned to 4 bytes from the session's start, as an `int` is.
    let first_word = window_start.next_multiple_of(4);
    let mut changed = None;
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        if b == a {
            continue;
        }
        let word = (window_start + i) & !3;
        if word < first_word || word + 4 > window_start + WINDOW {
            return Evidence::Against;
        }
        match changed {
            None => changed = Some(word),
            Some(w) if w == word => {}
            Some(_) => return Evidence::Against,
        }
    }
    let Some(word) = changed else {
        return Evidence::Against;
    };
    let at = word - window_start;
    let read = |w: &[u8; WINDOW]| i32::from_ne_bytes(w[at..at + 4].try_into().expect("4 bytes"));
    if read(before) == 0 && read(after) == 1 {
        Evidence::FlagAt(word)
    } else {
        Evidence::Against
    }
}

/// The learning's state: a pure state machine, fed one [`Evidence`] at a
/// time.
#[derive(Debug, Default)]
struct Learner {
    candidate: Option<usize>,
    confirmations: u32,
    observations: u32,
    over: bool,
}

impl Learner {
    /// Takes one piece of evidence; returns the flag's offset once it is
    /// known.
    fn learn(&mut self, evidence: Evidence) -> Option<usize> {
        if self.over {
            return None;
        }
        self.observations += 1;
        match evidence {
            Evidence::Nothing => {}
            Evidence::Against => self.over = true,
            Evidence::FlagAt(offset) => match self.candidate {
                None => {
                    self.candidate = Some(offset);
                    self.confirmations = 1;
                }
                Some(c) if c == offset => self.confirmations += 1,
                Some(_) => self.over = true,
            },
        }
        if !self.over && self.confirmations >= CONFIRMATIONS {
            self.over = true;
            return self.candidate;
        }
        if self.observations >= MAX_OBSERVATIONS {
            self.over = true;
        }
        None
    }

    /// Whether more markings need watching.
    fn learning(&self) -> bool {
        !self.over
    }
}

/// The flag's offset from a session's start once known; 0 while not (the
/// flag cannot be at offset 0, where libssl keeps the protocol version).
static FLAG_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// Set once the learning is over, so that markings through libssl after it
/// (when the place was not found) take no lock.
static LEARNING_OVER: AtomicBool = AtomicBool::new(false);

/// Direct stores into resumable sessions still to be checked.
static CHECKS_LEFT: AtomicU32 = AtomicU32::new(CHECKED_STORES);

/// The offset whose check failed; 0 if none did.
static FAILED_AT: AtomicUsize = AtomicUsize::new(0);

/// Added to the learnt offset (`SESSCACHE_TEST_WRONG_FLAG_OFFSET`).
static TEST_OFFSET_SKEW: AtomicUsize = AtomicUsize::new(0);

static LEARNER: Lazy<Mutex<Learner>> = Lazy::new(|| {
    let mut learner = Learner::default();
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    let setting = std::env::var_os("SESSCACHE_NOT_RESUMABLE_MARKING");
    let allowed = direct_marking_allowed(setting.as_deref()).unwrap_or_else(|()| {
        crate::diag::warn_once(
            "sesscache: SESSCACHE_NOT_RESUMABLE_MARKING is neither auto nor libssl; \
             removed sessions are marked through libssl",
        );
        false
    });
    let version = super::sys::openssl_version_num().unwrap_or(0);
    if !allowed || !release_served(version) || set("SESSCACHE_TEST_NO_MARKER_CTX") {
        learner.over = true;
        LEARNING_OVER.store(true, Ordering::Relaxed);
    }
    if set("SESSCACHE_TEST_WRONG_FLAG_OFFSET") {
        TEST_OFFSET_SKEW.store(4, Ordering::Relaxed);
    }
    Mutex::new(learner)
});

/// The learner, unless another thread has it: learning is opportunistic,
/// and a marking never waits for it (nor, after a `fork()` by another
/// thread while it was held, hangs on it in the child).
fn learner() -> Option<std::sync::MutexGuard<'static, Learner>> {
    match LEARNER.try_lock() {
        Ok(learner) => Some(learner),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Reads the settings now (see the module's comment), at load time: some
/// servers empty their environment before the first removal.
pub fn read_environment() {
    Lazy::force(&LEARNER);
}

/// Marks `sess` not resumable with one store if the flag's place is known;
/// returns whether it did.
#[inline]
pub fn mark_directly(sess: Session) -> bool {
    let offset = FLAG_OFFSET.load(Ordering::Acquire);
    if offset == 0 {
        return false;
    }
    if CHECKS_LEFT.load(Ordering::Relaxed) != 0 {
        return mark_and_check(sess, offset);
    }
    with_flag(sess, offset, |flag| flag.store(1, Ordering::Release));
    true
}

/// Runs `f` on the word at `offset`, learnt as the flag's place.
#[inline]
fn with_flag<R>(sess: Session, offset: usize, f: impl FnOnce(&AtomicI32) -> R) -> R {
    // SAFETY: `offset` was learnt from libssl's own marking of two sessions
    // (see the module's comment): it is the 4-byte-aligned place of the
    // `int` flag inside every `SSL_SESSION` of this libssl, and the session
    // is live while `f` runs (the caller holds it). The store made through
    // it is the one libssl's removal makes.
    f(unsafe { AtomicI32::from_ptr(sess.as_ptr().cast::<u8>().add(offset).cast()) })
}

/// [`mark_directly`] while stores are checked (module comment). Returns
/// false, for the caller to mark the session through libssl, when it
/// cannot be checked (it is not resumable already: nothing is written) or
/// the check fails (which ends the direct stores).
#[cold]
#[inline(never)]
fn mark_and_check(sess: Session, offset: usize) -> bool {
    let check = with_flag(sess, offset, |flag| {
        check_before(sess.is_resumable(), flag.load(Ordering::Acquire)).unwrap_or_else(|| {
            flag.store(1, Ordering::Release);
            check_after(sess.is_resumable())
        })
    });
    match check {
        // Unchecked sessions go to libssl until the place has been checked.
        Check::SaysNothing => false,
        Check::Took => {
            let _ = CHECKS_LEFT
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            true
        }
        Check::Wrong => {
            FAILED_AT.store(offset, Ordering::Relaxed);
            FLAG_OFFSET.store(0, Ordering::Release);
            crate::diag::warn_once(
                "sesscache: the learnt place of libssl's not_resumable flag failed its check \
                 (SSL_SESSION_is_resumable); removed sessions are marked through libssl from now on",
            );
            false
        }
    }
}

/// For the stats file: how removed sessions are being marked.
pub fn stats_line() -> String {
    match (
        FLAG_OFFSET.load(Ordering::Relaxed),
        FAILED_AT.load(Ordering::Relaxed),
    ) {
        (0, 0) if LEARNING_OVER.load(Ordering::Relaxed) => "not_resumable_marking=libssl\n".into(),
        (0, 0) => "not_resumable_marking=learning\n".into(),
        (0, failed) => format!("not_resumable_marking=libssl_check_failed_at_{failed}\n"),
        (offset, _) => format!("not_resumable_marking=store_at_{offset}\n"),
    }
}

/// A marking being watched: the window before libssl's marking.
pub struct Watch {
    window_start: usize,
    before: [u8; WINDOW],
    resumable_before: bool,
}

/// The window's start, as an offset from the session's start, when the
/// session's interior pointers look as in libssl 1.1.1 to 3.x (the
/// session-ID context after the session ID, both within the first 4 KiB)
/// and the window is aligned for 32-bit loads.
fn window_start(sess: Session) -> Option<usize> {
    let base = sess.as_ptr() as usize;
    let mut len: c_uint = 0;
    // SAFETY: live session; both getters return pointers into the session.
    let (id, sid_ctx) = unsafe {
        (
            super::sys::SSL_SESSION_get_id(sess.as_ptr(), &mut len) as usize,
            SSL_SESSION_get0_id_context(sess.as_ptr(), &mut len) as usize,
        )
    };
    let id_at = id.checked_sub(base)?;
    let sid_ctx_at = sid_ctx.checked_sub(base)?;
    let start = sid_ctx_at + SID_CTX_CAPACITY;
    let aligned = (base + start) % std::mem::align_of::<AtomicU32>() == 0;
    (0 < id_at && id_at < sid_ctx_at && sid_ctx_at < 4096 && aligned).then_some(start)
}

/// The window's bytes, read a 32-bit word at a time.
fn read_window(sess: Session, start: usize) -> [u8; WINDOW] {
    let mut bytes = [0u8; WINDOW];
    for (i, word) in bytes.chunks_exact_mut(4).enumerate() {
        // SAFETY: the window lies inside the live session (module comment)
        // and starts 4-aligned (`window_start`); an atomic load, as another
        // thread may write there (libssl's own marking of the same session).
        let at =
            unsafe { AtomicU32::from_ptr(sess.as_ptr().cast::<u8>().add(start + 4 * i).cast()) };
        word.copy_from_slice(&at.load(Ordering::Relaxed).to_ne_bytes());
    }
    bytes
}

/// Starts watching a marking through libssl, if the flag's place is still
/// being learnt.
pub fn watch(sess: Session) -> Option<Watch> {
    if LEARNING_OVER.load(Ordering::Relaxed) || !learner()?.learning() {
        return None;
    }
    let window_start = window_start(sess)?;
    Some(Watch {
        window_start,
        resumable_before: sess.is_resumable(),
        before: read_window(sess, window_start),
    })
}

impl Watch {
    /// libssl has marked the session: what changed is learnt from.
    pub fn learn(self, sess: Session) {
        let after = read_window(sess, self.window_start);
        let evidence = evidence(
            self.window_start,
            &self.before,
            &after,
            self.resumable_before,
            sess.is_resumable(),
        );
        let Some(mut learner) = learner() else {
            return;
        };
        if let Some(offset) = learner.learn(evidence) {
            let skew = TEST_OFFSET_SKEW.load(Ordering::Relaxed);
            FLAG_OFFSET.store(offset + skew, Ordering::Release);
        }
        if !learner.learning() {
            LEARNING_OVER.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_with(at: usize, value: i32) -> [u8; WINDOW] {
        let mut w = [7u8; WINDOW];
        w[at..at + 4].copy_from_slice(&value.to_ne_bytes());
        w
    }

    #[test]
    fn one_word_from_0_to_1_names_the_flag() {
        let (before, after) = (window_with(16, 0), window_with(16, 1));
        assert_eq!(
            evidence(304, &before, &after, true, false),
            Evidence::FlagAt(320)
        );
    }

    #[test]
    fn a_session_that_did_not_turn_says_nothing() {
        let (before, after) = (window_with(16, 0), window_with(16, 1));
        assert_eq!(
            evidence(304, &before, &after, false, false),
            Evidence::Nothing
        );
        assert_eq!(
            evidence(304, &before, &after, true, true),
            Evidence::Nothing
        );
    }

    #[test]
    fn anything_else_that_changed_is_against() {
        let before = window_with(16, 0);
        // nothing changed although the session turned
        assert_eq!(
            evidence(304, &before, &before, true, false),
            Evidence::Against
        );
        // the word went to 2, not 1
        assert_eq!(
            evidence(304, &before, &window_with(16, 2), true, false),
            Evidence::Against
        );
        // from 1 to 0
        assert_eq!(
            evidence(304, &window_with(16, 1), &before, true, false),
            Evidence::Against
        );
        // a second word changed too
        let mut after = window_with(16, 1);
        after[0] ^= 1;
        assert_eq!(
            evidence(304, &before, &after, true, false),
            Evidence::Against
        );
        // a word cut by the window's end (window not 4-aligned)
        let mut after = before;
        after[WINDOW - 1] = 1;
        assert_eq!(
            evidence(306, &before, &after, true, false),
            Evidence::Against
        );
    }

    #[test]
    fn two_sessions_agreeing_make_the_place_known() {
        let mut learner = Learner::default();
        assert_eq!(learner.learn(Evidence::Nothing), None);
        assert_eq!(learner.learn(Evidence::FlagAt(320)), None);
        assert!(learner.learning());
        assert_eq!(learner.learn(Evidence::FlagAt(320)), Some(320));
        assert!(!learner.learning());
        assert_eq!(learner.learn(Evidence::FlagAt(320)), None);
    }

    #[test]
    fn disagreement_or_contrary_evidence_ends_the_learning() {
        let mut learner = Learner::default();
        learner.learn(Evidence::FlagAt(320));
        assert_eq!(learner.learn(Evidence::FlagAt(324)), None);
        assert!(!learner.learning());
        assert_eq!(learner.learn(Evidence::FlagAt(320)), None);

        let mut learner = Learner::default();
        learner.learn(Evidence::FlagAt(320));
        learner.learn(Evidence::Against);
        assert!(!learner.learning());
        assert_eq!(learner.learn(Evidence::FlagAt(320)), None);
    }

    #[test]
    fn only_served_releases_write_the_flag() {
        assert!(release_served(0x3000_0160)); // 3.0.22
        assert!(release_served(0x3000_0000));
        assert!(!release_served(0x3010_0000)); // 3.1.0
        assert!(!release_served(0x3050_0050)); // 3.5.5
        assert!(release_served(0x3050_0070)); // 3.5.7
        assert!(!release_served(0x4000_0010)); // 4.0.1
        assert!(release_served(0x4000_0020)); // 4.0.2
        assert!(!release_served(0x1010_117f)); // 1.1.1w
    }

    #[test]
    fn the_operator_setting_turns_direct_marking_off() {
        assert_eq!(direct_marking_allowed(None), Ok(true));
        assert_eq!(direct_marking_allowed(Some(OsStr::new(""))), Ok(true));
        assert_eq!(direct_marking_allowed(Some(OsStr::new("auto"))), Ok(true));
        assert_eq!(
            direct_marking_allowed(Some(OsStr::new("libssl"))),
            Ok(false)
        );
        assert_eq!(direct_marking_allowed(Some(OsStr::new("store"))), Err(()));
        assert_eq!(direct_marking_allowed(Some(OsStr::new("LIBSSL"))), Err(()));
    }

    #[test]
    fn a_store_is_checked_against_libssl() {
        // already marked (or no ID and no ticket): nothing to learn, no check
        assert_eq!(check_before(false, 0), Some(Check::SaysNothing));
        assert_eq!(check_before(false, 1), Some(Check::SaysNothing));
        // resumable: the flag must read 0, then the store must take
        assert_eq!(check_before(true, 0), None);
        assert_eq!(check_before(true, 1), Some(Check::Wrong));
        assert_eq!(check_before(true, -7), Some(Check::Wrong));
        assert_eq!(check_after(false), Check::Took);
        assert_eq!(check_after(true), Check::Wrong);
    }

    #[test]
    fn learning_stops_after_its_limit() {
        let mut learner = Learner::default();
        for _ in 0..MAX_OBSERVATIONS {
            assert_eq!(learner.learn(Evidence::Nothing), None);
        }
        assert!(!learner.learning());
        learner.learn(Evidence::FlagAt(320));
        assert_eq!(learner.learn(Evidence::FlagAt(320)), None);
    }
}
