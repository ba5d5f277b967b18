//! The one module that touches the machine's real libssl.
//!
//! Functions that this library also exports (`SSL_CTX_ctrl`,
//! `SSL_CTX_remove_session`, …) are reached only through
//! `dlsym(RTLD_NEXT, …)`: calling them by name would call ourselves. Every
//! other libssl/libcrypto function is looked up at run time too
//! ([`sys`]): the library is linked against no libssl, so that it never
//! brings a second one into a process.
//!
//! The running libssl's release line decides whether the library serves
//! the session cache at all ([`serving`]): only on the lines it reproduces
//! exactly; on any other, every export is a plain call of libssl's own.

use std::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_void};
use std::ptr::NonNull;

use once_cell::sync::Lazy;
use openssl_sys::{OSSL_LIB_CTX, SSL, SSL_CTX, SSL_METHOD, SSL_SESSION};

use crate::cache::{CachedSession, Expiry, SessionKey, SessionKeyRef};

pub mod not_resumable;
mod ossl_time;
pub mod release;
pub mod sys;

pub type NewSessionFn = unsafe extern "C" fn(*mut SSL, *mut SSL_SESSION) -> c_int;
pub type RemoveSessionFn = unsafe extern "C" fn(*mut SSL_CTX, *mut SSL_SESSION);
pub type GetSessionFn =
    unsafe extern "C" fn(*mut SSL, *const c_uchar, c_int, *mut c_int) -> *mut SSL_SESSION;
// The nullable forms, spelled out (not `Option<NewSessionFn>`) so that
// cbindgen writes them into the header as plain function-pointer typedefs.
pub type NewSessionCb = Option<unsafe extern "C" fn(*mut SSL, *mut SSL_SESSION) -> c_int>;
pub type RemoveSessionCb = Option<unsafe extern "C" fn(*mut SSL_CTX, *mut SSL_SESSION)>;
pub type GetSessionCb =
    Option<unsafe extern "C" fn(*mut SSL, *const c_uchar, c_int, *mut c_int) -> *mut SSL_SESSION>;

pub type ExFree = unsafe extern "C" fn(
    *mut c_void,
    *mut c_void,
    *mut openssl_sys::CRYPTO_EX_DATA,
    c_int,
    c_long,
    *mut c_void,
);
pub type ExDup = unsafe extern "C" fn(
    *mut openssl_sys::CRYPTO_EX_DATA,
    *const openssl_sys::CRYPTO_EX_DATA,
    *mut *mut c_void,
    c_int,
    c_long,
    *mut c_void,
) -> c_int;

use sys::{
    CRYPTO_get_ex_new_index, SSL_SESSION_get0_id_context, SSL_SESSION_has_ticket,
    SSL_SESSION_is_resumable, SSL_get_options, SSL_is_dtls, SSL_is_server,
};

const CRYPTO_EX_INDEX_SSL: c_int = 0;
const CRYPTO_EX_INDEX_SSL_CTX: c_int = 1;

pub const TLS1_3_VERSION: c_int = 0x0304;
pub const TLS_ANY_VERSION: c_int = 0x10000;
/// What `SSL_version` gives for a QUIC object (`<openssl/prov_ssl.h>`).
pub const OSSL_QUIC1_VERSION: c_int = 0x0000_0001;
pub const SSL_OP_NO_TICKET: u64 = 1 << 14;
pub const SSL_OP_NO_ANTI_REPLAY: u64 = 1 << 24;

fn next_symbol(name: &'static [u8]) -> Option<NonNull<c_void>> {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: `name` is a NUL-terminated static string; RTLD_NEXT asks the
    // dynamic linker for the next definition after this library.
    NonNull::new(unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) })
}

