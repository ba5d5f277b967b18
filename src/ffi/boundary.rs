//! The one way every export runs: [`export`] names the export's failure
//! value and libssl's own function called with the arguments as received;
//! its methods are the few shapes an export takes. Each checks for a
//! release line passed straight through first, runs sesscache's part
//! inside [`boundary`] (no panic ever unwinds into C) and hands a ctx this
//! library did not set up (its state could not be stored) to libssl unchanged.

use std::panic::AssertUnwindSafe;

use openssl_sys::{SSL_CTX, SSL_SESSION};

use crate::context::{CtxState, state_of};
use crate::diag;
use crate::libssl::{self, Real, Session};

/// Runs `body`, turning a panic into `fallback` and one line on stderr.
pub(crate) fn boundary<R>(fallback: R, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            diag::warn_once(
                "sesscache: internal error caught at the C boundary; returned libssl's failure value",
            );
            fallback
        }
    }
}

/// One call of an export: what C gets when the call fails (libssl's own
/// failure value), and libssl's function of the same name with the
/// caller's arguments.
pub(crate) struct Export<R, L> {
    fallback: R,
    libssl: L,
}

/// See [`Export`].
pub(crate) fn export<R, L>(fallback: R, libssl: L) -> Export<R, L>
where
    R: Copy,
    L: FnOnce(&Real) -> R,
{
    // Before anything below the boundary can ask for them.
    super::hooks::install();
    Export { fallback, libssl }
}

impl<R: Copy, L: FnOnce(&Real) -> R> Export<R, L> {
    /// On a release line passed through, libssl's own answer.
    fn passed_through(self) -> Result<R, Self> {
        match libssl::passing_through() {
            Some(real) => Ok((self.libssl)(real)),
            None => Err(self),
        }
    }

    /// Answered by the state of `ctx`.
    ///
    /// # Safety
    /// `ctx` is NULL or a live `SSL_CTX`.
    pub(crate) unsafe fn on_ctx(self, ctx: *mut SSL_CTX, ours: impl FnOnce(&CtxState) -> R) -> R {
        // SAFETY: per the contract.
        unsafe { self.on(|| Some((ctx, ())), |state, ()| ours(state)) }
    }

    /// A setter's part: `cb` stored in the state of `ctx` by `store`.
    ///
    /// # Safety
    /// `ctx` is NULL or a live `SSL_CTX`.
    pub(crate) unsafe fn setting<C>(
        self,
        ctx: *mut SSL_CTX,
        cb: C,
        store: fn(&CtxState, C) -> R,
    ) -> R {
        // SAFETY: per the contract.
        unsafe { self.on_ctx(ctx, |state| store(state, cb)) }
    }

    /// Answered by the state of the ctx that `target` finds after checking
    /// the caller's pointers (`None`: the failure value).
    ///
    /// # Safety
    /// The ctx `target` returns is NULL or live for the whole call.
    pub(crate) unsafe fn on<T>(
        self,
        target: impl FnOnce() -> Option<(*mut SSL_CTX, T)>,
        ours: impl FnOnce(&CtxState, T) -> R,
    ) -> R {
        let this = match self.passed_through() {
            Ok(answer) => return answer,
            Err(this) => this,
        };
        let Export { fallback, libssl } = this;
        boundary(fallback, || {
            let Some((ctx, arg)) = target() else {
                return fallback;
            };
            // SAFETY: per the contract (NULL is refused by `state_of`).
            match unsafe { state_of(ctx) } {
                Some(state) => ours(state, arg),
                // libssl itself would crash on NULL.
                None => match libssl::real() {
                    Some(real) if !ctx.is_null() => libssl(real),
                    _ => fallback,
                },
            }
        })
    }

    /// Answered by the state of `ctx` for a non-null `session` (NULL: the
    /// failure value).
    ///
    /// # Safety
    /// `ctx` and `session` are each NULL or live.
    pub(crate) unsafe fn on_session(
        self,
        ctx: *mut SSL_CTX,
        session: *mut SSL_SESSION,
        ours: impl FnOnce(&CtxState, Session) -> R,
    ) -> R {
        // SAFETY: per the contract.
        unsafe { self.on(|| Some((ctx, Session::from_ptr(session)?)), ours) }
    }

    /// sesscache's answer where `ours` gives one, else libssl's (NULL
    /// pointers included).
    pub(crate) fn answer_or_libssl(self, ours: impl FnOnce() -> Option<R>) -> R {
        let this = match self.passed_through() {
            Ok(answer) => return answer,
            Err(this) => this,
        };
        match (boundary(None, ours), libssl::real()) {
            (Some(answer), _) => answer,
            (None, Some(real)) => (this.libssl)(real),
            (None, None) => this.fallback,
        }
    }

    /// libssl's own function, then `after` with its answer, when `valid`
    /// (the caller's pointers are usable).
    pub(crate) fn libssl_then(self, valid: bool, after: impl FnOnce(R)) -> R {
        let this = match self.passed_through() {
            Ok(answer) => return answer,
            Err(this) => this,
        };
        let (Some(real), true) = (libssl::real(), valid) else {
            return this.fallback;
        };
        let answer = (this.libssl)(real);
        boundary((), || after(answer));
        answer
    }

    /// libssl's own function, then `after` when it answered 1 (success),
    /// when `valid` (the caller's pointers are usable).
    pub(crate) fn libssl_then_on_success(self, valid: bool, after: impl FnOnce()) -> R
    where
        R: PartialEq + From<bool>,
    {
        self.libssl_then(valid, |answer| {
            if answer == R::from(true) {
                after()
            }
        })
    }

    /// libssl's own function, after which `session` (unless NULL), if
    /// cached, moves to its new place in expiry order.
    ///
    /// # Safety
    /// `session` is NULL or live.
    pub(crate) unsafe fn then_times_changed(self, session: *mut SSL_SESSION) -> R {
        self.libssl_then(true, |_| {
            // SAFETY: per the contract.
            if let Some(sess) = unsafe { Session::from_ptr(session) } {
                crate::context::session_times_changed(sess)
            }
        })
    }

    /// `before`, then libssl's own function, when `valid`.
    pub(crate) fn ours_first(self, valid: bool, before: impl FnOnce()) -> R {
        let this = match self.passed_through() {
            Ok(answer) => return answer,
            Err(this) => this,
        };
        let (Some(real), true) = (libssl::real(), valid) else {
            return this.fallback;
        };
        boundary((), before);
        (this.libssl)(real)
    }

    /// libssl's own function, called while the value `during` makes is
    /// alive (a guard of ours that its drop takes back).
    pub(crate) fn libssl_during<G>(self, during: impl FnOnce() -> G) -> R {
        let this = match self.passed_through() {
            Ok(answer) => return answer,
            Err(this) => this,
        };
        let Some(real) = libssl::real() else {
            return this.fallback;
        };
        let guard = boundary(None, || Some(during()));
        let answer = (this.libssl)(real);
        drop(guard);
        answer
    }

    /// libssl's own answer on a release line passed through, else `ours`.
    pub(crate) fn unless_passed_through(self, ours: impl FnOnce() -> R) -> R {
        self.passed_through().unwrap_or_else(|_| ours())
    }
}
