//! The cache's locks: reader-writer locks for its shards, whose readers
//! write only to a cache line of their own, and [`ExclusiveLock`] for its
//! expiry order, which has no readers.
//!
//! Why not `std::sync::RwLock`: taking its read lock is a read-modify-write
//! of the lock word, so two threads looking up sessions move every shard's
//! lock line between their cores. Two threads then did 1.2-1.4 times the
//! lookups of one (benchmark `lookup 2t`), where two threads sharing
//! nothing do 1.95 times. Here a reader counts itself in one of
//! [`READER_ROWS`] rows, each on its own cache line, chosen by the thread's
//! stack address; it only reads the shard's writer flag, which stays in
//! every core's cache until a writer comes. A writer raises the flag and
//! waits until the shard's count is zero in every row.
//!
//! The cost moves to writers: [`READER_ROWS`] loads per write lock (cache
//! hits when no other thread is reading), and the unlock is a plain store.
//!
//! This module is the one place where the project writes `unsafe` that the
//! C ABI does not force: a lock hands out references to the value it
//! guards, which safe Rust cannot express. `std` has no lock whose readers
//! leave shared lines alone, and crossbeam's `ShardedLock`, the usual crate
//! for it, takes several `RwLock`s per write, which makes every insert and
//! removal slower (BENCHMARKS.md). The unsafe part is the dereferences of the cells and the
//! two `Sync` claims, each argued below, and the tests at the end fail when a
//! reader does not count itself, a writer does not wait for readers, or an
//! exclusive lock lets two holders in or unlocks without ordering.
//!
//! Checked by loom's model checker as well (`loom_tests` at the end,
//! `make test-loom`): every interleaving of the two-thread tests there,
//! and of the three-thread ones those with at most one preemption, with
//! every access to the value checked for order.
//!
//! Waiting spins, then yields, then sleeps briefly: readers hold a shard for
//! one hash probe and writers for one insert or removal (the rare table
//! rebuild takes up to a few milliseconds at a million sessions), and no
//! code runs under these locks that could take another lock of ours
//! (application callbacks run after every lock is released).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

// In tests under `--cfg loom` (`loom_tests` at the end) the atomics and the
// cell are loom's, which explore every interleaving of a small test and report
// any access to the value that the lock did not order.
#[cfg(all(test, loom))]
use loom::{
    cell::{ConstPtr, MutPtr, UnsafeCell},
    sync::atomic::{AtomicBool, AtomicU32},
};
#[cfg(not(all(test, loom)))]
use std::{
    cell::UnsafeCell,
    sync::atomic::{AtomicBool, AtomicU32},
};

