//! The shared-memory backend (`SESSCACHE_STORE=shm` or `shm:/path`): a
//! mapping of fixed size shared by every process of a server, with no
//! server to run.
//!
//! `shm`: an anonymous shared mapping made at the first `SSL_CTX_new` and
//! inherited by every process forked after it. `shm:/path`: a file (on
//! tmpfs) that separately started processes join; it is made race-free
//! (`O_CREAT|O_EXCL`, magic written last) and joined only if it is a
//! regular file (not a symlink), owned by the effective user, with no
//! permission bits beyond `SESSCACHE_STORE_MODE` (default 0600), and of the
//! configured size and this layout. Anything else is refused without
//! writing a byte.
//!
//! The backend only moves sealed bytes (see [`super::seal`]): it never
//! calls the application or libssl, and holds a shard's lock only to copy
//! bytes in or out. A lock wait is bounded; after it the operation is
//! skipped (a miss, or a write not made) and counted. A removal leaves a
//! mark in the slot until the session would have expired, which the other
//! processes consult on their local hits ([`Backend::was_deleted`]).

mod layout;
mod lock;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Backend, StoreConnection, StoreError, StoreWriter, WriteOp};
use crate::diag;
use layout::{Geometry, Put, Shard};
use lock::{NotTaken, Taken};

pub const DEFAULT_SIZE: usize = 16 << 20;
pub const MIN_SIZE: usize = 256 << 10;
pub const MAX_SIZE: usize = 4 << 30;
pub const DEFAULT_MODE: u32 = 0o600;
/// The longest a store operation waits for a shard's lock.
pub const LOCK_WAIT: Duration = Duration::from_millis(3);
/// How long a removal of a session the store does not hold is remembered
/// (a copy may still be cached by a process; longer than default lifetimes).
const REMOVED_SECS: i64 = 24 * 3600;
/// How long a joining process waits for the creator to finish the file.
const CREATOR_WAIT: Duration = Duration::from_secs(2);

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Inherited,
    File(PathBuf),
}

impl Place {
    /// `shm` or `shm:/absolute/path`; `None` for anything else.
    pub fn parse(url: &str) -> Option<Place> {
        match url.strip_prefix("shm") {
            Some("") => Some(Place::Inherited),
            Some(rest) => rest
                .strip_prefix(':')
                .filter(|p| p.starts_with('/'))
                .map(|p| Place::File(PathBuf::from(p))),
            None => None,
        }
    }
}

/// The mapping; made once per process tree and never unmapped.
pub struct Region {
    base: *mut u8,
    geometry: Geometry,
}

