//! The session cache core: pure Rust, no C, no libssl.
//!
//! One [`SessionCache`] per `SSL_CTX`. It reproduces the observable
//! behaviour of libssl 3.0's internal cache (`ssl/ssl_sess.c`) — what is
//! evicted, in which order, what a flush removes, what counts as "cache
//! full" — without its costs: lookups are a hash probe, inserts and removals
//! are `O(log n)` in an expiry-ordered tree instead of libssl's list walk.
//!
//! The cache never runs foreign code while its lock is held: values that
//! leave the cache (replaced, evicted, flushed) are handed back to the
//! caller, who drops them (and calls application callbacks) afterwards.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Longest session ID libssl accepts (`SSL_MAX_SSL_SESSION_ID_LENGTH`).
pub const MAX_SESSION_ID_LEN: usize = 32;

/// libssl's default `SSL_CTX_sess_get_cache_size` (`SSL_SESSION_CACHE_MAX_SIZE_DEFAULT`).
pub const DEFAULT_CAPACITY: usize = 1024 * 20;

/// What libssl compares to find a session: protocol version plus session ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionKey {
    version: i32,
    id_len: u8,
    id: [u8; MAX_SESSION_ID_LEN],
}

impl SessionKey {
    /// `None` when the ID is longer than libssl allows.
    pub fn new(version: i32, id: &[u8]) -> Option<SessionKey> {
        if id.len() > MAX_SESSION_ID_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_SESSION_ID_LEN];
        buf[..id.len()].copy_from_slice(id);
        Some(SessionKey {
            version,
            id_len: id.len() as u8,
            id: buf,
        })
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    pub fn id(&self) -> &[u8] {
        &self.id[..usize::from(self.id_len)]
    }
}

/// When a session stops being resumable, ordered exactly as libssl's
/// `timeoutcmp`: a session whose `time + timeout` overflowed `time_t` sorts
/// after every other and never expires.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Expiry {
    overflowed: bool,
    at: i64,
}

impl Expiry {
    /// libssl's `ssl_session_calculate_timeout` for a 64-bit `time_t`,
    /// wrap-around arithmetic included, so that ordering matches even for
    /// odd values an application may set.
    pub fn from_time_and_timeout(time: i64, timeout: i64) -> Expiry {
        let headroom = (i64::MAX as u64).wrapping_sub(time as u64) as i64;
        if timeout > headroom {
            Expiry {
                overflowed: true,
                at: timeout.wrapping_sub(headroom),
            }
        } else {
            Expiry {
                overflowed: false,
                at: time.wrapping_add(timeout),
            }
        }
    }

    /// Whole seconds until the session expires (`None`: never).
    pub fn seconds_left(&self, now: i64) -> Option<u64> {
        if self.overflowed {
            return None;
        }
        Some(u64::try_from(self.at.saturating_sub(now)).unwrap_or(0))
    }

    /// libssl's `sess_timedout`: expired when `now` is strictly later.
    pub fn has_passed(&self, now: i64) -> bool {
        !self.overflowed && now > self.at
    }
}

/// A value the cache can hold. Identity (not equality of contents) decides
/// whether an insert is "the same session again" or a replacement.
pub trait CachedSession {
    fn is_same(&self, other: &Self) -> bool;
}

/// What [`SessionCache::insert`] did.
#[derive(Debug)]
pub struct InsertOutcome<S> {
    /// `true` for a new entry, `false` when that same session was cached
    /// already (libssl's `SSL_CTX_add_session` return value).
    pub added: bool,
    /// References the cache let go of without a removal: a different session
    /// that had the same key (libssl frees it silently), or the duplicate
    /// reference passed in when the session was cached already. In the order
    /// libssl releases them.
    pub released: Vec<S>,
    /// Sessions pushed out because the cache was full, earliest expiry first.
    /// Each one is a removal: the caller notifies the application.
    pub evicted: Vec<S>,
}

/// Counters kept by the core; the FFI layer maps them onto libssl's
/// `SSL_CTX_sess_*` statistics.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

struct Entry<S> {
    session: S,
    expiry: Expiry,
    seq: u64,
}

struct Inner<S> {
    entries: HashMap<SessionKey, Entry<S>>,
    /// Expiry order; `seq` breaks ties so that among equal expiries the one
    /// (re)positioned first goes first, as in libssl's list.
    order: BTreeMap<(Expiry, u64), SessionKey>,
    next_seq: u64,
}