/// After each `SeqCst` access the protocol relies on. loom treats `SeqCst`
/// loads, stores and read-modify-writes as `AcqRel`, which would let both
/// a reader and a writer miss each other (a false alarm), but it does model
/// `SeqCst` fences: in the model the fence restores what the `SeqCst`
/// access promises. In the real build the accesses themselves suffice.
#[inline(always)]
fn seq_cst_point() {
    #[cfg(all(test, loom))]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// Rows of reader counts: two threads running at once land in different
/// rows unless their stacks hash alike (see [`this_threads_row`]). A writer
/// reads one count per row.
pub const READER_ROWS: usize = 8;

/// One row of reader counts, one count per shard, on its own cache lines
/// (128 bytes: x86 fetches lines in adjacent pairs).
#[repr(align(128))]
struct ReaderRow<const N: usize> {
    readers: [AtomicU32; N],
}

/// A shard's writer flag and value, on its own cache lines.
#[repr(align(128))]
struct Shard<T> {
    writer: AtomicBool,
    value: UnsafeCell<T>,
}

impl<T> Shard<T> {
    fn new(value: T) -> Shard<T> {
        Shard {
            writer: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Raises the writer flag, once no other writer holds it.
    #[inline]
    fn take_writer_flag(&self) {
        if self
            .writer
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            self.wait_for_other_writer();
        }
    }

    #[cold]
    fn wait_for_other_writer(&self) {
        let mut wait = Backoff::default();
        while self.writer.load(Ordering::Relaxed)
            || self
                .writer
                .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            wait.pause();
        }
    }
}

/// `N` values, each behind its own reader-writer lock.
pub struct ShardLocks<T, const N: usize> {
    shards: Box<[Shard<T>]>,
    rows: Box<[ReaderRow<N>; READER_ROWS]>,
}

// SAFETY: a shard's value is reached only through the guards below: shared
// (`&T`, from several threads at once) under a read lock, exclusive under
// the write lock, which excludes every reader and every other writer. That
// is `RwLock`'s contract, and the bounds are `RwLock`'s: `T: Send` to be
// written from any thread, `T: Sync` to be read from several at once.
unsafe impl<T: Send + Sync, const N: usize> Sync for ShardLocks<T, N> {}

impl<T, const N: usize> ShardLocks<T, N> {
    pub fn new(mut make: impl FnMut() -> T) -> ShardLocks<T, N> {
        ShardLocks {
            shards: (0..N).map(|_| Shard::new(make())).collect(),
            rows: Box::new(std::array::from_fn(|_| ReaderRow {
                readers: std::array::from_fn(|_| AtomicU32::new(0)),
            })),
        }
    }

    /// Shared access to shard `index` (panics if `index >= N`).
    #[inline]
    pub fn read(&self, index: usize) -> ReadGuard<'_, T> {
        self.read_in_row(index, this_threads_row())
    }

    /// [`ShardLocks::read`], counting in reader row `row` (panics if
    /// `row >= READER_ROWS`): any row is correct, the thread's own is fast.
    #[inline]
    pub fn read_in_row(&self, index: usize, row: usize) -> ReadGuard<'_, T> {
        let shard = &self.shards[index];
        let count = &self.rows[row].readers[index];
        // Count first, then look for a writer; the writer raises its flag
        // first, then looks at the counts. Both in one total order (SeqCst),
        // so at least one of the two sees the other.
        count.fetch_add(1, Ordering::SeqCst);
        seq_cst_point();
        if shard.writer.load(Ordering::SeqCst) {
            Self::wait_for_writer(shard, count);
        }
        ReadGuard {
            #[cfg(not(all(test, loom)))]
            value: &shard.value,
            #[cfg(all(test, loom))]
            value: Some(shard.value.get()),
            count,
        }
    }

    /// A reader that found a writer: steps back until the writer is gone,
    /// then counts itself again.
    #[cold]
    fn wait_for_writer(shard: &Shard<T>, count: &AtomicU32) {
        let mut wait = Backoff::default();
        loop {
            count.fetch_sub(1, Ordering::Release);
            while shard.writer.load(Ordering::Relaxed) {
                wait.pause();
            }
            count.fetch_add(1, Ordering::SeqCst);
            seq_cst_point();
            if !shard.writer.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Exclusive access to shard `index` (panics if `index >= N`).
    #[inline]
    pub fn write(&self, index: usize) -> WriteGuard<'_, T> {
        let shard = &self.shards[index];
        shard.take_writer_flag();
        seq_cst_point();
        // New readers now step back; wait for those already in. Seeing a
        // count of zero acquires every earlier reader's release, so their
        // reads happen before our writes.
        let readers = |row: &ReaderRow<N>| row.readers[index].load(Ordering::SeqCst);
        if self.rows.iter().fold(0, |any, row| any | readers(row)) != 0 {
            self.wait_for_readers(index);
        }
        WriteGuard::new(shard)
    }

    #[cold]
    fn wait_for_readers(&self, index: usize) {
        for row in self.rows.iter() {
            let mut wait = Backoff::default();
            while row.readers[index].load(Ordering::SeqCst) != 0 {
                wait.pause();
            }
        }
    }
}

/// The row a thread counts itself in: a hash of the 128 KiB region its
/// stack pointer is in. Threads have separate stacks, so two threads
/// running at once almost always differ (two stacks next to each other,
/// as pthread places them, always do); if they do not, they share a row
/// and only lose speed. Cheaper than thread-local storage in a shared
/// library (`__tls_get_addr`) or `sched_getcpu`, both a visible part of a
/// lookup. A thread whose stack crosses a region boundary uses two
/// rows; each guard remembers its own.
pub fn this_threads_row() -> usize {
    let marker = 0u8;
    row_of_stack_address(std::ptr::addr_of!(marker) as u64)
}

fn row_of_stack_address(address: u64) -> usize {
    let hash = (address >> 17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (hash >> (64 - READER_ROWS.trailing_zeros())) as usize
}

pub struct ReadGuard<'a, T> {
    #[cfg(not(all(test, loom)))]
    value: &'a UnsafeCell<T>,
    /// loom's record of this read access: it ends (in `drop`) before the
    /// count drops.
    #[cfg(all(test, loom))]
    value: Option<ConstPtr<T>>,
    count: &'a AtomicU32,
}

