//! Model-based test of the cache core.
//!
//! `ListModel` is a deliberately literal re-statement of libssl 3.0's
//! internal cache (`ssl/ssl_sess.c`: `SSL_CTX_add_session`,
//! `remove_session_lock`, `SSL_CTX_flush_sessions`, `SSL_SESSION_list_add`):
//! a hash table plus a list kept sorted by a head-first walk. Random
//! operations are applied to it and to `SessionCache`; every observable
//! result — return values, which sessions are released, evicted or flushed
//! and in which order, the count — must agree.

use std::collections::HashMap;
use std::sync::Arc;

use sesscache::cache::{CachedSession, Expiry, SessionCache, SessionKey};

/// A session: identity is the allocation; it carries its key.
#[derive(Clone, Debug)]
struct Sess(Arc<(u32, SessionKey)>);

impl CachedSession for Sess {
    fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    fn key(&self) -> Option<SessionKey> {
        Some(self.0.1)
    }
}

#[derive(Clone)]
struct ModelSession {
    name: u32,
    key: SessionKey,
    expiry: Expiry,
}

#[derive(Default)]
struct ListModel {
    table: HashMap<SessionKey, u32>,
    /// From head (latest expiry) to tail (earliest).
    list: Vec<ModelSession>,
    capacity: usize,
    cache_full: u64,
}

impl ListModel {
    fn list_remove(&mut self, name: u32) {
        self.list.retain(|s| s.name != name);
    }

    fn list_add(&mut self, s: ModelSession) {
        self.list_remove(s.name);
        if self.list.is_empty() {
            self.list.push(s);
        } else if s.expiry >= self.list[0].expiry {
            self.list.insert(0, s);
        } else if s.expiry < self.list[self.list.len() - 1].expiry {
            self.list.push(s);
        } else {
            let pos = (1..self.list.len())
                .find(|&i| s.expiry >= self.list[i].expiry)
                .expect("caught by the two cases above");
            self.list.insert(pos, s);
        }
    }

    /// Returns (added, released names, evicted names).
    fn add(&mut self, s: ModelSession) -> (bool, Vec<u32>, Vec<u32>) {
        let mut released = Vec::new();
        let mut evicted = Vec::new();
        let previous = self.table.insert(s.key, s.name);
        let is_new = match previous {
            Some(p) if p != s.name => {
                self.list_remove(p);
                released.push(p);
                true
            }
            Some(_) => false,
            None => true,
        };
        if is_new && self.capacity > 0 {
            while self.table.len() >= self.capacity {
                let Some(tail) = self.list.last().cloned() else {
                    break;
                };
                if tail.key.id().is_empty() {
                    break; // remove_session_lock refuses an empty ID
                }
                self.table.remove(&tail.key);
                self.list_remove(tail.name);
                evicted.push(tail.name);
                self.cache_full += 1;
            }
        }
        self.list_add(s.clone());
        if !is_new {
            released.push(s.name); // the extra reference taken at the start
        }
        (is_new, released, evicted)
    }

    fn remove(&mut self, key: &SessionKey) -> Option<u32> {
        let name = self.table.remove(key)?;
        self.list_remove(name);
        Some(name)
    }

    fn flush(&mut self, t: Option<i64>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(tail) = self.list.last().cloned() {
            if t.is_none_or(|t| tail.expiry.has_passed(t)) {
                self.table.remove(&tail.key);
                self.list.pop();
                out.push(tail.name);
            } else {
                break;
            }
        }
        out
    }

