//! The session cache core: pure Rust, no C, no libssl.
//!
//! One [`SessionCache`] per `SSL_CTX`. It reproduces the observable
//! behaviour of libssl 3.0's internal cache (`ssl/ssl_sess.c`) — what is
//! evicted, in which order, what a flush removes, what counts as "cache
//! full" — without its costs: lookups are a hash probe, inserts and removals
//! are `O(log n)` in an expiry-ordered tree instead of libssl's list walk.
//!
//! The cache never runs foreign code while its locks are held: values that
//! leave the cache (replaced, evicted, flushed) are handed back to the
//! caller, who drops them (and calls application callbacks) afterwards.
//!
//! Layout, chosen for speed and memory: sessions live in 16 hash-table
//! shards, each entry only the session, its key's hash and a sequence
//! number (the key itself is read from the session, as libssl does). Expiry
//! order is a min-heap of (expiry, sequence, hash) with lazy deletion: a
//! removed or re-timed session leaves a stale heap slot, recognised by its
//! sequence number and dropped when it surfaces or when stale slots
//! reach a third of the live ones. Lookups take one shard's read lock; everything that
//! changes the cache takes the order lock first (so changes are serialised
//! as in libssl) and then the shard's write lock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hashbrown::HashTable;

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

    /// The same key, borrowed.
    pub fn as_key_ref(&self) -> SessionKeyRef<'_> {
        SessionKeyRef {
            version: self.version,
            id: self.id(),
        }
    }
}

/// A key borrowed from the caller's buffer: for lookups that need not copy
/// the ID (`SSL_has_matching_session_id` runs millions of times a second in
/// a busy server's ID generator).
#[derive(Clone, Copy, Debug)]
pub struct SessionKeyRef<'a> {
    version: i32,
    id: &'a [u8],
}

impl<'a> SessionKeyRef<'a> {
    /// `None` when the ID is longer than libssl allows.
    pub fn new(version: i32, id: &'a [u8]) -> Option<SessionKeyRef<'a>> {
        (id.len() <= MAX_SESSION_ID_LEN).then_some(SessionKeyRef { version, id })
    }

    pub fn id(&self) -> &'a [u8] {
        self.id
    }

    /// An owned copy.
    pub fn to_key(&self) -> SessionKey {
        SessionKey::new(self.version, self.id).expect("checked in SessionKeyRef::new")
    }
}

/// The ID as four little-endian words, zero-padded: what the hash reads.
fn id_words(id: &[u8]) -> [u64; 4] {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8-byte chunks"));
    match <&[u8; MAX_SESSION_ID_LEN]>::try_from(id) {
        Ok(full) => [
            word(&full[..8]),
            word(&full[8..16]),
            word(&full[16..24]),
            word(&full[24..]),
        ],
        Err(_) => {
            let mut padded = [0u8; MAX_SESSION_ID_LEN];
            padded[..id.len()].copy_from_slice(id);
            id_words(&padded)
        }
    }
}