#[cfg(not(all(test, loom)))]
impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard's count is non-zero and was raised before the
        // writer flag was seen clear, so no writer holds the shard or takes
        // it until the count drops (in `drop`).
        unsafe { &*self.value.get() }
    }
}

#[cfg(all(test, loom))]
impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        let value = self.value.as_ref().expect("live until drop");
        // SAFETY: as in the real build; here loom checks it.
        unsafe { ConstPtr::deref(value) }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(all(test, loom))]
        drop(self.value.take());
        self.count.fetch_sub(1, Ordering::Release);
    }
}

pub struct WriteGuard<'a, T> {
    shard: &'a Shard<T>,
    /// loom's record of this write access, ended before the unlock.
    #[cfg(all(test, loom))]
    value: Option<MutPtr<T>>,
}

impl<'a, T> WriteGuard<'a, T> {
    /// For a shard whose writer flag the caller raised, with no reader in.
    fn new(shard: &'a Shard<T>) -> WriteGuard<'a, T> {
        WriteGuard {
            shard,
            #[cfg(all(test, loom))]
            value: Some(shard.value.get_mut()),
        }
    }
}

#[cfg(not(all(test, loom)))]
impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard raised the writer flag and saw every reader
        // count at zero; nobody else reaches the value until `drop`.
        unsafe { &*self.shard.value.get() }
    }
}

#[cfg(not(all(test, loom)))]
impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // made through the guard.
        unsafe { &mut *self.shard.value.get() }
    }
}

#[cfg(all(test, loom))]
impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        let value = self.value.as_ref().expect("live until drop");
        // SAFETY: as in the real build; here loom checks it.
        unsafe { MutPtr::deref(value) }
    }
}

#[cfg(all(test, loom))]
impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        let value = self.value.as_ref().expect("live until drop");
        // SAFETY: as in the real build; here loom checks it.
        unsafe { MutPtr::deref(value) }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(all(test, loom))]
        drop(self.value.take());
        self.shard.writer.store(false, Ordering::Release);
    }
}

/// One value behind a lock with no readers: the cache's expiry order,
/// which every insert and removal changes. A shard that is only ever
/// written: the writer flag is the lock, the guard is [`WriteGuard`], and
/// no reader counts are read. `std::sync::Mutex` unlocks with a locked
/// exchange (it must learn whether to wake a sleeper) and checks for
/// poisoning twice; this lock unlocks with a plain store, and a waiter
/// spins, yields and sleeps ([`Backoff`]), which makes inserts and
/// removals measurably cheaper than with the `Mutex` (BENCHMARKS.md).
///
/// A panic while the lock is held releases it (the guard's `drop` runs on
/// unwinding): the order is used as it was left, as the cache did with the
/// poisoned `Mutex`.
pub struct ExclusiveLock<T> {
    shard: Shard<T>,
}

// SAFETY: the value is reached only through a `WriteGuard`, which exists
// only while the writer flag is raised by the `lock` that made it (one
// guard at a time, each taking the flag after the previous guard's Release
// store): `Mutex`'s contract, and `Mutex`'s bound (`T: Send`: the value is
// used from whichever thread holds the lock, never from two at once). The
// guard itself is neither `Send` nor `Sync` (it holds `&Shard<T>`).
unsafe impl<T: Send> Sync for ExclusiveLock<T> {}

impl<T> ExclusiveLock<T> {
    pub fn new(value: T) -> ExclusiveLock<T> {
        ExclusiveLock {
            shard: Shard::new(value),
        }
    }

    #[inline]
    pub fn lock(&self) -> WriteGuard<'_, T> {
        self.shard.take_writer_flag();
        WriteGuard::new(&self.shard)
    }
}

/// Spin briefly, then give the core away, then sleep: a lock holder that
/// was preempted needs the core back.
#[derive(Default)]
struct Backoff {
    rounds: u32,
}

impl Backoff {
    /// loom runs one thread at a time: a waiter must let the others run.
    #[cfg(all(test, loom))]
    fn pause(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        loom::thread::yield_now();
    }