    fn set_expiry(&mut self, name: u32, expiry: Expiry) -> bool {
        let Some(mut s) = self.list.iter().find(|s| s.name == name).cloned() else {
            return false;
        };
        s.expiry = expiry;
        self.list_add(s);
        true
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn names(v: &[Sess]) -> Vec<u32> {
    v.iter().map(|s| s.0.0).collect()
}

fn run_against_model(seed: u64, capacity: usize, ops: usize) {
    let mut rng = Rng(seed);
    let mut model = ListModel {
        capacity,
        ..ListModel::default()
    };
    let cache: SessionCache<Sess> = SessionCache::new(capacity);
    // Sessions the test holds (and may add again or re-time).
    let mut known: Vec<(Sess, ModelSession)> = Vec::new();
    let mut next_name = 0u32;

    for step in 0..ops {
        let ctx = format!("seed {seed} capacity {capacity} step {step}");
        match rng.below(10) {
            // A new session; small key and expiry ranges force replacements
            // and ties. One key in 16 has an empty ID.
            0..=4 => {
                let k = rng.below(16) as u8;
                let id: Vec<u8> = if k == 0 { Vec::new() } else { vec![k; 32] };
                let version = if rng.below(4) == 0 { 0x0304 } else { 0x0303 };
                let key = SessionKey::new(version, &id).unwrap();
                let expiry = Expiry::from_time_and_timeout(rng.below(20) as i64, 0);
                next_name += 1;
                let sess = Sess(Arc::new((next_name, key)));
                let ms = ModelSession {
                    name: next_name,
                    key,
                    expiry,
                };
                let (m_added, m_released, m_evicted) = model.add(ms.clone());
                let out = cache.insert(key, sess.clone(), expiry);
                assert_eq!(out.added, m_added, "{ctx}: add return");
                assert_eq!(
                    names(out.released.as_slice()),
                    m_released,
                    "{ctx}: released"
                );
                assert_eq!(names(&out.evicted), m_evicted, "{ctx}: evicted");
                known.push((sess, ms));
            }
            // The same session added again, maybe with a new expiry.
            5 if !known.is_empty() => {
                let i = rng.below(known.len() as u64) as usize;
                let (sess, mut ms) = known[i].clone();
                if rng.below(2) == 0 {
                    ms.expiry = Expiry::from_time_and_timeout(rng.below(20) as i64, 0);
                    known[i].1 = ms.clone();
                }
                let (m_added, m_released, m_evicted) = model.add(ms.clone());
                let out = cache.insert(ms.key, sess, ms.expiry);
                assert_eq!(out.added, m_added, "{ctx}: re-add return");
                assert_eq!(
                    names(out.released.as_slice()),
                    m_released,
                    "{ctx}: re-add released"
                );
                assert_eq!(names(&out.evicted), m_evicted, "{ctx}: re-add evicted");
            }
            6 if !known.is_empty() => {
                let i = rng.below(known.len() as u64) as usize;
                let key = known[i].1.key;
                let m = model.remove(&key);
                assert_eq!(cache.remove(&key).map(|s| s.0.0), m, "{ctx}: remove");
            }
            7 => {
                let t = rng.below(22) as i64;
                assert_eq!(
                    names(&cache.take_expired(t)),
                    model.flush(Some(t)),
                    "{ctx}: flush({t})"
                );
            }
            8 if !known.is_empty() => {
                // SSL_SESSION_set_time on a session that may or may not be cached.
                let i = rng.below(known.len() as u64) as usize;
                let (sess, ms) = known[i].clone();
                let expiry = Expiry::from_time_and_timeout(rng.below(20) as i64, 0);
                known[i].1.expiry = expiry;
                let m = model.set_expiry(ms.name, expiry);
                let c = cache.reposition_where(&ms.key, expiry, |s| s.is_same(&sess));
                assert_eq!(c, m, "{ctx}: re-time");
            }
            _ => {
                let k = SessionKey::new(0x0303, &[rng.below(16) as u8; 32]).unwrap();
                assert_eq!(
                    cache.contains(&k),
                    model.table.contains_key(&k),
                    "{ctx}: contains"
                );
            }
        }
        assert_eq!(cache.len(), model.table.len(), "{ctx}: count");
        assert_eq!(
            cache.stats().evictions,
            model.cache_full,
            "{ctx}: cache_full"
        );
    }
    assert_eq!(
        names(&cache.take_all()),
        model.flush(None),
        "seed {seed}: final flush order"
    );
}

#[test]
fn core_matches_libssl_list_model() {
    for capacity in [0usize, 1, 2, 3, 5, 8, 64] {
        for seed in 1..=40u64 {
            run_against_model(seed * 7919 + capacity as u64, capacity, 400);
        }
    }
}

#[test]
fn no_reference_is_leaked_or_lost() {
    let cache: SessionCache<Sess> = SessionCache::new(4);
    let key_of = |i: usize| SessionKey::new(0x0303, &[(i % 6) as u8 + 1; 8]).unwrap();
    let held: Vec<Sess> = (0..32)
        .map(|i| Sess(Arc::new((i as u32, key_of(i)))))
        .collect();
    for (i, s) in held.iter().enumerate() {
        let key = key_of(i);
        let expiry = Expiry::from_time_and_timeout((i % 5) as i64, 0);
        drop(cache.insert(key, s.clone(), expiry));
        drop(cache.insert(key, s.clone(), expiry));
    }
    let cached = cache.len();
    let extra: usize = held.iter().map(|s| Arc::strong_count(&s.0) - 1).sum();
    assert_eq!(extra, cached, "exactly one reference per cached session");
    drop(cache.take_all());
    assert!(held.iter().all(|s| Arc::strong_count(&s.0) == 1));
}