// SAFETY: the mapping is shared memory that every access reaches through a
// shard lock (or, for the header, only reads); the pointer never changes.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl Region {
    /// A new anonymous shared mapping, inherited across `fork`.
    pub fn inherited(size: usize) -> Result<Region, String> {
        let geometry = Geometry::for_size(size).ok_or("SESSCACHE_STORE_SIZE is too small")?;
        // SAFETY: a fresh anonymous mapping; no file, no fixed address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {size} bytes of shared memory: {}",
                errno()
            ));
        }
        let region = Region {
            base: base.cast(),
            geometry,
        };
        region.keep_out_of_dumps();
        region.initialise()?;
        Ok(region)
    }

    /// Creates the store file at `path`, or joins the one there.
    pub fn file(path: &Path, size: usize, mode: u32) -> Result<Region, String> {
        let geometry = Geometry::for_size(size).ok_or("SESSCACHE_STORE_SIZE is too small")?;
        let shown = path.display();
        let c_path =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path has a NUL byte")?;
        let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path; the mode is a plain number.
        let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_CREAT | libc::O_EXCL, mode) };
        if fd >= 0 {
            let made = Region::create(fd, geometry, mode);
            if made.is_err() {
                // SAFETY: removes the file this call created (not yet joinable:
                // its magic was never written).
                unsafe { libc::unlink(c_path.as_ptr()) };
            }
            // SAFETY: our fd; the mapping stays valid after close.
            unsafe { libc::close(fd) };
            return made.map_err(|e| format!("cannot create {shown}: {e}"));
        }
        let created_err = errno();
        if created_err.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("cannot create {shown}: {created_err}"));
        }
        // SAFETY: as above, without creating.
        let fd = unsafe { libc::open(c_path.as_ptr(), flags) };
        if fd < 0 {
            let e = errno();
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) => format!("{shown} is a symlink"),
                _ => format!("cannot open {shown}: {e}"),
            });
        }
        let joined = Region::join(fd, geometry, mode);
        // SAFETY: our fd; the mapping stays valid after close.
        unsafe { libc::close(fd) };
        joined.map_err(|e| format!("{shown}: {e}"))
    }

    fn create(fd: i32, geometry: Geometry, mode: u32) -> Result<Region, String> {
        // SAFETY: our fd; sets exactly the configured mode (umask aside).
        if unsafe { libc::fchmod(fd, mode) } != 0 {
            return Err(format!("fchmod: {}", errno()));
        }
        // Every page allocated now: a filesystem too small fails here, not
        // with SIGBUS in a handshake later.
        // SAFETY: our fd.
        let rc = unsafe { libc::posix_fallocate(fd, 0, geometry.total as libc::off_t) };
        if rc != 0 {
            return Err(format!(
                "cannot allocate {} bytes: {}",
                geometry.total,
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        let region = Region::map(fd, geometry)?;
        region.initialise()?;
        Ok(region)
    }

    fn join(fd: i32, geometry: Geometry, mode: u32) -> Result<Region, String> {
        let started = Instant::now();
        loop {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: our fd and stat buffer.
            if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
                return Err(format!("fstat: {}", errno()));
            }
            // SAFETY: fstat filled it.
            let st = unsafe { st.assume_init() };
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err("not a regular file".into());
            }
            // SAFETY: no preconditions.
            let euid = unsafe { libc::geteuid() };
            if st.st_uid != euid {
                return Err(format!(
                    "owned by uid {}, not by this process's uid {euid}",
                    st.st_uid
                ));
            }
            let extra = st.st_mode & 0o7777 & !mode;
            if extra != 0 {
                return Err(format!(
                    "mode {:04o} has bits beyond SESSCACHE_STORE_MODE {mode:04o}",
                    st.st_mode & 0o7777
                ));
            }
            let waiting = started.elapsed() < CREATOR_WAIT;
            if st.st_size as u64 == geometry.total as u64 {
                let region = Region::map(fd, geometry)?;
                match region.check_header() {
                    Ok(()) => return Ok(region),
                    // The creator has allocated it and not yet finished.
                    Err(_) if waiting && region.header()[..8] == [0; 8] => region.unmap(),
                    Err(e) => {
                        region.unmap();
                        return Err(e.into());
                    }
                }
            } else if !(waiting && (st.st_size as u64) < geometry.total as u64) {
                return Err(format!(
                    "{} bytes, not the {} of SESSCACHE_STORE_SIZE",
                    st.st_size, geometry.total
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn map(fd: i32, geometry: Geometry) -> Result<Region, String> {
        // SAFETY: maps our fd's first `total` bytes (the file has them).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                geometry.total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("mmap: {}", errno()));
        }
        let region = Region {
            base: base.cast(),
            geometry,
        };
        region.keep_out_of_dumps();
        Ok(region)
    }

    fn unmap(self) {
        // SAFETY: our mapping, not yet shared with any other code.
        unsafe { libc::munmap(self.base.cast(), self.geometry.total) };
    }

    fn keep_out_of_dumps(&self) {
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(self.base.cast(), self.geometry.total, libc::MADV_DONTDUMP) };
    }

    fn header(&self) -> &[u8] {
        // SAFETY: the first HEADER_LEN bytes of our mapping; only read.
        unsafe { std::slice::from_raw_parts(self.base, layout::HEADER_LEN) }
    }

    fn check_header(&self) -> Result<(), &'static str> {
        layout::check_header(self.header(), &self.geometry)
    }

    fn lock_ptr(&self, shard: usize) -> *mut libc::pthread_mutex_t {
        // SAFETY: inside the mapping: shard < shards.
        unsafe { self.base.add(self.geometry.shard_header_offset(shard)) }.cast()
    }

    /// Header, locks and empty shards, then the magic.
    fn initialise(&self) -> Result<(), String> {
        // SAFETY: the mapping is ours alone until the magic is written.
        let header = unsafe { std::slice::from_raw_parts_mut(self.base, layout::HEADER_LEN) };
        layout::write_header(header, &self.geometry);
        for shard in 0..self.geometry.shards {
            // SAFETY: a lock slot in the unpublished mapping.
            unsafe { lock::init(self.lock_ptr(shard)) }.map_err(|rc| {
                format!(
                    "pthread_mutex_init: {}",
                    std::io::Error::from_raw_os_error(rc)
                )
            })?;
        }
        std::sync::atomic::fence(Ordering::Release);
        layout::write_magic(header);
        Ok(())
    }

    /// The shard's bytes, for the holder of its lock.
    ///
    /// # Safety
    /// The caller holds the shard's lock (or, for the checker, no process
    /// uses the store), and drops the shard before releasing it.
    unsafe fn shard(&self, shard: usize) -> Shard<'_> {
        let g = &self.geometry;
        // SAFETY: both ranges are inside the mapping and do not overlap;
        // the lock keeps other well-behaved processes out. A hostile writer
        // can only change byte values, which every read treats as untrusted.
        unsafe {
            Shard::new(
                std::slice::from_raw_parts_mut(
                    self.base.add(g.shard_header_offset(shard)),
                    layout::SHARD_HEADER_LEN,
                ),
                std::slice::from_raw_parts_mut(
                    self.base.add(g.shard_slots_offset(shard)),
                    layout::SHARD_SLOTS_LEN,
                ),
            )
        }
    }
}

/// The point at which `SESSCACHE_TEST_SHM_STOP_AT` stops this process with
/// SIGSTOP (once), so that a test can kill or hold it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopAt {
    /// Right after taking a lock.
    Locked,
    /// Half way through writing a slot, lock held.
    Writing,
}