    #[cfg(not(all(test, loom)))]
    fn pause(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds <= 64 {
            std::hint::spin_loop();
        } else if self.rounds <= 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn rows_are_in_range_and_adjacent_stacks_differ() {
        assert!(this_threads_row() < READER_ROWS);
        // pthread's default stacks: 8 MiB plus a guard page apart.
        for base in (0x7f00_0000_0000u64..0x7f00_4000_0000).step_by(0x1_1000) {
            let next = base - (8 << 20) - 4096;
            assert_ne!(
                row_of_stack_address(base),
                row_of_stack_address(next),
                "{base:#x}"
            );
        }
    }

    #[test]
    fn readers_share_and_writers_exclude() {
        // Each writer makes both halves of a pair equal again before it
        // unlocks; a reader that ever sees them differ saw a write in
        // progress. Readers and writers run at once on every shard.
        const SHARDS: usize = 4;
        let locks: Arc<ShardLocks<(u64, u64), SHARDS>> = Arc::new(ShardLocks::new(|| (0, 0)));
        let torn = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for t in 0..4 {
            let locks = Arc::clone(&locks);
            threads.push(std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let mut g = locks.write((i as usize + t) % SHARDS);
                    g.0 += 1;
                    std::hint::black_box(&mut *g);
                    g.1 += 1;
                }
            }));
        }
        for t in 0..4 {
            let locks = Arc::clone(&locks);
            let torn = Arc::clone(&torn);
            threads.push(std::thread::spawn(move || {
                for i in 0..200_000usize {
                    let g = locks.read((i + t) % SHARDS);
                    if g.0 != g.1 {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(torn.load(Ordering::Relaxed), 0);
        let total: u64 = (0..SHARDS).map(|s| locks.read(s).0).sum();
        assert_eq!(total, 4 * 20_000, "a write was lost");
        for s in 0..SHARDS {
            let g = locks.read(s);
            assert_eq!(g.0, g.1);
        }
    }

    #[test]
    fn a_reader_waits_for_the_writer_and_sees_its_write() {
        let locks: Arc<ShardLocks<u64, 2>> = Arc::new(ShardLocks::new(|| 0));
        let mut w = locks.write(1);
        let reader = {
            let locks = Arc::clone(&locks);
            std::thread::spawn(move || *locks.read(1))
        };
        // The other shard is not held.
        assert_eq!(*locks.read(0), 0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !reader.is_finished(),
            "read while the writer held the shard"
        );
        *w = 7;
        drop(w);
        assert_eq!(reader.join().unwrap(), 7);
    }

    #[test]
    fn a_writer_waits_for_readers() {
        let locks: Arc<ShardLocks<u64, 1>> = Arc::new(ShardLocks::new(|| 0));
        let r = locks.read(0);
        let writer = {
            let locks = Arc::clone(&locks);
            std::thread::spawn(move || *locks.write(0) = 1)
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!writer.is_finished(), "wrote while a reader held the shard");
        assert_eq!(*r, 0);
        drop(r);
        writer.join().unwrap();
        assert_eq!(*locks.read(0), 1);
    }

    #[test]
    fn an_exclusive_lock_excludes() {
        // Each holder makes both halves equal again before it unlocks; a
        // holder that sees them differ overlapped another.
        let lock = Arc::new(ExclusiveLock::new((0u64, 0u64)));
        let torn = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = Arc::clone(&lock);
                let torn = Arc::clone(&torn);
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        let mut g = lock.lock();
                        if g.0 != g.1 {
                            torn.fetch_add(1, Ordering::Relaxed);
                        }
                        g.0 += 1;
                        std::hint::black_box(&mut *g);
                        g.1 += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(torn.load(Ordering::Relaxed), 0);
        assert_eq!(*lock.lock(), (200_000, 200_000), "a change was lost");
    }

    #[test]
    fn an_exclusive_lock_waits_for_its_holder_and_a_panic_releases_it() {
        let lock = Arc::new(ExclusiveLock::new(0u64));
        let mut g = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || *lock.lock())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "locked while another held it");
        *g = 7;
        drop(g);
        assert_eq!(waiter.join().unwrap(), 7);
        let panicked = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let _g = lock.lock();
                panic!("while holding the lock");
            })
        };
        assert!(panicked.join().is_err());
        assert_eq!(*lock.lock(), 7, "the lock stayed held after a panic");
    }
}

