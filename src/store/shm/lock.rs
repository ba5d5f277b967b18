//! A shard's lock: a robust, process-shared pthread mutex in the mapping,
//! taken with a bounded wait.
//!
//! Robust: when a holder dies, the next locker is told (`EOWNERDEAD`), puts
//! the shard right and marks the mutex consistent; a stopped holder makes
//! the others give up after the wait instead of queueing forever.

use std::time::Duration;

/// How a lock was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Clean,
    /// The previous holder died holding it: the data may be half written.
    OwnerDied,
}

/// Why a lock was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum NotTaken {
    TimedOut,
    /// The mutex is unusable (never initialised, or left inconsistent).
    Broken(i32),
}

/// Initialises the mutex at `m`.
///
/// # Safety
/// `m` points to `LOCK_LEN` writable bytes of a shared mapping that no other
/// process uses yet.
pub unsafe fn init(m: *mut libc::pthread_mutex_t) -> Result<(), i32> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: attr is ours; each call initialises or sets it before use.
    unsafe {
        let a = attr.as_mut_ptr();
        let mut rc = libc::pthread_mutexattr_init(a);
        if rc == 0 {
            rc = libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED);
        }
        if rc == 0 {
            rc = libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST);
        }
        if rc == 0 {
            rc = libc::pthread_mutex_init(m, a);
        }
        libc::pthread_mutexattr_destroy(a);
        if rc == 0 { Ok(()) } else { Err(rc) }
    }
}

/// Takes the mutex at `m`, waiting at most `wait`.
///
/// # Safety
/// `m` points to a mutex initialised by [`init`] (or bytes another process
/// wrote there) inside a mapping that stays mapped while it is held.
pub unsafe fn lock(m: *mut libc::pthread_mutex_t, wait: Duration) -> Result<Taken, NotTaken> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: fills our timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let nanos = now.tv_nsec + wait.as_nanos().min(1_000_000_000) as i64;
    let deadline = libc::timespec {
        tv_sec: now.tv_sec + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as _,
    };
    // SAFETY: per the contract; the deadline is ours.
    match unsafe { libc::pthread_mutex_timedlock(m, &deadline) } {
        0 => Ok(Taken::Clean),
        libc::EOWNERDEAD => Ok(Taken::OwnerDied),
        libc::ETIMEDOUT => Err(NotTaken::TimedOut),
        rc => Err(NotTaken::Broken(rc)),
    }
}

/// After repairing what a dead holder left: the mutex is usable again.
///
/// # Safety
/// The caller holds `m`, taken with [`Taken::OwnerDied`].
pub unsafe fn mark_consistent(m: *mut libc::pthread_mutex_t) {
    // SAFETY: per the contract.
    unsafe { libc::pthread_mutex_consistent(m) };
}

/// # Safety
/// The caller holds `m`.
pub unsafe fn unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: per the contract.
    unsafe { libc::pthread_mutex_unlock(m) };
}
