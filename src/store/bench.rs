//! Latency of the store's own operations, for `make bench`
//! (`examples/store_bench.rs`): a lookup (`StoreConnection::get` of a
//! stored key) and a publish (`StoreWriter::send` of what a new session
//! sends: the sealed blob, and for Redis its announcement), timed one by
//! one on THREADS threads, each with its own connections and keys. For the
//! shm store also how long each operation holds its shard's lock (the
//! shard operation itself, timed inside the lock). Sealing is not included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Backend, WriteOp, redis, shm};

/// What one thread measured, in ns per operation.
#[derive(Default)]
struct Samples {
    lookup: Vec<u64>,
    publish: Vec<u64>,
    hold: Vec<u64>,
    hits: usize,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn percentile(v: &mut [u64], p: usize) -> u64 {
    v.sort_unstable();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// A store key as the library makes them (prefix, version, a random-looking
/// 32-byte ID, as libssl's are).
fn key(thread: usize, i: usize) -> String {
    let mut x = ((thread as u64) << 40) ^ (i as u64) ^ 0x9e37_79b9_7f4a_7c15;
    let mut id = String::with_capacity(64);
    for _ in 0..4 {
        // splitmix64: distinct inputs, well-spread outputs.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        id.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    format!("sesscache:0304:{id}")
}

fn one_thread(
    backend: &dyn Backend,
    shm: Option<&shm::ShmBackend>,
    thread: usize,
    ops: usize,
    value: &[u8],
) -> Result<Samples, String> {
    let fail = |e: super::StoreError| e.0;
    let mut reader = backend.connect().map_err(fail)?;
    let mut writer = backend.connect_writer().map_err(fail)?;
    let announce = shm.is_none();
    let mut s = Samples::default();
    for i in 0..ops {
        let k = key(thread, i);
        let mut batch = vec![WriteOp::Put {
            key: k.clone(),
            value: value.to_vec(),
            ttl_secs: 3600,
        }];
        if announce {
            let mut message = Vec::with_capacity(11 + k.len() + value.len());
            message.extend_from_slice(&[1; 11]);
            message.extend_from_slice(k.as_bytes());
            message.extend_from_slice(value);
            batch.push(WriteOp::Publish {
                channel: "sesscache:events".into(),
                message,
            });
        }
        let t = Instant::now();
        writer.send(&batch).map_err(fail)?;
        s.publish.push(ns(t.elapsed()));
    }
    if announce {
        // Redis writes are not answered: let the last ones land first.
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in 0..ops {
        let k = key(thread, i);
        let t = Instant::now();
        let got = reader.get(&k).map_err(fail)?;
        s.lookup.push(ns(t.elapsed()));
        s.hits += usize::from(got.is_some_and(|v| v == value));
    }
    if let Some(shm) = shm {
        for i in 0..ops {
            let (get, put) = shm.hold_ns(&key(thread, i), value);
            s.hold.push(get);
            s.hold.push(put);
        }
    }
    Ok(s)
}

/// Runs the measurement against `url` (`shm`, an anonymous mapping of
/// `size` bytes, or a `redis://` URL) and returns one line of
/// `name=value` fields.
pub fn run(
    url: &str,
    size: usize,
    threads: usize,
    ops: usize,
    value_len: usize,
) -> Result<String, String> {
    let threads = threads.clamp(1, 16);
    let ops = ops.clamp(1, 1_000_000);
    let value: Vec<u8> = (0..value_len.min(1 << 20))
        .map(|i| (i * 131 + 7) as u8)
        .collect();
    let (backend, shm): (Arc<dyn Backend>, Option<Arc<shm::ShmBackend>>) = if url == "shm" {
        let region: &'static shm::Region = Box::leak(Box::new(shm::Region::inherited(size)?));
        let b = Arc::new(shm::ShmBackend::new(region));
        (b.clone(), Some(b))
    } else {
        let b = Arc::new(redis::RedisBackend::new(url, Duration::from_secs(2), None)?);
        (b, None)
    };
    let results: Vec<Result<Samples, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (backend, shm, value) = (&backend, &shm, &value);
                scope.spawn(move || one_thread(backend.as_ref(), shm.as_deref(), t, ops, value))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let mut all = Samples::default();
    for r in results {
        let s = r?;
        all.lookup.extend(s.lookup);
        all.publish.extend(s.publish);
        all.hold.extend(s.hold);
        all.hits += s.hits;
    }
    let store = if url == "shm" { "shm" } else { "redis" };
    let hold = if all.hold.is_empty() {
        "lock_hold_p50_ns=- lock_hold_p99_ns=-".to_string()
    } else {
        format!(
            "lock_hold_p50_ns={} lock_hold_p99_ns={}",
            percentile(&mut all.hold, 50),
            percentile(&mut all.hold, 99)
        )
    };
    Ok(format!(
        "store={store} threads={threads} ops={} value_bytes={} hits={} lookup_p50_ns={} lookup_p99_ns={} publish_p50_ns={} publish_p99_ns={} {hold}",
        all.lookup.len(),
        value.len(),
        all.hits,
        percentile(&mut all.lookup, 50),
        percentile(&mut all.lookup, 99),
        percentile(&mut all.publish, 50),
        percentile(&mut all.publish, 99),
    ))
}