/// Whether two IDs are equal. Runs on every probe of every lookup: a
/// full-length pair (what libssl makes) compares as two 16-byte words,
/// without a call to `memcmp`.
pub fn ids_equal(a: &[u8], b: &[u8]) -> bool {
    match (
        <&[u8; MAX_SESSION_ID_LEN]>::try_from(a),
        <&[u8; MAX_SESSION_ID_LEN]>::try_from(b),
    ) {
        (Ok(a), Ok(b)) => {
            let half = |x: &[u8]| u128::from_ne_bytes(x.try_into().expect("16 bytes"));
            half(&a[..16]) == half(&b[..16]) && half(&a[16..]) == half(&b[16..])
        }
        _ => a == b,
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
    /// The key the session is cached under (read from the session itself,
    /// as libssl compares its cached sessions' own IDs).
    fn key(&self) -> Option<SessionKey>;
    /// Whether the session's own ID is `id`, the version not looked at (the
    /// cache keeps the version of most entries itself). Override to compare
    /// without building a key.
    fn has_id(&self, id: &[u8]) -> bool {
        self.key().is_some_and(|k| k.id() == id)
    }
}

/// What [`SessionCache::insert_into`] did (the evicted sessions went to the
/// caller's `Vec`). Two words: it comes back in registers.
#[derive(Debug)]
pub struct Inserted<S> {
    /// As in [`InsertOutcome`].
    pub added: bool,
    /// As in [`InsertOutcome`].
    pub released: Option<S>,
}

/// What [`SessionCache::insert`] did.
#[derive(Debug)]
pub struct InsertOutcome<S> {
    /// `true` for a new entry, `false` when that same session was cached
    /// already (libssl's `SSL_CTX_add_session` return value).
    pub added: bool,
    /// The reference the cache let go of without a removal: a different
    /// session that had the same key (libssl frees it silently, before any
    /// eviction), or the duplicate reference passed in when the session was
    /// cached already. Never more than one, and an `Option` rather than a
    /// `Vec` for speed: every insert returns it.
    pub released: Option<S>,
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

const SHARDS: usize = 16;

struct Entry<S> {
    session: S,
    hash: u64,
    /// The low 48 bits of the sequence number of the entry's heap slot
    /// (which slot is the live one), and above them the session's protocol
    /// version as it was cached, or [`Entry::VERSION_UNKNOWN`]. Keeping the
    /// version here spares every lookup a read of a second cache line of
    /// the session; it is kept exact by [`SessionCache::version_changed_where`]
    /// (the only way a cached session's version changes).
    seq_and_version: u64,
}

impl<S> Entry<S> {
    const SEQ_BITS: u32 = 48;
    const SEQ_MASK: u64 = (1 << Self::SEQ_BITS) - 1;
    /// The version did not fit in 16 bits (or the ID is empty, whose
    /// sessions libssl may re-version inside a handshake): read it from the
    /// session.
    const VERSION_UNKNOWN: u64 = 0xffff;

    fn new(session: S, hash: u64, seq: u64, key: &SessionKeyRef<'_>) -> Entry<S> {
        Entry {
            session,
            hash,
            seq_and_version: (seq & Self::SEQ_MASK) | (Self::version_bits(key) << Self::SEQ_BITS),
        }
    }

    fn version_bits(key: &SessionKeyRef<'_>) -> u64 {
        match u16::try_from(key.version) {
            Ok(v) if u64::from(v) != Self::VERSION_UNKNOWN && !key.id.is_empty() => u64::from(v),
            _ => Self::VERSION_UNKNOWN,
        }
    }

    /// Whether this entry's heap slot is the one numbered `seq`.
    fn has_seq(&self, seq: u64) -> bool {
        self.seq_and_version & Self::SEQ_MASK == seq & Self::SEQ_MASK
    }

    fn set_seq(&mut self, seq: u64) {
        self.seq_and_version = (self.seq_and_version & !Self::SEQ_MASK) | (seq & Self::SEQ_MASK);
    }

    fn set_version(&mut self, key: &SessionKeyRef<'_>) {
        self.seq_and_version =
            (self.seq_and_version & Self::SEQ_MASK) | (Self::version_bits(key) << Self::SEQ_BITS);
    }

    /// libssl's comparison of a cached session with a key: version, then ID.
    fn matches(&self, key: &SessionKeyRef<'_>) -> bool
    where
        S: CachedSession,
    {
        let version = self.seq_and_version >> Self::SEQ_BITS;
        let same_version = if version == Self::VERSION_UNKNOWN {
            self.session
                .key()
                .is_some_and(|k| k.version() == key.version)
        } else {
            i64::from(key.version) == version as i64
        };
        same_version && self.session.has_id(key.id)
    }
}

/// A place in expiry order; `seq` breaks ties so that among equal expiries
/// the one (re)positioned first goes first, as in libssl's list.
///
/// Three plain words (24 bytes; the heap holds one per session and more
/// after removals): the expiry time with its sign bit flipped, so that the
/// unsigned order is the signed one, and the overflow flag in the top bit
/// of the sequence word. All three are whole words, which the heap moves
/// without the partial-width copies (and store-forwarding stalls) a `bool`
/// field costs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Slot {
    at: u64,
    overflowed_and_seq: u64,
    hash: u64,
}

impl Slot {
    const OVERFLOWED: u64 = 1 << 63;

    fn new(expiry: Expiry, seq: u64, hash: u64) -> Slot {
        debug_assert!(seq < Self::OVERFLOWED);
        Slot {
            at: (expiry.at as u64) ^ (1 << 63),
            overflowed_and_seq: if expiry.overflowed {
                Self::OVERFLOWED | seq
            } else {
                seq
            },
            hash,
        }
    }

    fn seq(&self) -> u64 {
        self.overflowed_and_seq & !Self::OVERFLOWED
    }

    fn expiry(&self) -> Expiry {
        Expiry {
            overflowed: self.overflowed_and_seq & Self::OVERFLOWED != 0,
            at: (self.at ^ (1 << 63)) as i64,
        }
    }

    /// (overflowed, expiry time, sequence): libssl's `timeoutcmp`, then
    /// insertion order. The hash only makes the order total.
    fn sort_key(&self) -> (u64, u64, u64, u64) {
        (
            self.overflowed_and_seq >> 63,
            self.at,
            self.seq(),
            self.hash,
        )
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One shard, on its own cache lines so that two threads reading two
/// shards do not contend.
#[repr(align(128))]
struct Shard<S> {
    table: RwLock<HashTable<Entry<S>>>,
    /// The table's capacity when it was last rebuilt or grown, i.e. with
    /// no tombstones (changed only under the table's write lock).
    clean_capacity: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<S> Shard<S> {
    /// Room for one more entry. hashbrown reuses the place of a removed
    /// entry only after a rehash when the removal left a tombstone, and
    /// above half full it rehashes only by doubling the table: under steady
    /// removals and inserts (TLS 1.3 single-use tickets remove one session
    /// per resumption) the tables of 100k sessions doubled while the number
    /// of sessions stayed the same, 33 bytes more per session. A table that
    /// runs out of room because of tombstones is rebuilt at its own size
    /// instead, which clears them; one that is really full grows.
    fn make_room(&self, table: &mut HashTable<Entry<S>>) {
        if table.len() < table.capacity() {
            return;
        }
        let clean = self.clean_capacity.load(Ordering::Relaxed);
        if clean > 0 && table.len() <= clean - clean / 16 {
            let old = std::mem::replace(table, HashTable::with_capacity(clean));
            for entry in old {
                table.insert_unique(entry.hash, entry, |e| e.hash);
            }
        } else {
            table.reserve(1, |e| e.hash);
        }
        self.clean_capacity
            .store(table.capacity(), Ordering::Relaxed);
    }
}

struct Order {
    heap: BinaryHeap<Reverse<Slot>>,
    next_seq: u64,
    /// Sessions cached (changed only under this lock).
    len: usize,
}

impl Order {
    fn place(&mut self, expiry: Expiry, hash: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.heap.len() == self.heap.capacity() {
            // An eighth more, not double: the heap is a third of the
            // cache's memory, and doubling would leave up to half of it
            // unused. The price: a slot is copied about nine times over
            // the heap's growth instead of about twice.
            self.heap.reserve_exact(self.heap.len() / 8 + 64);
        }
        self.heap.push(Reverse(Slot::new(expiry, seq, hash)));
        seq
    }

    /// Gives back heap memory after the cache shrank (a flush, a
    /// compaction): at most half again what is used is kept.
    fn fit_capacity(&mut self) {
        let used = self.heap.len();
        if self.heap.capacity() > used + used / 2 + 64 {
            self.heap.shrink_to(used + used / 4 + 64);
        }
    }
}

/// A thread-safe, size-bounded, expiry-ordered session cache.
pub struct SessionCache<S> {
    shards: Box<[Shard<S>]>,
    order: Mutex<Order>,
    capacity: AtomicUsize,
    evictions: AtomicU64,
    seed: u64,
}

// A panic elsewhere while a lock was held cannot leave a table half
// updated in a way that breaks memory safety, so a poisoned lock is used
// as it is rather than turning every later call into a panic.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl<S: CachedSession> SessionCache<S> {
    /// `capacity` 0 means unlimited, as in libssl.
    pub fn new(capacity: usize) -> SessionCache<S> {
        SessionCache {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    table: RwLock::new(HashTable::new()),
                    clean_capacity: AtomicUsize::new(0),
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                })
                .collect(),
            order: Mutex::new(Order {
                heap: BinaryHeap::new(),
                next_seq: 0,
                len: 0,
            }),
            capacity: AtomicUsize::new(capacity),
            evictions: AtomicU64::new(0),
            // A per-cache random seed: a peer choosing session IDs cannot
            // aim them at one bucket.
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5e55_cac4_e000_u64),
        }
    }

    /// A keyed multiply-xorshift hash of the ID bytes; session IDs are
    /// mostly random already, so this only has to be fast and
    /// unpredictable. The version is compared but not hashed, as in libssl
    /// (`ssl_session_hash`): a cached session whose protocol version the
    /// application changes stays where it is and is found (and replaced,
    /// and removed) under its new version.
    fn hash(&self, key: &SessionKey) -> u64 {
        self.hash_id(key.id())
    }

    fn hash_id(&self, id: &[u8]) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = self.seed ^ id.len() as u64;
        for word in id_words(id) {
            h = (h ^ word).wrapping_mul(K);
            h ^= h >> 29;
        }
        h.wrapping_mul(K) ^ (h >> 32)
    }

    fn shard_index(hash: u64) -> usize {
        (hash >> 40) as usize % SHARDS
    }

    fn shard(&self, hash: u64) -> &Shard<S> {
        &self.shards[Self::shard_index(hash)]
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(|e| e.into_inner())
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
        self.order().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> CacheStats {
        let sum = |f: fn(&Shard<S>) -> &AtomicU64| -> u64 {
            self.shards
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        CacheStats {
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
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
        let mut evicted = Vec::new();
        let Inserted { added, released } =
            self.insert_into(key.as_key_ref(), session, expiry, &mut evicted);
        InsertOutcome {
            added,
            released,
            evicted,
        }
    }

    /// [`SessionCache::insert`] for the hot path: evicted sessions are
    /// appended to `evicted`, and the rest of the outcome is two words
    /// (a struct with `Vec`s inside costs store-forwarding stalls on every
    /// insert).
    pub fn insert_into(
        &self,
        key: SessionKeyRef<'_>,
        session: S,
        expiry: Expiry,
        evicted: &mut Vec<S>,
    ) -> Inserted<S> {
        let hash = self.hash_id(key.id);
        let capacity = self.capacity();
        let mut order = self.order();
        let mut released = None;
        // One write lock on the shard for the lookup and the insert: every
        // atomic read-modify-write counts at this size of operation.
        let mut table = write(&self.shard(hash).table);
        if let Ok(mut found) = table.find_entry(hash, |e| e.matches(&key)) {
            if found.get().session.is_same(&session) {
                let seq = order.place(expiry, hash);
                found.get_mut().set_seq(seq);
                released = Some(session);
                drop(table);
                self.compact_if_stale(&mut order);
                return Inserted {
                    added: false,
                    released,
                };
            }
            let (old, _) = found.remove();
            released = Some(old.session);
            order.len -= 1;
        }

        if capacity > 0 && order.len + 1 >= capacity {
            // A victim may live in this very shard.
            drop(table);
            let before = evicted.len();
            while order.len + 1 >= capacity {
                match self.take_front(&mut order, |_, session| {
                    // libssl's eviction refuses (and stops at) an empty ID.
                    session.key().is_some_and(|k| !k.id().is_empty())
                }) {
                    Some(victim) => evicted.push(victim),
                    None => break,
                }
            }
            let count = evicted.len() - before;
            if count > 0 {
                self.evictions.fetch_add(count as u64, Ordering::Relaxed);
            }
            table = write(&self.shard(hash).table);
        }

        let seq = order.place(expiry, hash);
        let shard = self.shard(hash);
        shard.make_room(&mut table);
        table.insert_unique(hash, Entry::new(session, hash, seq, &key), |e| e.hash);
        drop(table);
        order.len += 1;
        self.compact_if_stale(&mut order);
        Inserted {
            added: true,
            released,
        }
    }

    /// Removes the session first in expiry order if `take` agrees, dropping
    /// stale heap slots on the way.
    fn take_front(&self, order: &mut Order, take: impl Fn(&Slot, &S) -> bool) -> Option<S> {
        loop {
            let Reverse(slot) = *order.heap.peek()?;
            let mut table = write(&self.shard(slot.hash).table);
            match table.find_entry(slot.hash, |e| e.has_seq(slot.seq())) {
                Ok(found) => {
                    if !take(&slot, &found.get().session) {
                        return None;
                    }
                    let (entry, _) = found.remove();
                    order.heap.pop();
                    order.len -= 1;
                    return Some(entry.session);
                }
                Err(_) => {
                    order.heap.pop();
                }
            }
        }
    }

    /// Rebuilds the heap when stale slots reach a third of the live ones,
    /// so that memory stays within the budget also under steady removals
    /// (TLS 1.3 single-use tickets remove one session per resumption). At
    /// one stale slot per live one, 1M sessions after a full turnover took
    /// 105 bytes each (libssl: 36); at a third, 94. A lower threshold costs
    /// removals more rebuilding (a quarter: 88 bytes, removal 8 % slower
    /// than at a third). The check is inlined into every caller; the
    /// rebuild is the rare path.
    #[inline(always)]
    fn compact_if_stale(&self, order: &mut Order) {
        if order.heap.len() > order.len + order.len / 3 + 64 {
            self.compact(order);
        }
    }

    #[cold]
    #[inline(never)]
    fn compact(&self, order: &mut Order) {
        // Writers are held off by the order lock; one read guard per shard
        // for the whole pass instead of one lock per slot.
        let tables: Vec<_> = self.shards.iter().map(|s| read(&s.table)).collect();
        order.heap.retain(|Reverse(slot)| {
            tables[Self::shard_index(slot.hash)]
                .find(slot.hash, |e| e.has_seq(slot.seq()))
                .is_some()
        });
        drop(tables);
        order.fit_capacity();
    }

    /// Looks a key up, counting a hit or a miss. The returned clone is the
    /// caller's own reference.
    pub fn get(&self, key: &SessionKey) -> Option<S>
    where
        S: Clone,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let found = read(&shard.table)
            .find(hash, |e| e.matches(&key.as_key_ref()))
            .map(|e| e.session.clone());
        let counter = if found.is_some() {
            &shard.hits
        } else {
            &shard.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The session cached under `key`, without counting a hit or a miss.
    pub fn peek(&self, key: &SessionKey) -> Option<S>
    where
        S: Clone,
    {
        let hash = self.hash(key);
        read(&self.shard(hash).table)
            .find(hash, |e| e.matches(&key.as_key_ref()))
            .map(|e| e.session.clone())
    }

    /// [`SessionCache::contains`] for a key borrowed from the caller.
    pub fn contains_ref(&self, key: SessionKeyRef<'_>) -> bool {
        let hash = self.hash_id(key.id);
        read(&self.shard(hash).table)
            .find(hash, |e| e.matches(&key))
            .is_some()
    }

    /// Whether a session is cached under `key` (no statistics).
    pub fn contains(&self, key: &SessionKey) -> bool {
        let hash = self.hash(key);
        read(&self.shard(hash).table)
            .find(hash, |e| e.matches(&key.as_key_ref()))
            .is_some()
    }

    /// Removes whatever session is cached under `key`.
    pub fn remove(&self, key: &SessionKey) -> Option<S> {
        self.remove_ref(key.as_key_ref())
    }

    /// [`SessionCache::remove`] for a key borrowed from the caller.
    pub fn remove_ref(&self, key: SessionKeyRef<'_>) -> Option<S> {
        let hash = self.hash_id(key.id);
        let mut order = self.order();
        let removed = {
            let mut table = write(&self.shard(hash).table);
            let found = table.find_entry(hash, |e| e.matches(&key)).ok()?;
            found.remove().0.session
        };
        order.len -= 1;
        self.compact_if_stale(&mut order);
        Some(removed)
    }

    /// Moves the session cached under `key` to a new place in expiry order
    /// if `is_it` recognises it as the session meant; returns whether it did.
    pub fn reposition_where(
        &self,
        key: &SessionKey,
        expiry: Expiry,
        is_it: impl FnOnce(&S) -> bool,
    ) -> bool {
        let hash = self.hash(key);
        let mut order = self.order();
        {
            let mut table = write(&self.shard(hash).table);
            let Ok(mut found) = table.find_entry(hash, |e| e.matches(&key.as_key_ref())) else {
                return false;
            };
            if !is_it(&found.get().session) {
                return false;
            }
            let seq = order.place(expiry, hash);
            found.get_mut().set_seq(seq);
        }
        self.compact_if_stale(&mut order);
        true
    }

    /// The session cached under `key`'s ID that `is_it` recognises now has
    /// `key`'s version (the application changed it); returns whether one
    /// did. Its place in the table does not change: the hash is of the ID.
    pub fn version_changed_where(&self, key: &SessionKey, is_it: impl Fn(&S) -> bool) -> bool {
        let hash = self.hash(key);
        let mut table = write(&self.shard(hash).table);
        // The old version is unknown here: match on the ID and identity.
        let Ok(mut found) =
            table.find_entry(hash, |e| e.session.has_id(key.id()) && is_it(&e.session))
        else {
            return false;
        };
        found.get_mut().set_version(&key.as_key_ref());
        true
    }

    /// Removes every session that has expired at `now`, earliest first.
    pub fn take_expired(&self, now: i64) -> Vec<S> {
        let mut order = self.order();
        let mut out = Vec::new();
        while let Some(s) = self.take_front(&mut order, |slot, _| slot.expiry().has_passed(now)) {
            out.push(s);
        }
        order.fit_capacity();
        out
    }

    /// Removes every session, earliest expiry first.
    pub fn take_all(&self) -> Vec<S> {
        let mut order = self.order();
        let mut out = Vec::new();
        while let Some(s) = self.take_front(&mut order, |_, _| true) {
            out.push(s);
        }
        order.heap.clear();
        order.fit_capacity();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A test session: identity is the `Arc` allocation, so clones are "the
    /// same session" and `Arc::strong_count` shows leaked references. Its
    /// key is set when it is inserted (as a session carries its own ID).
    #[derive(Clone, Debug)]
    struct Sess(Arc<(String, Mutex<Option<SessionKey>>)>);

    impl CachedSession for Sess {
        fn is_same(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
        fn key(&self) -> Option<SessionKey> {
            *self.0.1.lock().unwrap()
        }
    }

    fn sess(name: &str) -> Sess {
        Sess(Arc::new((name.to_string(), Mutex::new(None))))
    }

    /// Inserts `s` under `k`, giving it that key first.
    fn put(cache: &SessionCache<Sess>, k: SessionKey, s: Sess, e: Expiry) -> InsertOutcome<Sess> {
        *s.0.1.lock().unwrap() = Some(k);
        cache.insert(k, s, e)
    }

    fn key(id: u8) -> SessionKey {
        SessionKey::new(0x0303, &[id; 32]).unwrap()
    }

    fn at(t: i64) -> Expiry {
        Expiry::from_time_and_timeout(t, 0)
    }

    fn names(v: &[Sess]) -> Vec<&str> {
        v.iter().map(|s| s.0.0.as_str()).collect()
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
    fn slots_sort_like_expiries_then_insertion_and_round_trip() {
        let times = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let mut expiries: Vec<Expiry> = times
            .iter()
            .flat_map(|&at| [false, true].map(|overflowed| Expiry { overflowed, at }))
            .collect();
        expiries.sort();
        for pair in expiries.windows(2) {
            // the later expiry sorts later even with an earlier sequence
            assert!(
                Slot::new(pair[0], 9, 0) < Slot::new(pair[1], 1, 0),
                "{pair:?}"
            );
        }
        for e in expiries {
            let slot = Slot::new(e, 5, 7);
            assert_eq!((slot.expiry(), slot.seq()), (e, 5));
            // equal expiries: insertion order
            assert!(Slot::new(e, 5, 7) < Slot::new(e, 6, 0));
        }
    }

    #[test]
    fn ids_equal_compares_every_byte_and_the_length() {
        let full: Vec<u8> = (0..32).collect();
        let k = SessionKey::new(0x0303, &full).unwrap();
        assert!(ids_equal(&full, k.id()));
        for i in 0..32 {
            let mut other = full.clone();
            other[i] ^= 0x80;
            assert!(!ids_equal(&other, k.id()), "byte {i} differs");
        }
        assert!(!ids_equal(&full[..31], k.id()));
        assert!(!ids_equal(&[], k.id()));
        let short = SessionKey::new(0x0303, &full[..5]).unwrap();
        assert!(ids_equal(&full[..5], short.id()));
        assert!(
            !ids_equal(&full, short.id()),
            "a longer ID with the same prefix"
        );
        assert!(!ids_equal(&[0, 1, 2, 3, 5], short.id()));
        let mut padded = full[..5].to_vec();
        padded.resize(32, 0);
        assert!(
            !ids_equal(&padded, short.id()),
            "zero padding is not part of the ID"
        );
        let empty = SessionKey::new(0x0303, &[]).unwrap();
        assert!(ids_equal(&[], empty.id()));
        assert!(!ids_equal(&[0; 32], empty.id()));
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
        let out = put(&cache, key(1), a.clone(), at(10));
        assert!(out.added && out.released.is_none() && out.evicted.is_empty());
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
        assert!(cache.peek(&key(1)).is_some_and(|s| s.is_same(&a)));
        assert!(cache.peek(&key(2)).is_none());
        assert_eq!(cache.stats().hits, 1, "contains and peek do not count");
        assert_eq!(cache.stats().misses, 1);
    }

    #[test]
    fn a_version_changed_while_cached_is_found_under_the_new_version() {
        // libssl hashes the ID only and compares the version it reads from
        // the cached session; the cache keeps a copy of the version, which
        // `version_changed_where` brings up to date.
        let cache = SessionCache::new(0);
        let a = sess("a");
        let id = [7u8; 32];
        let v12 = SessionKey::new(0x0303, &id).unwrap();
        let v13 = SessionKey::new(0x0304, &id).unwrap();
        put(&cache, v12, a.clone(), at(10));
        assert!(cache.contains(&v12));
        *a.0.1.lock().unwrap() = Some(v13);
        assert!(cache.version_changed_where(&v13, |s| s.is_same(&a)));
        assert!(cache.contains(&v13));
        assert!(!cache.contains(&v12));
        let other = sess("other");
        assert!(
            !cache.version_changed_where(&v12, |s| s.is_same(&other)),
            "only the session itself"
        );
        let again = cache.insert(v13, a.clone(), at(10));
        assert!(
            !again.added,
            "the same session, found under its new version"
        );
        drop(again);
        assert!(cache.remove(&v13).is_some());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn versions_that_do_not_fit_the_entry_are_read_from_the_session() {
        // TLS_ANY_VERSION (0x10000), negative values, 0xffff itself and
        // empty IDs: the entry does not keep the version, so a change made
        // behind the cache's back is still seen.
        for (version, id) in [
            (0x10000, &[1u8; 32][..]),
            (-3, &[2u8; 32][..]),
            (0xffff, &[3u8; 32][..]),
            (0x0303, &[][..]),
        ] {
            let cache = SessionCache::new(0);
            let s = sess("s");
            let k = SessionKey::new(version, id).unwrap();
            put(&cache, k, s.clone(), at(1));
            assert!(cache.contains(&k), "{version:#x}");
            let moved = SessionKey::new(0x0304, id).unwrap();
            *s.0.1.lock().unwrap() = Some(moved);
            assert!(
                cache.contains(&moved),
                "{version:#x}: read from the session"
            );
            assert!(!cache.contains(&k), "{version:#x}");
        }
    }

    #[test]
    fn same_session_again_is_not_added_and_returns_the_extra_reference() {
        let cache = SessionCache::new(0);
        let a = sess("a");
        put(&cache, key(1), a.clone(), at(10));
        let out = put(&cache, key(1), a.clone(), at(10));
        assert!(!out.added);
        assert_eq!(names(out.released.as_slice()), ["a"]);
        drop(out);
        assert_eq!(Arc::strong_count(&a.0), 2, "one for us, one for the cache");
    }

    #[test]
    fn different_session_same_key_replaces_silently() {
        let cache = SessionCache::new(0);
        put(&cache, key(1), sess("old"), at(10));
        let out = put(&cache, key(1), sess("new"), at(5));
        assert!(out.added);
        assert_eq!(names(out.released.as_slice()), ["old"]);
        assert!(out.evicted.is_empty());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&key(1)).unwrap().0.0.as_str(), "new");
    }

    #[test]
    fn full_cache_evicts_earliest_expiry_with_libssl_off_by_one() {
        // libssl 3.0 evicts while (entries including the new one) >= size.
        let cache = SessionCache::new(3);
        put(&cache, key(1), sess("t30"), at(30));
        put(&cache, key(2), sess("t10"), at(10));
        let out = put(&cache, key(3), sess("t20"), at(20));
        assert_eq!(names(&out.evicted), ["t10"]);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().evictions, 1);

        let one = SessionCache::new(1);
        put(&one, key(1), sess("a"), at(1));
        assert_eq!(one.len(), 1, "size 1 keeps the one session");
        let out = put(&one, key(2), sess("b"), at(2));
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
        put(&cache, empty, sess("empty"), at(1));
        let out = put(&cache, key(1), sess("a"), at(2));
        assert!(out.evicted.is_empty());
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().evictions, 0);
    }

    #[test]
    fn ties_in_expiry_go_out_in_insertion_order_and_readding_moves_to_back() {
        let cache = SessionCache::new(0);
        let a = sess("a");
        put(&cache, key(1), a.clone(), at(5));
        put(&cache, key(2), sess("b"), at(5));
        put(&cache, key(3), sess("c"), at(5));
        // Re-adding the same session re-links it behind its equals.
        put(&cache, key(1), a, at(5));
        assert_eq!(names(&cache.take_all()), ["b", "c", "a"]);
        assert!(cache.is_empty());
    }

    #[test]
    fn flush_takes_only_what_expired_in_order() {
        let cache = SessionCache::new(0);
        put(&cache, key(1), sess("t30"), at(30));
        put(&cache, key(2), sess("t10"), at(10));
        put(&cache, key(3), sess("t20"), at(20));
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
        put(&cache, key(1), a.clone(), at(10));
        put(&cache, key(2), sess("b"), at(20));
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
        put(&cache, key(1), sess("a"), at(1));
        assert_eq!(
            names(&cache.remove(&key(1)).into_iter().collect::<Vec<_>>()),
            ["a"]
        );
        assert!(cache.remove(&key(1)).is_none());
    }

    #[test]
    fn steady_removals_and_inserts_keep_tables_and_heap_at_their_size() {
        let cache = SessionCache::new(0);
        // 6,250 per shard: tables 87 % full, where hashbrown doubles
        let n = 100_000u32;
        let key = |i: u32| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            SessionKey::new(0x0304, &id).unwrap()
        };
        for i in 0..n {
            put(&cache, key(i), sess("s"), at(i64::from(i)));
        }
        let table_capacity = |c: &SessionCache<Sess>| -> usize {
            c.shards.iter().map(|s| read(&s.table).capacity()).sum()
        };
        let grown = table_capacity(&cache);
        // TLS 1.3 single-use tickets: each resumption removes a session
        // of any age and adds a new one; two full turnovers.
        let mut live: Vec<u32> = (0..n).collect();
        let mut x = 0x2545_f491_u64;
        for j in 0..2 * n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = (x % u64::from(n)) as usize;
            assert!(cache.remove(&key(live[slot])).is_some());
            live[slot] = n + j;
            put(&cache, key(n + j), sess("s"), at(i64::from(n + j)));
        }
        assert_eq!(cache.len(), n as usize);
        // hashbrown alone doubled the tables here (tombstones)
        assert!(
            table_capacity(&cache) <= grown,
            "{} > {grown}",
            table_capacity(&cache)
        );
        let order = cache.order();
        assert!(order.heap.len() <= order.len + order.len / 3 + 64);
        assert!(order.heap.capacity() <= order.heap.len() + order.heap.len() / 2 + 64);
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
                        put(&cache, k, sess("x"), at(i64::from(i)));
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
        let live: usize = cache
            .shards
            .iter()
            .map(|s| s.table.read().unwrap().len())
            .sum();
        assert_eq!(live, cache.len());
    }
}