/// Declares, from one list of libssl's functions that this library also
/// exports: [`INTERPOSED`] (their names), [`prototype`] (one type per
/// function, which `ffi` checks each export against), [`Real`] (libssl's
/// own functions, found after this library) and [`own`] (one call of
/// each, for the C boundary to hand to libssl unchanged).
macro_rules! real_functions {
    (
        $($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*
        @since
        $($opt:ident($($opt_arg:ident: $opt_ty:ty),*) $(-> $opt_ret:ty)? = ($major:literal, $minor:literal);)*
    ) => {
        /// libssl's functions that this library exports under their own
        /// names: the same on every release line (on those it is not exact
        /// on, each passes straight through). `tests/exports.rs` compares
        /// it with the library's dynamic symbols.
        pub const INTERPOSED: &[&str] = &[$(stringify!($name),)* $(stringify!($opt),)*];

        /// [`INTERPOSED`], each with the first release line (major, minor)
        /// whose libssl has it.
        pub const INTERPOSED_SINCE: &[(&str, (u64, u64))] =
            &[$((stringify!($name), (3, 0)),)* $((stringify!($opt), ($major, $minor)),)*];

        /// The C type of each interposed function, named after it.
        #[allow(non_camel_case_types)]
        pub mod prototype {
            use super::*;
            $(pub type $name = unsafe extern "C" fn($($ty),*) $(-> $ret)?;)*
            $(pub type $opt = unsafe extern "C" fn($($opt_ty),*) $(-> $opt_ret)?;)*
        }

        /// The real libssl entry points that we also export; those of a
        /// later release line are `None` on a libssl that lacks them.
        #[allow(non_snake_case)]
        pub struct Real {
            $(pub $name: prototype::$name,)*
            $(pub $opt: Option<prototype::$opt>,)*
        }

        fn resolve_real() -> Option<Real> {
            Some(Real {
                $($name: {
                    let sym = next_symbol(concat!(stringify!($name), "\0").as_bytes())?;
                    // SAFETY: the symbol is libssl's function of that name,
                    // whose C prototype is exactly this type.
                    unsafe { std::mem::transmute::<*mut c_void, prototype::$name>(sym.as_ptr()) }
                },)*
                $($opt: next_symbol(concat!(stringify!($opt), "\0").as_bytes()).map(|sym| {
                    // SAFETY: as above, on the lines that have the function.
                    unsafe { std::mem::transmute::<*mut c_void, prototype::$opt>(sym.as_ptr()) }
                }),)*
            })
        }

        /// libssl's own function of each name, with the caller's arguments,
        /// as a call the C boundary makes once it has libssl's functions.
        #[allow(non_snake_case)]
        pub mod own {
            use super::*;
            $(
                #[doc = concat!("libssl's own `", stringify!($name), "` with these arguments.")]
                ///
                /// # Safety
                /// The arguments must be valid for libssl's function of this
                /// name whenever the returned call runs.
                pub unsafe fn $name($($arg: $ty),*) -> impl FnOnce(&Real) $(-> $ret)? {
                    // SAFETY: per this function's contract.
                    move |real: &Real| unsafe { (real.$name)($($arg),*) }
                }
            )*
        }
    };
}

real_functions! {
    SSL_CTX_new(meth: *const SSL_METHOD) -> *mut SSL_CTX;
    SSL_CTX_new_ex(libctx: *mut OSSL_LIB_CTX, propq: *const c_char, meth: *const SSL_METHOD) -> *mut SSL_CTX;
    SSL_CTX_free(ctx: *mut SSL_CTX);
    SSL_CTX_ctrl(ctx: *mut SSL_CTX, cmd: c_int, larg: c_long, parg: *mut c_void) -> c_long;
    SSL_CTX_remove_session(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) -> c_int;
    SSL_CTX_flush_sessions(ctx: *mut SSL_CTX, t: c_long);
    SSL_CTX_add_session(ctx: *mut SSL_CTX, sess: *mut SSL_SESSION) -> c_int;
    SSL_has_matching_session_id(ssl: *const SSL, id: *const c_uchar, id_len: c_uint) -> c_int;
    SSL_SESSION_set_time(sess: *mut SSL_SESSION, t: c_long) -> c_long;
    SSL_SESSION_set_timeout(sess: *mut SSL_SESSION, t: c_long) -> c_long;
    SSL_SESSION_set_protocol_version(sess: *mut SSL_SESSION, version: c_int) -> c_int;
    SSL_set_SSL_CTX(ssl: *mut SSL, ctx: *mut SSL_CTX) -> *mut SSL_CTX;
    SSL_CTX_sess_set_new_cb(ctx: *mut SSL_CTX, cb: NewSessionCb);
    SSL_CTX_sess_set_remove_cb(ctx: *mut SSL_CTX, cb: RemoveSessionCb);
    SSL_CTX_sess_set_get_cb(ctx: *mut SSL_CTX, cb: GetSessionCb);
    SSL_CTX_sess_get_new_cb(ctx: *mut SSL_CTX) -> NewSessionCb;
    SSL_CTX_sess_get_remove_cb(ctx: *mut SSL_CTX) -> RemoveSessionCb;
    SSL_CTX_sess_get_get_cb(ctx: *mut SSL_CTX) -> GetSessionCb;
    SSL_CTX_set_session_id_context(ctx: *mut SSL_CTX, sid_ctx: *const c_uchar, sid_ctx_len: c_uint) -> c_int;
    SSL_set_session_id_context(ssl: *mut SSL, sid_ctx: *const c_uchar, sid_ctx_len: c_uint) -> c_int;
    @since
    SSL_SESSION_get_time_ex(sess: *const SSL_SESSION) -> libc::time_t = (3, 3);
    SSL_SESSION_set_time_ex(sess: *mut SSL_SESSION, t: libc::time_t) -> libc::time_t = (3, 3);
    SSL_CTX_flush_sessions_ex(ctx: *mut SSL_CTX, t: libc::time_t) = (3, 4);
}

pub use release::ReleaseBehaviour;

/// libssl's own call of each function a later release line added, with the
/// caller's arguments; on a libssl without it (3.0), the 3.0 function it
/// extends.
#[allow(non_snake_case)]
pub mod own_or_older {
    use super::*;
    use libc::time_t;

    /// `SSL_CTX_flush_sessions_ex`, else `SSL_CTX_flush_sessions`.
    ///
    /// # Safety
    /// As [`own`]'s functions.
    pub unsafe fn SSL_CTX_flush_sessions_ex(ctx: *mut SSL_CTX, t: time_t) -> impl FnOnce(&Real) {
        move |real: &Real| match real.SSL_CTX_flush_sessions_ex {
            // SAFETY: per this function's contract.
            Some(flush_ex) => unsafe { flush_ex(ctx, t) },
            // SAFETY: as above; `time_t` is `long` on the platforms served.
            None => unsafe { (real.SSL_CTX_flush_sessions)(ctx, t as c_long) },
        }
    }

    /// `SSL_SESSION_set_time_ex`, else `SSL_SESSION_set_time`.
    ///
    /// # Safety
    /// As [`own`]'s functions.
    pub unsafe fn SSL_SESSION_set_time_ex(
        s: *mut SSL_SESSION,
        t: time_t,
    ) -> impl FnOnce(&Real) -> time_t {
        move |real: &Real| match real.SSL_SESSION_set_time_ex {
            // SAFETY: per this function's contract.
            Some(set_time_ex) => unsafe { set_time_ex(s, t) },
            // SAFETY: as above.
            None => unsafe { (real.SSL_SESSION_set_time)(s, t as c_long) as time_t },
        }
    }

    /// `SSL_SESSION_get_time_ex`, else `SSL_SESSION_get_time`.
    ///
    /// # Safety
    /// As [`own`]'s functions.
    pub unsafe fn SSL_SESSION_get_time_ex(s: *const SSL_SESSION) -> impl FnOnce(&Real) -> time_t {
        move |real: &Real| match real.SSL_SESSION_get_time_ex {
            // SAFETY: per this function's contract.
            Some(get_time_ex) => unsafe { get_time_ex(s) },
            // SAFETY: as above.
            None => unsafe { sys::SSL_SESSION_get_time(s) as time_t },
        }
    }
}

/// Whether an `OpenSSL_version_num()` value (`0xMNN00PP0`: major, minor,
/// patch) is one of [`release::SERVED_RELEASES`].
pub fn release_served(version_num: u64) -> bool {
    ReleaseBehaviour::of_served(version_num).is_some()
}

/// The line said on stderr when the running libssl is not a served release.
fn pass_through_message(version_num: u64) -> String {
    let seen = format!(
        "OpenSSL {} ({version_num:#010x})",
        release::version_text(version_num)
    );
    format!(
        "sesscache: the running libssl is {seen}, not a release sesscache is exact on ({}): \
         every call passes straight through to libssl and its own session cache \
         (see \"Release lines\" in sesscache's README)",
        release::served_text()
    )
}

/// The decision, once libssl is found: the behaviour to reproduce, or
/// `None` to pass through.
static DECIDED: once_cell::sync::OnceCell<Option<ReleaseBehaviour>> =
    once_cell::sync::OnceCell::new();

/// Whether the library serves the session cache: the running libssl is of
/// a covered release line. Decided at the first call that asks once libssl
/// is loaded; a pass-through is said once on stderr.
#[inline]
pub fn serving() -> bool {
    behaviour().is_some()
}

/// The running libssl's behaviour where release lines differ, 3.0's while
/// the library does not serve (nothing of ours asks then).
pub fn running_behaviour() -> ReleaseBehaviour {
    behaviour().unwrap_or(ReleaseBehaviour::OF_3_0)
}

/// The running libssl's behaviour where release lines differ; `None`
/// while the library does not serve (see [`serving`]).
fn behaviour() -> Option<ReleaseBehaviour> {
    if let Some(&decided) = DECIDED.get() {
        return decided;
    }
    // Not decided while libcrypto is not loaded yet (it may come later
    // through dlopen): until then there is no libssl to serve or pass to.
    let v = sys::openssl_version_num()?;
    let decided = ReleaseBehaviour::of_served(v);
    if DECIDED.set(decided).is_ok() {
        // Called from every export, outside their boundary: saying it must
        // not unwind into C.
        let _ = std::panic::catch_unwind(|| say_decision(v, decided.is_some()));
    }
    decided
}

/// Says a pass-through once on stderr, and in a `SESSCACHE_LOG` file. A
/// served process says nothing: its cache events in the log show it.
fn say_decision(v: u64, serving: bool) {
    if !serving {
        let message = pass_through_message(v);
        crate::diag::warn_once_about("release line", &message);
        crate::diag::log_line_to_file(&message);
    }
}

/// Learns now, at load, where libssl keeps a session's time (see
/// [`ossl_time`]), when the running line keeps nanoseconds: the probe
/// sessions are then made and freed before the application can have an
/// ex_data callback that would see them.
pub fn learn_session_layout() {
    if behaviour().is_some_and(|line| line.clock == release::SessionClock::Nanoseconds) {
        ossl_time::learn_now();
    }
}

/// Whether a libssl is loaded in the process (after this library).
pub fn loaded() -> bool {
    next_symbol(b"SSL_CTX_new\0").is_some()
}

/// libssl's own functions when every call passes straight through to them
/// (see [`serving`]); `None` when the library serves the cache.
#[inline]
pub fn passing_through() -> Option<&'static Real> {
    if serving() { None } else { real() }
}

