//! Every libssl/libcrypto function this library calls and does not export,
//! found at run time in the libssl the process has loaded.
//!
//! The library links against no libssl (no `NEEDED libssl.so.3`): a process
//! on another soname (OpenSSL 4's `libssl.so.4`) must never get a second
//! libssl because of us. `openssl-sys` gives the types and constants only.
//! Each function below keeps libssl's name and C signature and calls
//! through a pointer looked up once (`dlsym`, the definition after this
//! library first, then the global one); while libssl is not found, each
//! gives the failure value written next to it.

#![allow(non_snake_case)]

use std::ffi::{c_int, c_long, c_uchar, c_uint, c_ulong, c_void};
use std::ptr::{null, null_mut};

use once_cell::sync::OnceCell;
pub use openssl_sys::{EVP_CIPHER, EVP_CIPHER_CTX, EVP_CTRL_GCM_GET_TAG, EVP_CTRL_GCM_SET_TAG};
use openssl_sys::{SSL, SSL_CTX, SSL_METHOD, SSL_SESSION};

use super::{ExDup, ExFree};

/// The definition of `name` after this library, else the global one.
fn lookup(name: &'static [u8]) -> Option<*mut c_void> {
    debug_assert_eq!(name.last(), Some(&0));
    [libc::RTLD_NEXT, libc::RTLD_DEFAULT]
        .into_iter()
        .find_map(|handle| {
            // SAFETY: `name` is a NUL-terminated static string; both handles
            // are the dynamic linker's pseudo-handles.
            let found = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
            (!found.is_null()).then_some(found)
        })
}

macro_rules! resolved {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $fail:expr;)*) => {
        struct Table {
            $($name: unsafe extern "C" fn($($ty),*) -> $ret,)*
        }

        fn resolve() -> Option<Table> {
            Some(Table {
                $($name: {
                    let sym = lookup(concat!(stringify!($name), "\0").as_bytes())?;
                    // SAFETY: the symbol is libssl's (or libcrypto's)
                    // function of that name, whose C prototype is this type
                    // on every release line from 3.0 on.
                    unsafe {
                        std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) -> $ret>(sym)
                    }
                },)*
            })
        }

        $(
            /// libssl's function of the same name.
            ///
            /// # Safety
            /// As for the C function.
            #[inline]
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                match table() {
                    // SAFETY: the caller keeps the C function's contract.
                    Some(t) => unsafe { (t.$name)($($arg),*) },
                    None => $fail,
                }
            }
        )*
    };
}

static TABLE: OnceCell<Table> = OnceCell::new();

/// The functions, once all are found (an earlier miss is retried: libssl
/// may be loaded later with `dlopen`).
fn table() -> Option<&'static Table> {
    TABLE.get_or_try_init(|| resolve().ok_or(())).ok()
}