impl<S> Inner<S> {
    fn unlink(&mut self, key: &SessionKey) -> Option<Entry<S>> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&(entry.expiry, entry.seq));
        Some(entry)
    }

    fn link(&mut self, key: SessionKey, session: S, expiry: Expiry) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert((expiry, seq), key);
        self.entries.insert(
            key,
            Entry {
                session,
                expiry,
                seq,
            },
        );
    }

    fn reposition(&mut self, key: &SessionKey, expiry: Expiry) {
        let seq = self.next_seq;
        if let Some(entry) = self.entries.get_mut(key) {
            self.next_seq += 1;
            self.order.remove(&(entry.expiry, entry.seq));
            entry.expiry = expiry;
            entry.seq = seq;
            self.order.insert((expiry, seq), *key);
        }
    }

    /// Removes the first entries in expiry order while `take` says so.
    fn take_from_front(&mut self, mut take: impl FnMut(&Expiry) -> bool) -> Vec<S> {
        let mut out = Vec::new();
        while let Some((&(expiry, seq), &key)) = self.order.first_key_value() {
            if !take(&expiry) {
                break;
            }
            self.order.remove(&(expiry, seq));
            if let Some(entry) = self.entries.remove(&key) {
                out.push(entry.session);
            }
        }
        out
    }
}