/// Model checks of the lock: loom runs each test under every interleaving
/// of its threads (up to a bound on preemptions) and every outcome the
/// memory model allows for the atomics, and fails on any access to a
/// shard's value that the lock did not order after the conflicting one.
/// `make test-loom` runs them (`RUSTFLAGS="--cfg loom"`, its own target
/// directory).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Every interleaving of two threads; `LOOM_MAX_PREEMPTIONS` bounds
    /// them if set.
    fn model(test: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.max_branches = 100_000;
        builder.check(test);
    }

    /// Three threads: every interleaving with at most one preemption (a
    /// thread stopped where it could have gone on; switching at a wait is
    /// free). A bound of two did not finish in five minutes here: every
    /// wait is a loop that loom unrolls.
    fn model_three_threads(test: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.max_branches = 100_000;
        builder.preemption_bound = builder.preemption_bound.or(Some(1));
        builder.check(test);
    }

    #[test]
    fn a_writer_excludes_a_reader() {
        model(|| {
            let locks: Arc<ShardLocks<u64, 1>> = Arc::new(ShardLocks::new(|| 0));
            let writer = {
                let locks = Arc::clone(&locks);
                thread::spawn(move || *locks.write(0) += 1)
            };
            let seen = *locks.read_in_row(0, 0);
            writer.join().unwrap();
            assert!(seen == 0 || seen == 1);
            assert_eq!(*locks.read_in_row(0, 1), 1);
        });
    }

    #[test]
    fn writers_exclude_each_other() {
        model(|| {
            let locks: Arc<ShardLocks<u64, 1>> = Arc::new(ShardLocks::new(|| 0));
            let other = {
                let locks = Arc::clone(&locks);
                thread::spawn(move || *locks.write(0) += 1)
            };
            *locks.write(0) += 1;
            other.join().unwrap();
            assert_eq!(*locks.read_in_row(0, 0), 2, "a write was lost");
        });
    }

    /// Two readers in different rows, or in the same row, and a writer.
    fn readers_and_a_writer(second_readers_row: usize) {
        model_three_threads(move || {
            let locks: Arc<ShardLocks<(u64, u64), 1>> = Arc::new(ShardLocks::new(|| (0, 0)));
            let reader = {
                let locks = Arc::clone(&locks);
                thread::spawn(move || {
                    let g = locks.read_in_row(0, second_readers_row);
                    assert_eq!(g.0, g.1, "saw a write in progress");
                })
            };
            let writer = {
                let locks = Arc::clone(&locks);
                thread::spawn(move || {
                    let mut g = locks.write(0);
                    g.0 += 1;
                    g.1 += 1;
                })
            };
            {
                let g = locks.read_in_row(0, 0);
                assert_eq!(g.0, g.1, "saw a write in progress");
            }
            reader.join().unwrap();
            writer.join().unwrap();
        });
    }

    #[test]
    fn readers_in_two_rows_and_a_writer() {
        readers_and_a_writer(1);
    }

    #[test]
    fn readers_in_one_row_and_a_writer() {
        readers_and_a_writer(0);
    }

    /// Two writers and a reader: the reader sees no write half done, and
    /// no write is lost.
    #[test]
    fn two_writers_and_a_reader() {
        model_three_threads(|| {
            let locks: Arc<ShardLocks<(u64, u64), 1>> = Arc::new(ShardLocks::new(|| (0, 0)));
            let writers: Vec<_> = (0..2)
                .map(|_| {
                    let locks = Arc::clone(&locks);
                    thread::spawn(move || {
                        let mut g = locks.write(0);
                        g.0 += 1;
                        g.1 += 1;
                    })
                })
                .collect();
            {
                let g = locks.read_in_row(0, 0);
                assert_eq!(g.0, g.1, "saw a write in progress");
            }
            for w in writers {
                w.join().unwrap();
            }
            assert_eq!(*locks.read_in_row(0, 1), (2, 2), "a write was lost");
        });
    }

    /// Shards are independent: a writer of one does not hold readers of
    /// the other, and neither access conflicts.
    #[test]
    fn shards_are_independent() {
        model(|| {
            let locks: Arc<ShardLocks<u64, 2>> = Arc::new(ShardLocks::new(|| 0));
            let writer = {
                let locks = Arc::clone(&locks);
                thread::spawn(move || *locks.write(1) = 5)
            };
            assert_eq!(*locks.read_in_row(0, 0), 0);
            writer.join().unwrap();
            assert_eq!(*locks.read_in_row(1, 0), 5);
        });
    }

    #[test]
    fn exclusive_lockers_exclude_each_other() {
        model(|| {
            let lock = Arc::new(ExclusiveLock::new((0u64, 0u64)));
            let other = {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    let mut g = lock.lock();
                    assert_eq!(g.0, g.1, "saw a change in progress");
                    g.0 += 1;
                    g.1 += 1;
                })
            };
            {
                let mut g = lock.lock();
                assert_eq!(g.0, g.1, "saw a change in progress");
                g.0 += 1;
                g.1 += 1;
            }
            other.join().unwrap();
            assert_eq!(*lock.lock(), (2, 2), "a change was lost");
        });
    }
}