resolved! {
    SSL_SESSION_up_ref(s: *mut SSL_SESSION) -> c_int = 0;
    SSL_SESSION_free(s: *mut SSL_SESSION) -> () = ();
    SSL_SESSION_new() -> *mut SSL_SESSION = null_mut();
    SSL_SESSION_get_id(s: *const SSL_SESSION, len: *mut c_uint) -> *const c_uchar = null();
    SSL_SESSION_get0_id_context(s: *const SSL_SESSION, len: *mut c_uint) -> *const c_uchar = null();
    SSL_SESSION_get_protocol_version(s: *const SSL_SESSION) -> c_int = 0;
    SSL_SESSION_get_time(s: *const SSL_SESSION) -> c_long = 0;
    SSL_SESSION_get_timeout(s: *const SSL_SESSION) -> c_long = 0;
    SSL_SESSION_is_resumable(s: *const SSL_SESSION) -> c_int = 0;
    SSL_SESSION_has_ticket(s: *const SSL_SESSION) -> c_int = 0;
    SSL_SESSION_get_max_early_data(s: *const SSL_SESSION) -> u32 = 0;
    i2d_SSL_SESSION(s: *mut SSL_SESSION, pp: *mut *mut c_uchar) -> c_int = 0;
    d2i_SSL_SESSION(a: *mut *mut SSL_SESSION, pp: *mut *const c_uchar, len: c_long) -> *mut SSL_SESSION = null_mut();
    SSL_version(ssl: *const SSL) -> c_int = 0;
    SSL_get_options(ssl: *const SSL) -> u64 = 0;
    SSL_is_dtls(ssl: *const SSL) -> c_int = 0;
    SSL_is_server(ssl: *const SSL) -> c_int = 0;
    SSL_get_max_early_data(ssl: *const SSL) -> u32 = 0;
    SSL_get_SSL_CTX(ssl: *const SSL) -> *mut SSL_CTX = null_mut();
    SSL_CTX_get_options(ctx: *const SSL_CTX) -> u64 = 0;
    SSL_get_ex_data(ssl: *const SSL, idx: c_int) -> *mut c_void = null_mut();
    SSL_set_ex_data(ssl: *mut SSL, idx: c_int, data: *mut c_void) -> c_int = 0;
    SSL_CTX_get_ex_data(ctx: *const SSL_CTX, idx: c_int) -> *mut c_void = null_mut();
    SSL_CTX_set_ex_data(ctx: *mut SSL_CTX, idx: c_int, data: *mut c_void) -> c_int = 0;
    TLS_method() -> *const SSL_METHOD = null();
    CRYPTO_get_ex_new_index(
        class_index: c_int,
        argl: c_long,
        argp: *mut c_void,
        new_func: *const c_void,
        dup_func: Option<ExDup>,
        free_func: Option<ExFree>
    ) -> c_int = -1;
    // SAFETY (of the fallback): the caller's `len` writable bytes at `ptr`.
    OPENSSL_cleanse(ptr: *mut c_void, len: usize) -> () = unsafe { wipe(ptr, len) };
    RAND_bytes(buf: *mut c_uchar, num: c_int) -> c_int = 0;
    SHA256(d: *const c_uchar, n: usize, md: *mut c_uchar) -> *mut c_uchar = null_mut();
    EVP_CIPHER_CTX_new() -> *mut EVP_CIPHER_CTX = null_mut();
    EVP_CIPHER_CTX_free(ctx: *mut EVP_CIPHER_CTX) -> () = ();
    EVP_CIPHER_CTX_ctrl(ctx: *mut EVP_CIPHER_CTX, kind: c_int, arg: c_int, ptr: *mut c_void) -> c_int = 0;
    EVP_aes_256_gcm() -> *const EVP_CIPHER = null();
    EVP_EncryptInit_ex(
        ctx: *mut EVP_CIPHER_CTX,
        cipher: *const EVP_CIPHER,
        engine: *mut c_void,
        key: *const c_uchar,
        iv: *const c_uchar
    ) -> c_int = 0;
    EVP_DecryptInit_ex(
        ctx: *mut EVP_CIPHER_CTX,
        cipher: *const EVP_CIPHER,
        engine: *mut c_void,
        key: *const c_uchar,
        iv: *const c_uchar
    ) -> c_int = 0;
    EVP_EncryptUpdate(
        ctx: *mut EVP_CIPHER_CTX,
        out: *mut c_uchar,
        outl: *mut c_int,
        input: *const c_uchar,
        inl: c_int
    ) -> c_int = 0;
    EVP_DecryptUpdate(
        ctx: *mut EVP_CIPHER_CTX,
        out: *mut c_uchar,
        outl: *mut c_int,
        input: *const c_uchar,
        inl: c_int
    ) -> c_int = 0;
    EVP_EncryptFinal_ex(ctx: *mut EVP_CIPHER_CTX, out: *mut c_uchar, outl: *mut c_int) -> c_int = 0;
    EVP_DecryptFinal_ex(ctx: *mut EVP_CIPHER_CTX, out: *mut c_uchar, outl: *mut c_int) -> c_int = 0;
}

/// Zeroes `len` bytes at `ptr` with writes the compiler keeps, as
/// `OPENSSL_cleanse` does, for when libcrypto is not found.
///
/// # Safety
/// `len` writable bytes at `ptr`.
unsafe fn wipe(ptr: *mut c_void, len: usize) {
    let p = ptr.cast::<u8>();
    for i in 0..len {
        // SAFETY: within the caller's buffer.
        unsafe { std::ptr::write_volatile(p.add(i), 0) };
    }
}

/// `OpenSSL_version_num()` of the libcrypto the process has loaded, looked
/// up on its own: the release line decides everything else.
pub fn openssl_version_num() -> Option<u64> {
    static FOUND: OnceCell<usize> = OnceCell::new();
    let addr = *FOUND
        .get_or_try_init(|| {
            lookup(b"OpenSSL_version_num\0")
                .map(|p| p as usize)
                .ok_or(())
        })
        .ok()?;
    // SAFETY: libcrypto's `unsigned long OpenSSL_version_num(void)` (the
    // same prototype since 1.1.0), found above.
    let f = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn() -> c_ulong>(addr) };
    // SAFETY: no arguments; returns a constant.
    #[allow(clippy::useless_conversion)] // c_ulong is u64 here, u32 elsewhere
    Some(u64::from(unsafe { f() }))
}