static REAL: Lazy<Option<Real>> = Lazy::new(|| {
    let real = resolve_real();
    if real.is_none() {
        crate::diag::warn_once(
            "sesscache: libssl's own functions were not found after this library; every call fails",
        );
    }
    real
});

/// The real libssl, or `None` when it cannot be found (then every export
/// gives libssl's failure answer).
pub fn real() -> Option<&'static Real> {
    REAL.as_ref()
}

/// The file name of the object that `name` resolves to in the global lookup
/// order (what the application's own calls reach), if any.
pub fn global_definition_file(name: &'static [u8]) -> Option<Vec<u8>> {
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: NUL-terminated static name; RTLD_DEFAULT is the global scope.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr().cast()) };
    if found.is_null() {
        return None;
    }
    object_file_of(found)
}

/// One reference to an `SSL_SESSION`: cloning takes a reference
/// (`SSL_SESSION_up_ref`), dropping releases it (`SSL_SESSION_free`).
pub struct SessionRef(NonNull<SSL_SESSION>);

// SAFETY: SSL_SESSION reference counting is atomic in libssl 3.0, and the
// fields we read through it (ID, version, time) are read-only while cached.
unsafe impl Send for SessionRef {}
// SAFETY: see Send; shared access only reads.
unsafe impl Sync for SessionRef {}

