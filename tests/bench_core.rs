//! `cargo bench --bench bench_core`: the cache core alone (no libssl, no
//! FFI), with a trivial session type. Run by `make bench` after the C
//! A/B benchmarks; see BENCHMARKS.md. Nothing here is a timed assertion.
//!
//! This file is a `[[bench]]` target with `harness = false` (Cargo.toml);
//! it only lives under tests/ because the top-level layout is fixed
//! (`autotests = false` keeps `cargo test` from building it as a test).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use sesscache::cache::{CachedSession, Expiry, SessionCache, SessionKey};

/// A session as cheap as possible: identity is the allocation.
#[derive(Clone)]
struct Sess(Arc<u32>);

impl CachedSession for Sess {
    fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    // The session's number is the index its key is made from.
    fn key(&self) -> Option<SessionKey> {
        Some(key(*self.0 as usize))
    }
}

const TLS1_2: i32 = 0x0303;
const SIZES: [usize; 2] = [1_000, 100_000];
/// Operations timed per sample: small against the cache size, so the size
/// stays (almost) what it says.
const OPS: usize = 256;

/// Distinct 32-byte IDs (a counter spread over the bytes, like a random ID).
fn key(i: usize) -> SessionKey {
    let mut id = [0u8; 32];
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (n, chunk) in id.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&x.rotate_left(n as u32 * 16).to_le_bytes());
    }
    id[31] = i as u8;
    id[30] = (i >> 8) as u8;
    id[29] = (i >> 16) as u8;
    SessionKey::new(TLS1_2, &id).expect("32 bytes")
}

fn at(t: i64) -> Expiry {
    Expiry::from_time_and_timeout(t, 300)
}

/// A cache of `n` sessions with expiries 1_000_000 .. 1_000_000 + n.
fn filled(n: usize) -> SessionCache<Sess> {
    let cache = SessionCache::new(0);
    for i in 0..n {
        cache.insert(key(i), Sess(Arc::new(i as u32)), at(1_000_000 + i as i64));
    }
    cache
}

fn new_sessions(from: usize) -> Vec<(SessionKey, Sess)> {
    (from..from + OPS)
        .map(|i| (key(i), Sess(Arc::new(i as u32))))
        .collect()
}

fn bench_core(c: &mut Criterion) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("core_{n}"));
        g.throughput(criterion::Throughput::Elements(OPS as u64));

        // Every sample works on the keys n .. n + OPS: the untimed setup
        // puts the cache back to its n sessions (or n + OPS for remove).
        let base = filled(n);
        let clear = |cache: &SessionCache<Sess>| {
            for j in n..n + OPS {
                drop(cache.remove(&key(j)));
            }
        };

        // 1. insert, time order: each new session expires after all others.
        g.bench_function(BenchmarkId::new("insert_ordered", n), |b| {
            b.iter_batched(
                || {
                    clear(&base);
                    new_sessions(n)
                },
                |batch| {
                    for (j, (k, s)) in batch.into_iter().enumerate() {
                        black_box(base.insert(k, s, at(2_000_000 + j as i64)));
                    }
                },
                BatchSize::PerIteration,
            )
        });

        // 2. insert out of order: each new session expires before all others
        //    (a hit from an external cache, a restore at start-up).
        g.bench_function(BenchmarkId::new("insert_out_of_order", n), |b| {
            b.iter_batched(
                || {
                    clear(&base);
                    new_sessions(n)
                },
                |batch| {
                    for (j, (k, s)) in batch.into_iter().enumerate() {
                        black_box(base.insert(k, s, at(-(j as i64))));
                    }
                },
                BatchSize::PerIteration,
            )
        });
        clear(&base);

        // 3. lookup hits (the clone is what the FFI layer hands to libssl).
        let mut next = 0usize;
        g.bench_function(BenchmarkId::new("get_hit", n), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    next = (next + 7919) % n;
                    black_box(base.get(&key(next)));
                }
            })
        });

        // 4. remove: the removed sessions are dropped outside the timing.
        g.bench_function(BenchmarkId::new("remove", n), |b| {
            b.iter_batched(
                || {
                    clear(&base);
                    for (j, (k, s)) in new_sessions(n).into_iter().enumerate() {
                        base.insert(k, s, at(2_000_000 + j as i64));
                    }
                },
                |()| {
                    (n..n + OPS)
                        .map(|j| base.remove(&key(j)))
                        .collect::<Vec<_>>()
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench_core);
criterion_main!(benches);