/// A thread-safe, size-bounded, expiry-ordered session cache.
pub struct SessionCache<S> {
    inner: RwLock<Inner<S>>,
    capacity: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl<S: CachedSession> SessionCache<S> {
    /// `capacity` 0 means unlimited, as in libssl.
    pub fn new(capacity: usize) -> SessionCache<S> {
        SessionCache {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                next_seq: 0,
            }),
            capacity: AtomicUsize::new(capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    // A panic elsewhere while the lock was held cannot leave the maps half
    // updated in a way that breaks memory safety, so a poisoned lock is used
    // as it is rather than turning every later call into a panic.
    fn read(&self) -> RwLockReadGuard<'_, Inner<S>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<S>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Returns the previous capacity. Shrinking evicts nothing by itself
    /// (libssl trims only when the next session is added).
    pub fn set_capacity(&self, capacity: usize) -> usize {
        self.capacity.swap(capacity, Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// libssl's `SSL_CTX_add_session`, minus the callbacks.
    ///
    /// The same session again: it is re-positioned at `expiry` (libssl
    /// always re-links it) and `session` comes back in `released`. A
    /// different session under the same key replaces the old one, which is
    /// released without counting as a removal. A new entry first evicts, in
    /// expiry order, while the number of entries *including the new one* is
    /// at least the capacity — so a capacity of `n > 1` holds `n - 1`
    /// sessions, exactly like libssl 3.0. Eviction stops at an entry with an
    /// empty session ID, which libssl's `remove_session_lock` refuses.
    pub fn insert(&self, key: SessionKey, session: S, expiry: Expiry) -> InsertOutcome<S> {
        let capacity = self.capacity();
        let mut inner = self.write();
        let mut released = Vec::new();

        let same_again = inner
            .entries
            .get(&key)
            .map(|entry| entry.session.is_same(&session));
        match same_again {
            Some(true) => {
                inner.reposition(&key, expiry);
                released.push(session);
                return InsertOutcome {
                    added: false,
                    released,
                    evicted: Vec::new(),
                };
            }
            Some(false) => {
                if let Some(old) = inner.unlink(&key) {
                    released.push(old.session);
                }
            }
            None => {}
        }

        let mut evicted = Vec::new();
        if capacity > 0 {
            let mut count = inner.entries.len() + 1;
            while count >= capacity {
                let front_key = match inner.order.first_key_value() {
                    Some((_, k)) => *k,
                    None => break,
                };
                if front_key.id().is_empty() {
                    break;
                }
                if let Some(entry) = inner.unlink(&front_key) {
                    evicted.push(entry.session);
                }
                count -= 1;
            }
        }
        self.evictions
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        inner.link(key, session, expiry);
        InsertOutcome {
            added: true,
            released,
            evicted,
        }
    }

    /// Looks a key up, counting a hit or a miss. The returned clone is the
    /// caller's own reference.
    pub fn get(&self, key: &SessionKey) -> Option<S>
    where
        S: Clone,
    {
        let found = self.read().entries.get(key).map(|e| e.session.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Whether a session is cached under `key` (no statistics).
    pub fn contains(&self, key: &SessionKey) -> bool {
        self.read().entries.contains_key(key)
    }

    /// Removes whatever session is cached under `key`.
    pub fn remove(&self, key: &SessionKey) -> Option<S> {
        self.write().unlink(key).map(|e| e.session)
    }

    /// Moves the session cached under `key` to a new place in expiry order
    /// if `is_it` recognises it as the session meant; returns whether it did.
    pub fn reposition_where(
        &self,
        key: &SessionKey,
        expiry: Expiry,
        is_it: impl FnOnce(&S) -> bool,
    ) -> bool {
        let mut inner = self.write();
        let cached = inner.entries.get(key).is_some_and(|e| is_it(&e.session));
        if cached {
            inner.reposition(key, expiry);
        }
        cached
    }

    /// Removes every session that has expired at `now`, earliest first.
    pub fn take_expired(&self, now: i64) -> Vec<S> {
        self.write()
            .take_from_front(|expiry| expiry.has_passed(now))
    }

    /// Removes every session, earliest expiry first.
    pub fn take_all(&self) -> Vec<S> {
        self.write().take_from_front(|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A test session: identity is the `Arc` allocation, so clones are "the
    /// same session" and `Arc::strong_count` shows leaked references.
    #[derive(Clone, Debug)]
    struct Sess(Arc<String>);

    impl CachedSession for Sess {
        fn is_same(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
    }

    fn sess(name: &str) -> Sess {
        Sess(Arc::new(name.to_string()))
    }

    fn key(id: u8) -> SessionKey {
        SessionKey::new(0x0303, &[id; 32]).unwrap()
    }

    fn at(t: i64) -> Expiry {
        Expiry::from_time_and_timeout(t, 0)
    }

    fn names(v: &[Sess]) -> Vec<&str> {
        v.iter().map(|s| s.0.as_str()).collect()
    }

    #[test]
    fn key_rejects_long_ids_and_compares_version() {
        assert!(SessionKey::new(0x0303, &[0; 33]).is_none());
        assert!(SessionKey::new(0x0303, &[]).is_some());
        let a = SessionKey::new(0x0303, &[1, 2]).unwrap();
        let b = SessionKey::new(0x0304, &[1, 2]).unwrap();
        let c = SessionKey::new(0x0303, &[1, 2, 0]).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c, "length is part of the key, not only the bytes");
        assert_eq!(a.id(), &[1, 2]);
    }

    #[test]
    fn expiry_matches_libssl_timeout_rules() {
        let e = Expiry::from_time_and_timeout(100, 300);
        assert!(!e.has_passed(400), "expired only when now > time + timeout");
        assert!(e.has_passed(401));
        let huge = Expiry::from_time_and_timeout(100, i64::MAX);
        assert!(
            !huge.has_passed(i64::MAX),
            "overflowed timeouts never expire"
        );
        assert!(huge > Expiry::from_time_and_timeout(i64::MAX - 1, 0));
    }

    #[test]
    fn insert_then_get_counts_hits_and_misses() {
        let cache = SessionCache::new(0);
        let a = sess("a");
        let out = cache.insert(key(1), a.clone(), at(10));
        assert!(out.added && out.released.is_empty() && out.evicted.is_empty());
        assert!(cache.get(&key(1)).unwrap().is_same(&a));
        assert!(cache.get(&key(2)).is_none());
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                evictions: 0
            }
        );
        assert!(cache.contains(&key(1)));
        assert_eq!(cache.stats().hits, 1, "contains does not count");
    }

    #[test]
    fn same_session_again_is_not_added_and_returns_the_extra_reference() {
        let cache = SessionCache::new(0);
        let a = sess("a");
        cache.insert(key(1), a.clone(), at(10));
        let out = cache.insert(key(1), a.clone(), at(10));
        assert!(!out.added);
        assert_eq!(names(&out.released), ["a"]);
        drop(out);
        assert_eq!(Arc::strong_count(&a.0), 2, "one for us, one for the cache");
    }

    #[test]
    fn different_session_same_key_replaces_silently() {
        let cache = SessionCache::new(0);
        cache.insert(key(1), sess("old"), at(10));
        let out = cache.insert(key(1), sess("new"), at(5));
        assert!(out.added);
        assert_eq!(names(&out.released), ["old"]);
        assert!(out.evicted.is_empty());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&key(1)).unwrap().0.as_str(), "new");
    }

    #[test]
    fn full_cache_evicts_earliest_expiry_with_libssl_off_by_one() {
        // libssl 3.0 evicts while (entries including the new one) >= size.
        let cache = SessionCache::new(3);
        cache.insert(key(1), sess("t30"), at(30));
        cache.insert(key(2), sess("t10"), at(10));
        let out = cache.insert(key(3), sess("t20"), at(20));
        assert_eq!(names(&out.evicted), ["t10"]);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().evictions, 1);

        let one = SessionCache::new(1);
        one.insert(key(1), sess("a"), at(1));
        assert_eq!(one.len(), 1, "size 1 keeps the one session");
        let out = one.insert(key(2), sess("b"), at(2));
        assert_eq!(names(&out.evicted), ["a"]);
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn unlimited_capacity_never_evicts() {
        let cache = SessionCache::new(0);
        for i in 0..100u8 {
            assert!(
                cache
                    .insert(key(i), sess("x"), at(i64::from(i)))
                    .evicted
                    .is_empty()
            );
        }
        assert_eq!(cache.len(), 100);
    }

    #[test]
    fn eviction_stops_at_an_empty_session_id() {
        let cache = SessionCache::new(2);
        let empty = SessionKey::new(0x0303, &[]).unwrap();
        cache.insert(empty, sess("empty"), at(1));
        let out = cache.insert(key(1), sess("a"), at(2));
        assert!(out.evicted.is_empty());
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().evictions, 0);
    }

    #[test]
    fn ties_in_expiry_go_out_in_insertion_order_and_readding_moves_to_back() {
        let cache = SessionCache::new(0);
        let a = sess("a");
        cache.insert(key(1), a.clone(), at(5));
        cache.insert(key(2), sess("b"), at(5));
        cache.insert(key(3), sess("c"), at(5));
        // Re-adding the same session re-links it behind its equals.
        cache.insert(key(1), a, at(5));
        assert_eq!(names(&cache.take_all()), ["b", "c", "a"]);
        assert!(cache.is_empty());
    }

    #[test]
    fn flush_takes_only_what_expired_in_order() {
        let cache = SessionCache::new(0);
        cache.insert(key(1), sess("t30"), at(30));
        cache.insert(key(2), sess("t10"), at(10));
        cache.insert(key(3), sess("t20"), at(20));
        assert!(
            cache.take_expired(10).is_empty(),
            "t == expiry is not expired"
        );
        assert_eq!(names(&cache.take_expired(25)), ["t10", "t20"]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn reposition_only_moves_the_same_session() {
        let cache = SessionCache::new(0);
        let a = sess("a");
        cache.insert(key(1), a.clone(), at(10));
        cache.insert(key(2), sess("b"), at(20));
        let other = sess("other");
        assert!(!cache.reposition_where(&key(1), at(99), |s| s.is_same(&other)));
        assert!(cache.reposition_where(&key(1), at(30), |s| s.is_same(&a)));
        assert_eq!(names(&cache.take_expired(25)), ["b"]);
    }

    #[test]
    fn remove_by_key_and_capacity_swap() {
        let cache = SessionCache::new(7);
        assert_eq!(cache.set_capacity(9), 7);
        assert_eq!(cache.capacity(), 9);
        cache.insert(key(1), sess("a"), at(1));
        assert_eq!(
            names(&cache.remove(&key(1)).into_iter().collect::<Vec<_>>()),
            ["a"]
        );
        assert!(cache.remove(&key(1)).is_none());
    }

    #[test]
    fn concurrent_use_keeps_counts_consistent() {
        let cache = Arc::new(SessionCache::new(50));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for i in 0..200u8 {
                        let k = SessionKey::new(0x0303, &[t, i]).unwrap();
                        cache.insert(k, sess("x"), at(i64::from(i)));
                        cache.get(&k);
                        if i % 3 == 0 {
                            cache.remove(&k);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(cache.len() < 50);
        let inner = cache.read();
        assert_eq!(inner.entries.len(), inner.order.len());
    }
}