impl SessionRef {
    /// Takes a new reference to `sess`.
    ///
    /// # Safety
    /// `sess` must be NULL or a live `SSL_SESSION`.
    pub unsafe fn up_ref(sess: *mut SSL_SESSION) -> Option<SessionRef> {
        let sess = NonNull::new(sess)?;
        // SAFETY: live session per the contract.
        unsafe { sys::SSL_SESSION_up_ref(sess.as_ptr()) };
        Some(SessionRef(sess))
    }

    /// Adopts a reference the caller already owns.
    ///
    /// # Safety
    /// `sess` must be NULL or a live `SSL_SESSION` whose one reference is
    /// handed over.
    pub unsafe fn adopt(sess: *mut SSL_SESSION) -> Option<SessionRef> {
        NonNull::new(sess).map(SessionRef)
    }

    pub fn as_ptr(&self) -> *mut SSL_SESSION {
        self.0.as_ptr()
    }

    pub fn view(&self) -> Session {
        Session(self.0)
    }

    /// Gives up ownership of the reference, e.g. to libssl.
    pub fn into_raw(self) -> *mut SSL_SESSION {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Clone for SessionRef {
    fn clone(&self) -> SessionRef {
        // SAFETY: we hold a reference, so the session is alive.
        unsafe { sys::SSL_SESSION_up_ref(self.0.as_ptr()) };
        SessionRef(self.0)
    }
}

impl Drop for SessionRef {
    fn drop(&mut self) {
        // SAFETY: releases the one reference this value owns.
        unsafe { sys::SSL_SESSION_free(self.0.as_ptr()) }
    }
}

impl CachedSession for SessionRef {
    fn is_same(&self, other: &SessionRef) -> bool {
        self.0 == other.0
    }

    fn key(&self) -> Option<SessionKey> {
        self.view().key()
    }

    fn has_id(&self, id: &[u8]) -> bool {
        self.view().with_id(|own| crate::cache::ids_equal(own, id))
    }

    fn has_empty_id(&self) -> bool {
        self.view().has_empty_id()
    }
}

/// Borrowed view of a live `SSL_SESSION`, for reading it.
#[derive(Clone, Copy)]
pub struct Session(NonNull<SSL_SESSION>);

impl Session {
    /// # Safety
    /// `sess` must be NULL or a session that stays alive while the view is used.
    pub unsafe fn from_ptr(sess: *mut SSL_SESSION) -> Option<Session> {
        NonNull::new(sess).map(Session)
    }

    pub fn as_ptr(self) -> *mut SSL_SESSION {
        self.0.as_ptr()
    }

    /// Runs `f` on the session's ID bytes (at most 32).
    #[inline]
    pub fn with_id<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut len: c_uint = 0;
        // SAFETY: live session; libssl returns a pointer into the session's
        // own ID buffer, which stays valid while the session does.
        let p = unsafe { sys::SSL_SESSION_get_id(self.as_ptr(), &mut len) };
        if p.is_null() || len == 0 {
            return f(&[]);
        }
        // SAFETY: libssl guarantees `len` bytes at `p`; the slice does not
        // outlive this call.
        f(unsafe { std::slice::from_raw_parts(p, len as usize) })
    }

    pub fn has_empty_id(self) -> bool {
        self.with_id(|id| id.is_empty())
    }

    /// The session's key, borrowed from the session itself (no copy).
    #[inline]
    pub fn with_key_ref<R>(self, f: impl FnOnce(SessionKeyRef<'_>) -> R) -> Option<R> {
        // SAFETY: live session.
        let version = unsafe { sys::SSL_SESSION_get_protocol_version(self.as_ptr()) };
        self.with_id(|id| SessionKeyRef::new(version, id).map(f))
    }

    pub fn key(self) -> Option<SessionKey> {
        self.with_key_ref(|key| key.to_key())
    }

    /// The session-ID context the session was made in.
    pub fn id_context(self) -> Vec<u8> {
        let mut len: c_uint = 0;
        // SAFETY: live session; libssl returns a pointer into the session's
        // own buffer of `len` bytes (at most 32).
        let p = unsafe { SSL_SESSION_get0_id_context(self.as_ptr(), &mut len) };
        if p.is_null() || len == 0 {
            return Vec::new();
        }
        // SAFETY: as above; copied out at once.
        unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec()
    }

    /// The session's DER encoding (`i2d_SSL_SESSION`).
    pub fn to_der(self) -> Option<Vec<u8>> {
        // SAFETY: live session; a NULL output pointer asks for the length.
        let len = unsafe { sys::i2d_SSL_SESSION(self.as_ptr(), std::ptr::null_mut()) };
        let len = usize::try_from(len).ok().filter(|&n| n > 0)?;
        let mut der = vec![0u8; len];
        let mut out = der.as_mut_ptr();
        // SAFETY: `der` has room for exactly the length libssl reported.
        let written = unsafe { sys::i2d_SSL_SESSION(self.as_ptr(), &mut out) };
        (usize::try_from(written).ok() == Some(len)).then_some(der)
    }

    pub fn expiry(self) -> Expiry {
        // SAFETY: live session.
        let (time, timeout) = unsafe {
            (
                sys::SSL_SESSION_get_time(self.as_ptr()),
                sys::SSL_SESSION_get_timeout(self.as_ptr()),
            )
        };
        let line = running_behaviour();
        match line.clock {
            release::SessionClock::Seconds => line.expiry(time, timeout),
            // libssl's own nanoseconds where known, else from the seconds.
            release::SessionClock::Nanoseconds => ossl_time::calc_timeout(self)
                .map_or_else(|| line.expiry(time, timeout), Expiry::from_nanos),
        }
    }

    /// Whole seconds from `now` (`time(NULL)`) until the session expires
    /// (`None`: never).
    pub fn seconds_left(self, now: i64) -> Option<u64> {
        let line = running_behaviour();
        line.seconds_left(self.expiry(), now)
    }

    /// Whether libssl takes the session as expired at `now` (`time(NULL)`).
    pub fn expired_at(self, now: i64) -> bool {
        let line = running_behaviour();
        self.expiry().has_passed(line.time(now))
    }

    /// How much early data the session lets a client send (0: none).
    pub fn max_early_data(self) -> u32 {
        // SAFETY: live session.
        unsafe { sys::SSL_SESSION_get_max_early_data(self.as_ptr()) }
    }

    /// libssl's own `SSL_SESSION_set_time`, which only writes the
    /// session's time fields (libssl's own cache does not hold it).
    pub fn set_time_in_libssl(self, t: c_long) {
        if let Some(real) = real() {
            // SAFETY: live session. On 3.3+ the old name calls the `_ex`
            // one, which may be our export: libssl's own is called instead.
            unsafe { own_or_older::SSL_SESSION_set_time_ex(self.as_ptr(), t)(real) };
        }
    }

    /// Gives the session the time now, as libssl's cache does under
    /// `SSL_SESS_CACHE_UPDATE_TIME`: `time(NULL)` on a libssl that keeps
    /// seconds; on one that keeps nanoseconds, its microsecond clock where
    /// the place of the session's time is known, else whole seconds.
    pub fn set_time_now(self) {
        match running_behaviour().clock {
            release::SessionClock::Seconds => self.set_time_in_libssl(now() as c_long),
            release::SessionClock::Nanoseconds => {
                let (seconds, micros) = now_micros();
                self.set_time_in_libssl(seconds as c_long);
                let nanos = seconds
                    .checked_mul(release::NANOS)
                    .and_then(|n| n.checked_add(micros * 1_000));
                if let Some(nanos) = nanos {
                    ossl_time::set_time(self, seconds, nanos);
                }
            }
        }
    }

    pub fn is_resumable(self) -> bool {
        // SAFETY: live session.
        unsafe { SSL_SESSION_is_resumable(self.as_ptr()) == 1 }
    }

    /// Whether libssl's private `not_resumable` flag can be clear: libssl
    /// reads the flag alone, but the public API only reports it together
    /// with "has an ID or a ticket". A session with neither is taken as
    /// unflagged.
    pub fn not_resumable_flag_clear(self) -> bool {
        // SAFETY: live session.
        let has_ticket = || unsafe { SSL_SESSION_has_ticket(self.as_ptr()) } == 1;
        self.is_resumable() || (self.has_empty_id() && !has_ticket())
    }
}

/// A session decoded from DER (`d2i_SSL_SESSION`); `None` if it does not
/// decode completely.
pub fn session_from_der(der: &[u8]) -> Option<SessionRef> {
    let len = c_long::try_from(der.len()).ok()?;
    let mut p = der.as_ptr();
    // SAFETY: `p` points at `len` readable bytes; libssl advances it.
    let sess = unsafe { sys::d2i_SSL_SESSION(std::ptr::null_mut(), &mut p, len) };
    // SAFETY: d2i hands us the one reference of a new session (or NULL).
    let sess = unsafe { SessionRef::adopt(sess) }?;
    // Trailing bytes mean the blob was not one DER session.
    (p as usize == der.as_ptr() as usize + der.len()).then_some(sess)
}

/// Borrowed view of a live `SSL` connection.
#[derive(Clone, Copy)]
pub struct Connection(NonNull<SSL>);

impl Connection {
    /// # Safety
    /// `ssl` must be NULL or a connection that stays alive while the view is used.
    pub unsafe fn from_ptr(ssl: *mut SSL) -> Option<Connection> {
        NonNull::new(ssl).map(Connection)
    }

    pub fn as_ptr(self) -> *mut SSL {
        self.0.as_ptr()
    }

    /// The protocol version its sessions are cached under: a QUIC
    /// connection's TLS is 1.3 (`SSL_version` gives the QUIC version).
    pub fn version(self) -> c_int {
        match self.libssl_version() {
            OSSL_QUIC1_VERSION => TLS1_3_VERSION,
            v => v,
        }
    }

    /// A QUIC connection object, which OpenSSL 3.5 and later pass to the
    /// callbacks in place of the TLS connection inside it: `SSL_version`
    /// gives QUIC's version for it, and only for QUIC objects.
    pub fn is_quic(self) -> bool {
        self.libssl_version() == OSSL_QUIC1_VERSION
    }

    fn libssl_version(self) -> c_int {
        // SAFETY: live connection.
        unsafe { sys::SSL_version(self.as_ptr()) }
    }

    /// libssl's `SSL_IS_TLS13`.
    pub fn is_tls13(self) -> bool {
        // SAFETY: live connection.
        let dtls = unsafe { SSL_is_dtls(self.as_ptr()) } == 1;
        let v = self.version();
        !dtls && v >= TLS1_3_VERSION && v != TLS_ANY_VERSION
    }

    pub fn is_server(self) -> bool {
        // SAFETY: live connection.
        unsafe { SSL_is_server(self.as_ptr()) == 1 }
    }

    /// The options libssl's session cache reads. A QUIC connection's
    /// `SSL_get_options` takes the QUIC lock, which libssl holds while it
    /// calls the callbacks: its TLS connection has its ctx's options (it
    /// takes them when it is made, and a server gets the object only then).
    pub fn options(self) -> u64 {
        if self.is_quic() {
            // SAFETY: live connection, and the ctx it holds.
            return unsafe { sys::SSL_CTX_get_options(self.current_ctx()) };
        }
        // SAFETY: live connection.
        unsafe { SSL_get_options(self.as_ptr()) }
    }

    pub fn max_early_data(self) -> u32 {
        // SAFETY: live connection.
        unsafe { sys::SSL_get_max_early_data(self.as_ptr()) }
    }

    /// The `SSL_CTX` the connection currently uses (changes with `SSL_set_SSL_CTX`).
    pub fn current_ctx(self) -> *mut SSL_CTX {
        // SAFETY: live connection.
        unsafe { sys::SSL_get_SSL_CTX(self.as_ptr()) }
    }

    pub fn ex_data(self, idx: c_int) -> *mut c_void {
        // SAFETY: live connection; an unset index reads as NULL.
        unsafe { sys::SSL_get_ex_data(self.as_ptr(), idx) }
    }

    pub fn set_ex_data(self, idx: c_int, data: *mut c_void) -> bool {
        // SAFETY: live connection, index from `new_ssl_index`.
        unsafe { sys::SSL_set_ex_data(self.as_ptr(), idx, data) == 1 }
    }
}

/// Borrowed view of a live `SSL_CTX`, for libssl's own functions on it
/// that this library also exports (reached through [`Real`]). Each answers
/// `None`, and does nothing, when libssl's functions were not found.
#[derive(Clone, Copy)]
pub struct Ctx(NonNull<SSL_CTX>);

impl Ctx {
    /// # Safety
    /// `ctx` must be NULL or a ctx that stays alive while the view is used.
    pub unsafe fn from_ptr(ctx: *mut SSL_CTX) -> Option<Ctx> {
        NonNull::new(ctx).map(Ctx)
    }

    pub fn as_ptr(self) -> *mut SSL_CTX {
        self.0.as_ptr()
    }

    /// libssl's own `SSL_CTX_ctrl` for a command without a pointer
    /// argument: its own cache mode, size or one of its statistics.
    pub fn ctrl(self, cmd: c_int, larg: c_long) -> Option<c_long> {
        let real = real()?;
        // SAFETY: live ctx; a command that reads no pointer.
        Some(unsafe { (real.SSL_CTX_ctrl)(self.as_ptr(), cmd, larg, std::ptr::null_mut()) })
    }

    /// libssl's own `SSL_CTX_add_session`, into its own table (which takes
    /// its own reference and lock): 1 if the table took the session.
    pub fn add_to_own_table(self, sess: Session) -> Option<c_int> {
        let real = real()?;
        // SAFETY: live ctx and session.
        Some(unsafe { (real.SSL_CTX_add_session)(self.as_ptr(), sess.as_ptr()) })
    }

    /// libssl's own `SSL_CTX_remove_session`: marks the session not
    /// resumable and takes what its own table holds under the session's key
    /// out of it (1 if there was one), with its own lock.
    pub fn remove_from_own_table(self, sess: Session) -> Option<c_int> {
        let real = real()?;
        // SAFETY: live ctx and session.
        Some(unsafe { (real.SSL_CTX_remove_session)(self.as_ptr(), sess.as_ptr()) })
    }

    /// Sets libssl's own three external-cache callbacks of the ctx.
    pub fn set_callbacks(self, new: NewSessionFn, remove: RemoveSessionFn, get: GetSessionFn) {
        let Some(real) = real() else { return };
        // SAFETY: live ctx; libssl's own setters store the pointers.
        unsafe {
            (real.SSL_CTX_sess_set_new_cb)(self.as_ptr(), Some(new));
            (real.SSL_CTX_sess_set_remove_cb)(self.as_ptr(), Some(remove));
            (real.SSL_CTX_sess_set_get_cb)(self.as_ptr(), Some(get));
        }
    }
}

/// A new ctx from libssl's own `SSL_CTX_new` (NULL if it fails).
pub fn own_ctx_new() -> Option<*mut SSL_CTX> {
    let real = real()?;
    // SAFETY: plain ctx creation through libssl, with a static method.
    Some(unsafe { (real.SSL_CTX_new)(tls_method()) })
}

/// Allocates an `SSL_CTX` ex_data index whose free callback is `free`.
pub fn new_ctx_index(free: ExFree) -> Option<c_int> {
    // SAFETY: plain registration call; no new/dup callbacks.
    let idx = unsafe {
        CRYPTO_get_ex_new_index(
            CRYPTO_EX_INDEX_SSL_CTX,
            0,
            std::ptr::null_mut(),
            std::ptr::null(),
            None,
            Some(free),
        )
    };
    (idx >= 0).then_some(idx)
}

/// Allocates an `SSL` ex_data index with the given dup and free callbacks.
pub fn new_ssl_index(dup: ExDup, free: Option<ExFree>) -> Option<c_int> {
    // SAFETY: plain registration call.
    let idx = unsafe {
        CRYPTO_get_ex_new_index(
            CRYPTO_EX_INDEX_SSL,
            0,
            std::ptr::null_mut(),
            std::ptr::null(),
            Some(dup),
            free,
        )
    };
    (idx >= 0).then_some(idx)
}

/// # Safety
/// `ctx` must be a live `SSL_CTX`.
pub unsafe fn ctx_ex_data(ctx: *mut SSL_CTX, idx: c_int) -> *mut c_void {
    // SAFETY: live ctx per the contract; unset reads as NULL.
    unsafe { sys::SSL_CTX_get_ex_data(ctx, idx) }
}

/// # Safety
/// `ctx` must be a live `SSL_CTX`.
pub unsafe fn set_ctx_ex_data(ctx: *mut SSL_CTX, idx: c_int, data: *mut c_void) -> bool {
    // SAFETY: live ctx per the contract.
    unsafe { sys::SSL_CTX_set_ex_data(ctx, idx, data) == 1 }
}

/// A method for the start-up probe ctx.
pub fn tls_method() -> *const SSL_METHOD {
    // SAFETY: returns a static table.
    unsafe { sys::TLS_method() }
}

/// `time(NULL)`.
pub fn now() -> i64 {
    // SAFETY: time(NULL) has no preconditions.
    unsafe { libc::time(std::ptr::null_mut()) }
}

/// The time as libssl 3.3 and later read it (`gettimeofday`): whole
/// seconds and microseconds.
fn now_micros() -> (u64, u64) {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: fills our timeval; no time zone asked for.
    if unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) } != 0 || tv.tv_sec <= 0 {
        return (0, 0);
    }
    (tv.tv_sec as u64, tv.tv_usec.max(0) as u64)
}

/// The file name of the loaded object that contains `addr`.
pub fn object_file_of(addr: *const c_void) -> Option<Vec<u8>> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills `info` for any address; zeroed is a valid Dl_info.
    if unsafe { libc::dladdr(addr, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: dladdr succeeded, so `info` is initialised.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    Some(
        unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
            .to_bytes()
            .to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pass_through_line_names_what_was_seen_and_what_is_covered() {
        let line = pass_through_message(0x4000_0010);
        assert!(
            line.starts_with(
                "sesscache: the running libssl is OpenSSL 4.0.1 (0x40000010), \
                 not a release sesscache is exact on (3.0, 3.5.7 and later 3.5, \
                 3.6.3 to 3.6.4, 4.0.2 and later 4.0): "
            ),
            "{line}"
        );
        assert!(line.contains("Release lines"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_test_process_libssl_is_served() {
        // The test binary runs on the machine's libssl, a served release.
        let v = sys::openssl_version_num().expect("libcrypto is loaded");
        assert_eq!(serving(), release_served(v));
    }
}
