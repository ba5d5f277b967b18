//! The session cache core: pure Rust, no C, no libssl.
//!
//! One [`SessionCache`] per `SSL_CTX`. It reproduces the observable
//! behaviour of libssl 3.0's internal cache (`ssl/ssl_sess.c`) — what is
//! evicted, in which order, what a flush removes, what counts as "cache
//! full" — without its costs: lookups are a hash probe; inserts, removals
//! and evictions are O(1) in a sorted list as in libssl when sessions come
//! in expiry order, and O(log h) in a heap for the h that do not, where
//! libssl walks its list.
//!
//! The cache never runs foreign code while its locks are held: values that
//! leave the cache (replaced, evicted, flushed) are handed back to the
//! caller, who drops them (and calls application callbacks) afterwards.
//!
//! Layout, chosen for speed and memory: sessions live in 64 hash-table
//! shards, each entry only the session, the handle of its place in expiry
//! order and (mostly) its protocol version; the ID is read from the
//! session, as libssl does, and the ID's hash is kept in the expiry
//! order's node. Expiry order (`Order`) is a sorted linked list for the
//! sessions that come in order plus a min-heap for the others, both over
//! one array of nodes found by handle. Lookups take one shard's read lock
//! (see `shard_lock`: readers write only to a line of their own);
//! everything that changes the cache takes the order lock first (so
//! changes are serialised as in libssl) and then the shard's write lock.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::HashTable;

mod shard_lock;
use shard_lock::{ExclusiveLock, READER_ROWS, ReadGuard, ShardLocks, WriteGuard, this_threads_row};

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

    /// A session that never expires (libssl's `OSSL_TIME` infinity): after
    /// every other, and among such sessions in insertion order.
    pub fn never() -> Expiry {
        Expiry {
            overflowed: true,
            at: 0,
        }
    }

    /// An `OSSL_TIME` expiry in nanoseconds (libssl 3.3 and later), where
    /// the largest value is "never"; compared with times from
    /// [`Expiry::nanos_as_time`].
    pub fn from_nanos(calc_timeout: u64) -> Expiry {
        if calc_timeout == u64::MAX {
            return Expiry::never();
        }
        Expiry {
            overflowed: false,
            at: Expiry::nanos_as_time(calc_timeout),
        }
    }

    /// A time in unsigned nanoseconds as the signed time expiries of
    /// [`Expiry::from_nanos`] are compared with: the sign bit flipped, so
    /// that the signed order is the unsigned one (and differences are kept).
    pub fn nanos_as_time(ns: u64) -> i64 {
        (ns ^ (1 << 63)) as i64
    }

    /// Time units (seconds, or nanoseconds for [`Expiry::from_nanos`])
    /// until the session expires (`None`: never).
    pub fn left(&self, now: i64) -> Option<u64> {
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
    /// Whether the session has no usable ID (libssl's eviction stops at
    /// such a session). Override to read the ID alone: the session evicted
    /// is the least recently touched, and every line of it read is likely
    /// a cache miss.
    fn has_empty_id(&self) -> bool {
        self.key().is_none_or(|k| k.id().is_empty())
    }
}

/// The sessions an insert pushed out, in eviction order. A full cache
/// evicts one per insert: that one is kept without a heap allocation (a
/// `Vec`'s allocation and free were a sixth of such an insert's
/// instructions).
#[derive(Debug)]
pub struct Evicted<S> {
    first: Option<S>,
    rest: Vec<S>,
}