fn stop_here(at: StopAt, wanted: Option<StopAt>, done: &AtomicBool) {
    if wanted == Some(at) && !done.swap(true, Ordering::Relaxed) {
        // SAFETY: raises a signal at ourselves.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// This process's counters of the shm store.
#[derive(Default)]
struct ShmCounters {
    lock_timeouts: AtomicU64,
    repairs: AtomicU64,
    evictions: AtomicU64,
    oversize: AtomicU64,
}

/// The counters' names, in [`Backend::counters`]'s order.
pub const COUNTER_NAMES: [&str; 4] = [
    "store_lock_timeouts",
    "store_repairs",
    "store_evictions",
    "store_oversize",
];

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn now() -> i64 {
    crate::libssl::now()
}

struct Inner {
    region: &'static Region,
    counters: ShmCounters,
    stop_at: Option<StopAt>,
    stopped: AtomicBool,
}

impl Inner {
    /// Runs `op` on `key`'s shard under its lock; `None` if the lock was
    /// not had within [`LOCK_WAIT`] (counted, said once).
    fn with_shard<T>(
        &self,
        key: &str,
        op: impl FnOnce(&mut Shard<'_>, &dyn Fn()) -> T,
    ) -> Option<T> {
        let g = &self.region.geometry;
        let shard = g.shard_of(layout::key_hash(key.as_bytes()));
        let m = self.region.lock_ptr(shard);
        // SAFETY: an initialised (or checked-file) lock of our mapping.
        let taken = unsafe { lock::lock(m, LOCK_WAIT) };
        let taken = match taken {
            Ok(t) => t,
            Err(NotTaken::TimedOut) => {
                bump(&self.counters.lock_timeouts);
                diag::warn_once(
                    "sesscache: a shm store lock was held longer than the wait; the store is skipped for such operations (store_lock_timeouts)",
                );
                return None;
            }
            Err(NotTaken::Broken(_)) => {
                bump(&self.counters.lock_timeouts);
                diag::warn_once(
                    "sesscache: a shm store lock is unusable; the store is skipped for its sessions (store_lock_timeouts)",
                );
                return None;
            }
        };
        // SAFETY: we hold the shard's lock; the shard is last used before
        // the unlock.
        let mut bytes = unsafe { self.region.shard(shard) };
        if taken == Taken::OwnerDied {
            bytes.repair();
            bump(&self.counters.repairs);
            // SAFETY: we hold it, taken with EOWNERDEAD, and repaired.
            unsafe { lock::mark_consistent(m) };
        }
        stop_here(StopAt::Locked, self.stop_at, &self.stopped);
        let halfway = || stop_here(StopAt::Writing, self.stop_at, &self.stopped);
        let result = op(&mut bytes, &halfway);
        // SAFETY: we hold it.
        unsafe { lock::unlock(m) };
        Some(result)
    }
}

/// The backend of one process: the shared region and its own counters.
pub struct ShmBackend(Arc<Inner>);

impl ShmBackend {
    pub fn new(region: &'static Region) -> ShmBackend {
        let stop_at = match std::env::var("SESSCACHE_TEST_SHM_STOP_AT").as_deref() {
            Ok("locked") => Some(StopAt::Locked),
            Ok("writing") => Some(StopAt::Writing),
            _ => None,
        };
        ShmBackend(Arc::new(Inner {
            region,
            counters: ShmCounters::default(),
            stop_at,
            stopped: AtomicBool::new(false),
        }))
    }
}

#[cfg(feature = "store-bench")]
impl ShmBackend {
    /// For the benchmark: how long a lookup and a publish of `key` hold its
    /// shard's lock (the shard operation, timed inside the lock), in ns.
    pub fn hold_ns(&self, key: &str, value: &[u8]) -> (u64, u64) {
        let now = now();
        let ns = |t: Instant| u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let get = self.0.with_shard(key, |s, _| {
            let t = Instant::now();
            std::hint::black_box(s.get(key.as_bytes(), now));
            ns(t)
        });
        let put = self.0.with_shard(key, |s, halfway| {
            let t = Instant::now();
            std::hint::black_box(s.put(key.as_bytes(), value, now + 3600, now, halfway));
            ns(t)
        });
        (get.unwrap_or(0), put.unwrap_or(0))
    }
}

struct ShmConnection(Arc<Inner>);

impl StoreConnection for ShmConnection {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now();
        Ok(self
            .0
            .with_shard(key, |s, _| s.get(key.as_bytes(), now))
            .flatten())
    }

    fn take(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now();
        Ok(self
            .0
            .with_shard(key, |s, halfway| s.take(key.as_bytes(), now, halfway))
            .flatten())
    }
}

impl StoreWriter for ShmConnection {
    fn send(&mut self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let now = now();
        for op in ops {
            match op {
                WriteOp::Put {
                    key,
                    value,
                    ttl_secs,
                } => {
                    let expires = now.saturating_add(i64::try_from(*ttl_secs).unwrap_or(i64::MAX));
                    let put = self.0.with_shard(key, |s, halfway| {
                        s.put(key.as_bytes(), value, expires, now, halfway)
                    });
                    match put {
                        Some(Put::StoredEvicting) => bump(&self.0.counters.evictions),
                        Some(Put::TooLarge) => bump(&self.0.counters.oversize),
                        _ => {}
                    }
                }
                WriteOp::Delete { key } => {
                    let until = now.saturating_add(REMOVED_SECS);
                    self.0.with_shard(key, |s, halfway| {
                        s.remove(key.as_bytes(), until, now, halfway)
                    });
                }
                // Nothing listens: every process reads the mapping itself.
                WriteOp::Publish { .. } => {}
            }
        }
        Ok(())
    }
}

impl Backend for ShmBackend {
    fn connect(&self) -> Result<Box<dyn StoreConnection>, StoreError> {
        Ok(Box::new(ShmConnection(self.0.clone())))
    }

    fn connect_writer(&self) -> Result<Box<dyn StoreWriter>, StoreError> {
        Ok(Box::new(ShmConnection(self.0.clone())))
    }

    fn listen(
        &self,
        _channel: &str,
        _subscribed: &mut dyn FnMut(),
        _deliver: &mut dyn FnMut(&[u8]),
    ) -> StoreError {
        StoreError("the shm store has no messages: removals are marks in the mapping".into())
    }

    /// A lock not had in time counts as removed: a local copy is then not
    /// resumed, which a cache may always do.
    fn was_deleted(&self, key: &str) -> bool {
        let now = now();
        self.0
            .with_shard(key, |s, _| s.removed(key.as_bytes(), now))
            .unwrap_or(true)
    }

    fn too_large(&self, key: &str, value: &[u8]) -> bool {
        let too_large = !layout::fits(key.as_bytes(), value);
        if too_large {
            bump(&self.0.counters.oversize);
        }
        too_large
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = &self.0.counters;
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        COUNTER_NAMES
            .into_iter()
            .zip([
                v(&c.lock_timeouts),
                v(&c.repairs),
                v(&c.evictions),
                v(&c.oversize),
            ])
            .collect()
    }
}

/// Checks a store file's consistency (for tests, with its users stopped or
/// gone): the header, then every shard, taking each lock (repairing after a
/// dead holder) as a store user would. Returns a summary line, or the
/// problems found.
pub fn check_file(path: &Path, size: usize) -> Result<String, String> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(format!("{}: no such file", path.display()));
    }
    let region = Region::file(path, size, 0o777)?;
    let g = region.geometry;
    let (mut live, mut removed, mut problems, mut unlocked, mut repaired) =
        (0, 0, Vec::new(), 0, 0);
    for shard in 0..g.shards {
        let m = region.lock_ptr(shard);
        // SAFETY: a lock of the checked mapping.
        match unsafe { lock::lock(m, Duration::from_millis(100)) } {
            Ok(taken) => {
                // SAFETY: held; last used before the unlock.
                let mut bytes = unsafe { region.shard(shard) };
                if taken == Taken::OwnerDied {
                    bytes.repair();
                    repaired += 1;
                    // SAFETY: held, repaired.
                    unsafe { lock::mark_consistent(m) };
                }
                let r = bytes.check(&g, shard);
                live += r.live;
                removed += r.removed;
                problems.extend(r.problems);
                // SAFETY: held.
                unsafe { lock::unlock(m) };
            }
            Err(e) => {
                unlocked += 1;
                problems.push(format!("shard {shard}: lock not taken ({e:?})"));
            }
        }
    }
    let summary = format!(
        "shards={} capacity={} live={live} removed={removed} repaired={repaired} unlockable={unlocked}",
        g.shards,
        g.capacity()
    );
    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}; {}", problems.join("; ")))
    }
}