impl<S> Default for Evicted<S> {
    fn default() -> Self {
        Evicted {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<S> Evicted<S> {
    fn push(&mut self, session: S) {
        if self.first.is_none() {
            debug_assert!(self.rest.is_empty());
            self.first = Some(session);
        } else {
            self.rest.push(session);
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl<S> IntoIterator for Evicted<S> {
    type Item = S;
    type IntoIter = std::iter::Chain<std::option::IntoIter<S>, std::vec::IntoIter<S>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
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

/// A shard's table is rebuilt now and then under churn (see
/// `Shard::make_room`), stopping that shard's users for the time it takes:
/// more shards make each pause shorter at the same memory and speed
/// (`churn_worst` and `memory_churn` in the benchmarks measure both).
const SHARDS: usize = 64;

/// 16 bytes: the hash a table needs when it grows is read from the entry's
/// node in expiry order (`Order::hash_of`), not kept here a second time.
struct Entry<S> {
    session: S,
    /// The handle of the entry's place in expiry order in the low 48 bits,
    /// and above them the session's protocol version as it was cached, or
    /// [`Entry::VERSION_UNKNOWN`]. Keeping the version here spares every
    /// lookup a read of a second cache line of the session; it is kept
    /// exact by [`SessionCache::version_changed_where`] (the only way a
    /// cached session's version changes).
    handle_and_version: u64,
}

impl<S> Entry<S> {
    const HANDLE_BITS: u32 = 48;
    const HANDLE_MASK: u64 = (1 << Self::HANDLE_BITS) - 1;
    /// The version did not fit in 16 bits (or the ID is empty, whose
    /// sessions libssl may re-version inside a handshake): read it from the
    /// session.
    const VERSION_UNKNOWN: u64 = 0xffff;

    fn new(session: S, handle: u32, key: &SessionKeyRef<'_>) -> Entry<S> {
        Entry {
            session,
            handle_and_version: u64::from(handle) | (Self::version_bits(key) << Self::HANDLE_BITS),
        }
    }

    fn version_bits(key: &SessionKeyRef<'_>) -> u64 {
        match u16::try_from(key.version) {
            Ok(v) if u64::from(v) != Self::VERSION_UNKNOWN && !key.id.is_empty() => u64::from(v),
            _ => Self::VERSION_UNKNOWN,
        }
    }

    fn handle(&self) -> u32 {
        (self.handle_and_version & Self::HANDLE_MASK) as u32
    }

    fn set_version(&mut self, key: &SessionKeyRef<'_>) {
        self.handle_and_version = (self.handle_and_version & Self::HANDLE_MASK)
            | (Self::version_bits(key) << Self::HANDLE_BITS);
    }

    /// libssl's comparison of a cached session with a key: version, then ID.
    fn matches(&self, key: &SessionKeyRef<'_>) -> bool
    where
        S: CachedSession,
    {
        let version = self.handle_and_version >> Self::HANDLE_BITS;
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
/// The order is one number, compared in one go: the overflow flag (1 bit),
/// the expiry time with its sign bit flipped so that the unsigned order is
/// the signed one (64 bits), the sequence number (63 bits). Then the
/// entry's hash (to find it when it leaves) and its handle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Slot {
    key: u128,
    hash: u64,
    handle: u32,
}

impl Slot {
    const SEQ_BITS: u32 = 63;

    /// The place in expiry order of the `seq`th session placed at `expiry`.
    fn order_key(expiry: Expiry, seq: u64) -> u128 {
        debug_assert!(seq < 1 << Self::SEQ_BITS);
        let at = u128::from((expiry.at as u64) ^ (1 << 63));
        (u128::from(expiry.overflowed) << 127) | (at << Self::SEQ_BITS) | u128::from(seq)
    }

    #[cfg(test)]
    fn new(expiry: Expiry, seq: u64, hash: u64, handle: u32) -> Slot {
        Slot {
            key: Self::order_key(expiry, seq),
            hash,
            handle,
        }
    }

    #[cfg(test)]
    fn seq(&self) -> u64 {
        (self.key as u64) & ((1 << Self::SEQ_BITS) - 1)
    }

    fn expiry(&self) -> Expiry {
        Expiry {
            overflowed: self.key >> 127 != 0,
            at: (((self.key >> Self::SEQ_BITS) as u64) ^ (1 << 63)) as i64,
        }
    }
}

/// (overflowed, expiry time, sequence): libssl's `timeoutcmp`, then
/// insertion order. Sequence numbers are unique, so the order is total.
/// `Order` compares the keys themselves; the tests compare slots.
#[cfg(test)]
impl Ord for Slot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

#[cfg(test)]
impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One shard's table, behind its lock in [`ShardLocks`].
struct Shard<S> {
    table: HashTable<Entry<S>>,
    /// The table's capacity when it was last rebuilt or grown, i.e. with
    /// no tombstones.
    clean_capacity: usize,
}

/// Hit and miss counts of the threads in one reader row (see
/// `shard_lock`), on their own cache lines: two threads resuming sessions
/// count without moving a line between their cores.
#[repr(align(128))]
#[derive(Default)]
struct RowCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<S> Shard<S> {
    /// Room for one more entry. hashbrown reuses the place of a removed
    /// entry only after a rehash when the removal left a tombstone, and
    /// above half full it rehashes only by doubling the table: under steady
    /// removals and inserts (TLS 1.3 single-use tickets remove one session
    /// per resumption) a table would keep doubling while the number of
    /// sessions stayed the same. A table that
    /// runs out of room because of tombstones is rebuilt at its own size
    /// instead, which clears them; one that is really full grows.
    fn make_room(&mut self, hash_of: impl Fn(&Entry<S>) -> u64) {
        let table = &mut self.table;
        if table.len() < table.capacity() {
            return;
        }
        let clean = self.clean_capacity;
        if clean > 0 && table.len() <= clean - clean / 16 {
            let old = std::mem::replace(table, HashTable::with_capacity(clean));
            // The hashes first, in a loop of independent loads that the CPU
            // overlaps (each is a read far away, in the expiry order),
            // then the inserts: shorter pauses than one entry at a time.
            let hashes: Vec<u64> = old.iter().map(&hash_of).collect();
            for (entry, hash) in old.into_iter().zip(hashes) {
                table.insert_unique(hash, entry, &hash_of);
            }
        } else {
            table.reserve(1, &hash_of);
        }
        self.clean_capacity = table.capacity();
    }
}

/// Expiry order, in two parts. Sessions arriving in order (expiring no
/// earlier than every one before them, the usual case: one timeout for
/// all) go to the end of a doubly linked list, which stays sorted: adding,
/// removing any one and taking the first are O(1), as in libssl's list.
/// The others (restored or externally cached sessions, odd timeouts,
/// sessions moved by `set_time`) go to a binary min-heap that knows where
/// each of its slots is, so that any one is removed in O(log h) for the h
/// out-of-order ones; libssl walks its list for them instead. The first
/// in order is the earlier of the list's head and the heap's top.
///
/// Each session has a node, found by its handle: its place in the order
/// (one `u128`), its hash, and two links: the list's neighbours, or
/// [`Node::IN_HEAP`] and its index in the heap.
///
/// Not a heap for everything: that costs an O(log n) sift, a cache miss per
/// level, on every removal and eviction of the common in-order case.
#[derive(Default)]
struct Order {
    nodes: Vec<Node>,
    free_handles: Vec<u32>,
    /// The sorted list's ends, [`Node::NONE`] when it is empty.
    head: Link,
    tail: Link,
    /// Handles of the out-of-order sessions, a min-heap by `Node::key`.
    heap: Vec<u32>,
    len: usize,
    next_seq: u64,
}

/// A handle, or [`Node::NONE`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Link(u32);

impl Default for Link {
    fn default() -> Self {
        Node::NONE
    }
}

/// 32 bytes per session.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// As in [`Slot`]: (overflowed, expiry, sequence) in one number.
    key: u128,
    hash: u64,
    /// In the list: the previous node. In the heap: [`Node::IN_HEAP`].
    prev: Link,
    /// In the list: the next node. In the heap: the index in the heap.
    next: Link,
}

impl Node {
    const NONE: Link = Link(u32::MAX);
    const IN_HEAP: Link = Link(u32::MAX - 1);

    fn slot(&self, handle: u32) -> Slot {
        Slot {
            key: self.key,
            hash: self.hash,
            handle,
        }
    }
}

impl Order {
    fn len(&self) -> usize {
        self.len
    }

    /// The hash of the entry whose slot has `handle`.
    fn hash_of(&self, handle: u32) -> u64 {
        self.nodes[handle as usize].hash
    }

    fn node(&self, handle: u32) -> &Node {
        &self.nodes[handle as usize]
    }

    fn node_mut(&mut self, handle: u32) -> &mut Node {
        &mut self.nodes[handle as usize]
    }

    fn first(&self) -> Option<Slot> {
        let listed = (self.head != Node::NONE).then_some(self.head.0);
        let heaped = self.heap.first().copied();
        let handle = match (listed, heaped) {
            (Some(l), Some(h)) => {
                if self.node(h).key < self.node(l).key {
                    h
                } else {
                    l
                }
            }
            (l, h) => l.or(h)?,
        };
        Some(self.node(handle).slot(handle))
    }

    /// A new slot; returns its handle.
    // Inline, with the rare parts (a new node, a place in the heap) out of
    // line: on every insert.
    #[inline]
    fn add(&mut self, expiry: Expiry, hash: u64) -> u32 {
        let handle = match self.free_handles.pop() {
            Some(handle) => handle,
            None => self.new_node(),
        };
        self.place(handle, expiry, hash);
        self.len += 1;
        handle
    }

    /// A node beyond all there are; returns its handle.
    #[inline(never)]
    fn new_node(&mut self) -> u32 {
        grow_by_an_eighth(&mut self.nodes);
        self.nodes.push(Node {
            key: 0,
            hash: 0,
            prev: Node::NONE,
            next: Node::NONE,
        });
        u32::try_from(self.nodes.len() - 1).expect("fewer than 2^32 sessions")
    }

    /// Gives `handle` its place at `expiry`, behind every slot with the
    /// same expiry.
    #[inline]
    fn place(&mut self, handle: u32, expiry: Expiry, hash: u64) {
        let seq = self.take_seq();
        let key = Slot::order_key(expiry, seq);
        let tail = self.tail;
        let in_order = tail == Node::NONE || self.node(tail.0).key < key;
        let node = self.node_mut(handle);
        node.key = key;
        node.hash = hash;
        if in_order {
            node.prev = tail;
            node.next = Node::NONE;
            match tail {
                Node::NONE => self.head = Link(handle),
                tail => self.node_mut(tail.0).next = Link(handle),
            }
            self.tail = Link(handle);
        } else {
            self.place_in_heap(handle);
        }
    }

    /// [`Order::place`] for a slot that does not come after every listed
    /// one (its key is set).
    #[inline(never)]
    fn place_in_heap(&mut self, handle: u32) {
        self.node_mut(handle).prev = Node::IN_HEAP;
        // `sift_up` records the heap index in `next`.
        let at = self.heap.len();
        self.heap.push(handle);
        self.sift_up(at);
    }

    /// Takes `handle`'s slot out of the list or the heap.
    // Inline: on every removal; the heap's part is out of line.
    #[inline]
    fn unplace(&mut self, handle: u32) {
        let Node { prev, next, .. } = *self.node(handle);
        if prev == Node::IN_HEAP {
            self.heap_remove(next.0 as usize);
            return;
        }
        match prev {
            Node::NONE => self.head = next,
            prev => self.node_mut(prev.0).next = next,
        }
        match next {
            Node::NONE => self.tail = prev,
            next => self.node_mut(next.0).prev = prev,
        }
    }

    /// Removes `handle`'s slot; the handle is free again.
    // Always inline: it is on every removal, and as a call (the hint alone
    // left one) it cost a frame per removal.
    #[inline(always)]
    fn remove(&mut self, handle: u32) {
        self.unplace(handle);
        self.free_handles.push(handle);
        self.len -= 1;
    }

    /// `handle`'s slot moves to `expiry`, behind every slot with the same.
    fn reposition(&mut self, handle: u32, expiry: Expiry) {
        self.unplace(handle);
        let hash = self.node(handle).hash;
        self.place(handle, expiry, hash);
    }

    fn clear(&mut self) {
        self.nodes.clear();
        self.free_handles.clear();
        self.heap.clear();
        self.head = Node::NONE;
        self.tail = Node::NONE;
        self.len = 0;
        self.fit_capacity();
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn heap_key(&self, at: usize) -> u128 {
        self.node(self.heap[at]).key
    }

    /// Removes the heap's slot at `at`: the last one takes its place.
    #[inline(never)]
    fn heap_remove(&mut self, at: usize) {
        let last = self.heap.pop().expect("a heap slot per heap handle");
        if at < self.heap.len() {
            self.put(at, last);
            if at > 0 && self.heap_key(at) < self.heap_key((at - 1) / 2) {
                self.sift_up(at);
            } else {
                self.sift_down(at);
            }
        }
    }

    fn sift_up(&mut self, mut at: usize) {
        let handle = self.heap[at];
        let key = self.node(handle).key;
        while at > 0 {
            let parent = (at - 1) / 2;
            let above = self.heap[parent];
            if self.node(above).key <= key {
                break;
            }
            self.put(at, above);
            at = parent;
        }
        self.put(at, handle);
    }

    /// The slot at `at` mostly belongs near the bottom (it came from the
    /// end of the heap): it goes all the way down first, choosing the
    /// smaller child (one comparison per level instead of two), then up as
    /// far as it must.
    fn sift_down(&mut self, mut at: usize) {
        let handle = self.heap[at];
        let len = self.heap.len();
        let mut child = 2 * at + 1;
        while child + 1 < len {
            if self.heap_key(child + 1) < self.heap_key(child) {
                child += 1;
            }
            self.put(at, self.heap[child]);
            at = child;
            child = 2 * at + 1;
        }
        if child < len {
            self.put(at, self.heap[child]);
            at = child;
        }
        self.put(at, handle);
        self.sift_up(at);
    }

    fn put(&mut self, at: usize, handle: u32) {
        self.heap[at] = handle;
        self.node_mut(handle).next = Link(at as u32);
    }

    /// Gives back memory after the cache shrank (a flush): at most half
    /// again what is used is kept. Nodes stay as numerous as the most
    /// sessions ever cached at once (32 bytes each, and 4 per free one).
    fn fit_capacity(&mut self) {
        let used = self.heap.len();
        if self.heap.capacity() > used + used / 2 + 64 {
            self.heap.shrink_to(used + used / 4 + 64);
        }
        let free = self.free_handles.len();
        if self.free_handles.capacity() > 2 * free + 64 {
            self.free_handles.shrink_to(free + free / 4 + 64);
        }
    }
}

/// Room for one more element, growing by an eighth rather than doubling:
/// the expiry order's nodes are a third of the cache's memory, and
/// doubling would leave up to half of it unused. The price: an element is
/// copied about nine times over the growth instead of about twice.
fn grow_by_an_eighth<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 8 + 64);
    }
}

/// A thread-safe, size-bounded, expiry-ordered session cache.
pub struct SessionCache<S> {
    shards: ShardLocks<Shard<S>, SHARDS>,
    counters: Box<[RowCounters; READER_ROWS]>,
    order: ExclusiveLock<Order>,
    capacity: AtomicUsize,
    evictions: AtomicU64,
    seed: u64,
    /// Whether adding the session already cached moves it to `expiry`.
    readd_moves: bool,
}

impl<S: CachedSession> SessionCache<S> {
    /// `capacity` 0 means unlimited, as in libssl.
    pub fn new(capacity: usize) -> SessionCache<S> {
        SessionCache {
            shards: ShardLocks::new(|| Shard {
                table: HashTable::new(),
                clean_capacity: 0,
            }),
            counters: Box::default(),
            order: ExclusiveLock::new(Order::default()),
            capacity: AtomicUsize::new(capacity),
            evictions: AtomicU64::new(0),
            // A per-cache random seed: a peer choosing session IDs cannot
            // aim them at one bucket.
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5e55_cac4_e000_u64),
            readd_moves: true,
        }
    }

    /// The cache, with adding the session already cached leaving it where
    /// it is in expiry order (libssl 3.5.7 and later) rather than moving it.
    pub fn keeping_place_on_readd(mut self) -> SessionCache<S> {
        self.readd_moves = false;
        self
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

    fn read_shard(&self, hash: u64) -> ReadGuard<'_, Shard<S>> {
        self.shards.read(Self::shard_index(hash))
    }

    fn write_shard(&self, hash: u64) -> WriteGuard<'_, Shard<S>> {
        self.shards.write(Self::shard_index(hash))
    }

    // A panic while the lock was held cannot leave the order half updated
    // in a way that breaks memory safety; the order is used as it was left
    // rather than turning every later call into a panic.
    fn order(&self) -> WriteGuard<'_, Order> {
        self.order.lock()
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
        self.order().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> CacheStats {
        let sum = |f: fn(&RowCounters) -> &AtomicU64| -> u64 {
            self.counters
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
    /// 3.0 re-links it; see [`SessionCache::keeping_place_on_readd`]) and
    /// `session` comes back in `released`. A
    /// different session under the same key replaces the old one, which is
    /// released without counting as a removal. A new entry first evicts, in
    /// expiry order, while the number of entries *including the new one* is
    /// at least the capacity — so a capacity of `n > 1` holds `n - 1`
    /// sessions, exactly like libssl 3.0. Eviction stops at an entry with an
    /// empty session ID, which libssl's `remove_session_lock` refuses.
    pub fn insert(&self, key: SessionKey, session: S, expiry: Expiry) -> InsertOutcome<S> {
        let mut evicted = Evicted::default();
        let Inserted { added, released } =
            self.insert_into(key.as_key_ref(), session, expiry, &mut evicted);
        InsertOutcome {
            added,
            released,
            evicted: evicted.into_iter().collect(),
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
        evicted: &mut Evicted<S>,
    ) -> Inserted<S> {
        let hash = self.hash_id(key.id);
        let capacity = self.capacity();
        let mut order = self.order();
        let mut released = None;
        // One write lock on the shard for the lookup and the insert: every
        // atomic read-modify-write counts at this size of operation.
        let mut shard = self.write_shard(hash);
        if let Ok(found) = shard.table.find_entry(hash, |e| e.matches(&key)) {
            if found.get().session.is_same(&session) {
                if self.readd_moves {
                    order.reposition(found.get().handle(), expiry);
                }
                return Inserted {
                    added: false,
                    released: Some(session),
                };
            }
            let (old, _) = found.remove();
            order.remove(old.handle());
            released = Some(old.session);
        }

        if capacity > 0 && order.len() + 1 >= capacity {
            // A victim may live in this very shard.
            drop(shard);
            let before = evicted.len();
            while order.len() + 1 >= capacity {
                match self.take_front(&mut order, |_, session| {
                    // libssl's eviction refuses (and stops at) an empty ID.
                    !session.has_empty_id()
                }) {
                    Some(victim) => evicted.push(victim),
                    None => break,
                }
            }
            let count = evicted.len() - before;
            if count > 0 {
                self.evictions.fetch_add(count as u64, Ordering::Relaxed);
            }
            shard = self.write_shard(hash);
        }

        let handle = order.add(expiry, hash);
        let hash_of = |e: &Entry<S>| order.hash_of(e.handle());
        shard.make_room(hash_of);
        shard
            .table
            .insert_unique(hash, Entry::new(session, handle, &key), hash_of);
        Inserted {
            added: true,
            released,
        }
    }

    /// Removes the session first in expiry order if `take` agrees.
    fn take_front(&self, order: &mut Order, take: impl Fn(&Slot, &S) -> bool) -> Option<S> {
        loop {
            let slot = order.first()?;
            let mut shard = self.write_shard(slot.hash);
            match shard
                .table
                .find_entry(slot.hash, |e| e.handle() == slot.handle)
            {
                Ok(found) => {
                    if !take(&slot, &found.get().session) {
                        return None;
                    }
                    let (entry, _) = found.remove();
                    order.remove(slot.handle);
                    return Some(entry.session);
                }
                // Every slot has its entry (both change under the order
                // lock); should one not, the slot goes rather than loop.
                Err(_) => {
                    order.remove(slot.handle);
                }
            }
        }
    }

    /// Looks a key up, counting a hit or a miss. The returned clone is the
    /// caller's own reference.
    pub fn get(&self, key: &SessionKey) -> Option<S>
    where
        S: Clone,
    {
        let hash = self.hash(key);
        // One row for the shard's reader count and the statistics.
        let row = this_threads_row();
        let found = self
            .shards
            .read_in_row(Self::shard_index(hash), row)
            .table
            .find(hash, |e| e.matches(&key.as_key_ref()))
            .map(|e| e.session.clone());
        let counters = &self.counters[row];
        let counter = if found.is_some() {
            &counters.hits
        } else {
            &counters.misses
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
        self.read_shard(hash)
            .table
            .find(hash, |e| e.matches(&key.as_key_ref()))
            .map(|e| e.session.clone())
    }

    /// [`SessionCache::contains`] for a key borrowed from the caller.
    pub fn contains_ref(&self, key: SessionKeyRef<'_>) -> bool {
        let hash = self.hash_id(key.id);
        self.read_shard(hash)
            .table
            .find(hash, |e| e.matches(&key))
            .is_some()
    }

    /// Whether a session is cached under `key` (no statistics).
    pub fn contains(&self, key: &SessionKey) -> bool {
        self.contains_ref(key.as_key_ref())
    }

    /// Whether a session that `is_it` recognises is cached under `key` (no
    /// statistics, no reference taken).
    pub fn contains_where(&self, key: &SessionKey, is_it: impl Fn(&S) -> bool) -> bool {
        let hash = self.hash(key);
        self.read_shard(hash)
            .table
            .find(hash, |e| e.matches(&key.as_key_ref()) && is_it(&e.session))
            .is_some()
    }

    /// Removes whatever session is cached under `key`.
    pub fn remove(&self, key: &SessionKey) -> Option<S> {
        self.remove_ref(key.as_key_ref(), |_| false)
    }

    /// [`SessionCache::remove`] for a key borrowed from the caller.
    /// `is_key_owner` says whether a cached session is the one `key` was
    /// read from: that one matches without comparing (its version and ID
    /// are the key), which spares a removal of the cached object itself,
    /// the usual case, reading the ID again.
    #[inline]
    pub fn remove_ref(
        &self,
        key: SessionKeyRef<'_>,
        is_key_owner: impl Fn(&S) -> bool,
    ) -> Option<S> {
        let hash = self.hash_id(key.id);
        let mut order = self.order();
        let mut shard = self.write_shard(hash);
        let (entry, _) = shard
            .table
            .find_entry(hash, |e| is_key_owner(&e.session) || e.matches(&key))
            .ok()?
            .remove();
        order.remove(entry.handle());
        Some(entry.session)
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
        let shard = self.read_shard(hash);
        let Some(found) = shard.table.find(hash, |e| e.matches(&key.as_key_ref())) else {
            return false;
        };
        if !is_it(&found.session) {
            return false;
        }
        order.reposition(found.handle(), expiry);
        true
    }

    /// The session cached under `key`'s ID that `is_it` recognises now has
    /// `key`'s version (the application changed it); returns whether one
    /// did. Its place in the table does not change: the hash is of the ID.
    pub fn version_changed_where(&self, key: &SessionKey, is_it: impl Fn(&S) -> bool) -> bool {
        let hash = self.hash(key);
        let mut shard = self.write_shard(hash);
        // The old version is unknown here: match on the ID and identity.
        let Ok(mut found) = shard
            .table
            .find_entry(hash, |e| e.session.has_id(key.id()) && is_it(&e.session))
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

    /// Removes sessions from the front of expiry order while `expired`
    /// says the session there has expired (libssl's flush reads each
    /// session's own expiry, which a re-add may have changed without
    /// moving it: see [`SessionCache::keeping_place_on_readd`]).
    pub fn take_expired_by(&self, expired: impl Fn(&S) -> bool) -> Vec<S> {
        let mut order = self.order();
        let mut out = Vec::new();
        while let Some(s) = self.take_front(&mut order, |_, session| expired(session)) {
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
        order.clear();
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
                Slot::new(pair[0], 9, 0, 0) < Slot::new(pair[1], 1, 0, 1),
                "{pair:?}"
            );
        }
        for e in expiries {
            let slot = Slot::new(e, 5, 7, 3);
            assert_eq!((slot.expiry(), slot.seq(), slot.handle), (e, 5, 3));
            // equal expiries: insertion order
            assert!(Slot::new(e, 5, 7, 3) < Slot::new(e, 6, 0, 2));
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
    fn contains_where_recognises_the_session_itself() {
        let cache = SessionCache::new(0);
        let (a, b) = (sess("a"), sess("b"));
        put(&cache, key(3), a.clone(), at(10));
        assert!(cache.contains_where(&key(3), |s| s.is_same(&a)));
        assert!(
            !cache.contains_where(&key(3), |s| s.is_same(&b)),
            "another session"
        );
        assert!(
            !cache.contains_where(&key(4), |s| s.is_same(&a)),
            "another key"
        );
        assert_eq!(Arc::strong_count(&a.0), 2, "no reference taken");
    }

    #[test]
    fn a_version_change_that_makes_two_cached_sessions_share_a_key_loses_nothing() {
        // The application gives a cached session the version (and so the
        // key) of another cached one. libssl's table then holds both under
        // one key and corrupts itself on a later removal (README, "libssl's
        // behaviour is an accident"); here every entry keeps its reference
        // and leaves exactly once, whatever the table finds first.
        for readd_first in [false, true] {
            let cache = SessionCache::new(0);
            let (a, b) = (sess("a"), sess("b"));
            let id = [9u8; 32];
            let v12 = SessionKey::new(0x0303, &id).unwrap();
            let v13 = SessionKey::new(0x0304, &id).unwrap();
            put(&cache, v12, a.clone(), at(10));
            put(&cache, v13, b.clone(), at(20));
            *a.0.1.lock().unwrap() = Some(v13);
            assert!(cache.version_changed_where(&v13, |s| s.is_same(&a)));
            assert_eq!(cache.len(), 2);
            assert!(cache.contains(&v13) && !cache.contains(&v12));
            if readd_first {
                // A re-add of either: it repositions itself or replaces the
                // other (then cached a second time).
                let out = cache.insert(v13, a.clone(), at(30));
                drop(out);
                let out = cache.insert(v13, b.clone(), at(40));
                drop(out);
            }
            let mut left = cache.len();
            while let Some(s) = cache.remove(&v13) {
                drop(s);
                left -= 1;
            }
            assert_eq!(left, 0, "every entry removable by the shared key");
            assert!(cache.take_all().is_empty());
            assert_eq!(Arc::strong_count(&a.0), 1, "no reference of a kept");
            assert_eq!(Arc::strong_count(&b.0), 1, "no reference of b kept");
        }
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
    fn removal_by_the_key_owner_finds_it_without_comparing_and_others_by_key() {
        let cache = SessionCache::new(0);
        let (a, b) = (sess("a"), sess("b"));
        put(&cache, key(1), a.clone(), at(1));
        put(&cache, key(2), b.clone(), at(2));
        // The owner's key, read from it: its entry is taken as the match
        // without asking its key (the clone says "no key" now).
        *a.0.1.lock().unwrap() = None;
        let k1 = key(1);
        let removed = cache.remove_ref(k1.as_key_ref(), |c| c.is_same(&a));
        assert!(removed.is_some_and(|r| r.is_same(&a)));
        // Another object than the one cached under the key: found by key.
        let k2 = key(2);
        let removed = cache.remove_ref(k2.as_key_ref(), |c| c.is_same(&a));
        assert!(removed.is_some_and(|r| r.is_same(&b)));
        assert!(cache.is_empty());
    }

    #[test]
    fn steady_removals_and_inserts_keep_tables_and_order_at_their_size() {
        let cache = SessionCache::new(0);
        // Chosen so each shard's table sits just below the fill at which
        // hashbrown doubles it.
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
            (0..SHARDS).map(|i| c.shards.read(i).table.capacity()).sum()
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
        assert_eq!(order.len(), n as usize, "one slot per session");
        assert!(order.heap.is_empty(), "every session came in order");
        assert!(order.nodes.len() <= n as usize + 1, "handles are reused");
        assert!(order.nodes.capacity() <= order.nodes.len() + order.nodes.len() / 8 + 64);
    }

    #[test]
    fn order_matches_a_sorted_model_through_adds_removals_and_moves() {
        let mut order = Order::default();
        // handle -> (expiry, seq) for the live ones; seq as the order gives
        // it out, so the model's order is the order's
        let mut model: Vec<(u32, Expiry, u64)> = Vec::new();
        let mut next_seq = 0u64;
        let mut x = 0x9e37_79b9_u64;
        let mut rand = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..20_000 {
            let expiry = at(rand(50) as i64);
            match rand(4) {
                0 | 1 => {
                    let handle = order.add(expiry, 0);
                    model.push((handle, expiry, next_seq));
                    next_seq += 1;
                }
                2 if !model.is_empty() => {
                    let i = rand(model.len() as u64) as usize;
                    let (handle, ..) = model.swap_remove(i);
                    order.remove(handle);
                }
                3 if !model.is_empty() => {
                    let i = rand(model.len() as u64) as usize;
                    order.reposition(model[i].0, expiry);
                    model[i] = (model[i].0, expiry, next_seq);
                    next_seq += 1;
                }
                _ => {}
            }
            let first = model
                .iter()
                .min_by_key(|(_, e, seq)| (*e, *seq))
                .map(|m| m.0);
            assert_eq!(order.first().map(|s| s.handle), first);
            assert_eq!(order.len(), model.len());
        }
        // and everything comes out in (expiry, insertion) order
        model.sort_by_key(|(_, e, seq)| (*e, *seq));
        for (handle, ..) in model {
            let first = order.first().unwrap();
            assert_eq!(first.handle, handle);
            order.remove(handle);
        }
        assert_eq!(order.len(), 0);
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
        let live: usize = (0..SHARDS).map(|i| cache.shards.read(i).table.len()).sum();
        assert_eq!(live, cache.len());
    }
}
