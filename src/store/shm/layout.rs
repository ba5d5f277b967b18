//! The bytes of the shared-memory store: a header, one header per shard
//! (its lock, its clock and an index of its slots), then the shards' slots.
//!
//! ```text
//! 0            file header (HEADER_LEN): magic, layout, geometry
//! HEADER_LEN   shard headers, SHARD_HEADER_LEN each:
//!                0    lock (a robust process-shared mutex, LOCK_LEN bytes)
//!                64   clock: the next insertion stamp (u64)
//!                128  index: SLOTS_PER_SHARD × (key hash u64, expiry i64, stamp u64)
//! slots_offset SLOTS_PER_SHARD slots of SLOT_LEN bytes per shard, shard by shard
//! ```
//!
//! A slot: checksum (u64 over the rest of what it holds) | state (u32) |
//! key length (u16) | 2 reserved | value length (u32) | 4 reserved |
//! expiry (i64, Unix seconds) | stamp (u64) | key hash (u64) | key
//! (KEY_MAX) | value (VALUE_MAX). Numbers are little-endian.
//!
//! Every byte here may have been written by a process that died half way or
//! by anyone who can write the file: each read is bounds-checked and a slot
//! counts only if its checksum, state and lengths hold. The index is a hint
//! for finding slots quickly; what a slot says is what counts, and a repair
//! rebuilds the index from the slots.

pub const MAGIC: [u8; 8] = *b"SESSCSHM";
/// Changes whenever the meaning of any byte changes.
pub const LAYOUT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 4096;
pub const SHARD_HEADER_LEN: usize = 2048;
pub const LOCK_LEN: usize = 64;
const CLOCK_AT: usize = 64;
const INDEX_AT: usize = 128;
const INDEX_ENTRY_LEN: usize = 24;
pub const SLOTS_PER_SHARD: usize = 64;
pub const SLOT_LEN: usize = 2048;
const SLOT_HEAD_LEN: usize = 48;
pub const KEY_MAX: usize = 128;
/// The largest value (sealed session) a slot holds.
pub const VALUE_MAX: usize = SLOT_LEN - SLOT_HEAD_LEN - KEY_MAX;
pub const SHARD_SLOTS_LEN: usize = SLOTS_PER_SHARD * SLOT_LEN;

const STATE_LIVE: u32 = 1;
/// A removed session: remembered until its expiry, so that a copy another
/// process holds is not resumed.
const STATE_REMOVED: u32 = 2;

const _: () = assert!(INDEX_AT + SLOTS_PER_SHARD * INDEX_ENTRY_LEN <= SHARD_HEADER_LEN);
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= LOCK_LEN);

/// Where everything is in a mapping of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub total: usize,
    pub shards: usize,
}

impl Geometry {
    /// The most shards that fit in `total` bytes (at least one).
    pub fn for_size(total: usize) -> Option<Geometry> {
        let per_shard = SHARD_HEADER_LEN + SHARD_SLOTS_LEN;
        let shards = total.checked_sub(HEADER_LEN + 4096)? / per_shard;
        let g = Geometry { total, shards };
        (shards >= 1
            && shards <= u32::MAX as usize
            && g.slots_offset() + shards * SHARD_SLOTS_LEN <= total)
            .then_some(g)
    }

    pub fn shard_header_offset(&self, shard: usize) -> usize {
        HEADER_LEN + shard * SHARD_HEADER_LEN
    }

    /// Slots start on a page boundary after the shard headers.
    pub fn slots_offset(&self) -> usize {
        (HEADER_LEN + self.shards * SHARD_HEADER_LEN).next_multiple_of(4096)
    }

    pub fn shard_slots_offset(&self, shard: usize) -> usize {
        self.slots_offset() + shard * SHARD_SLOTS_LEN
    }

    pub fn capacity(&self) -> usize {
        self.shards * SLOTS_PER_SHARD
    }

    /// The shard a key hash belongs to (other bits than the index compares).
    pub fn shard_of(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) % self.shards
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The file header without the magic (written last, once everything else
/// is in place, so that a joining process never sees a half-made store).
pub fn write_header(header: &mut [u8], g: &Geometry) {
    header[..HEADER_LEN].fill(0);
    put_u32(header, 8, LAYOUT_VERSION);
    put_u32(header, 12, SLOT_LEN as u32);
    put_u64(header, 16, g.total as u64);
    put_u32(header, 24, g.shards as u32);
    put_u32(header, 28, SLOTS_PER_SHARD as u32);
}

pub fn write_magic(header: &mut [u8]) {
    header[..8].copy_from_slice(&MAGIC);
}

/// Whether `header` (the first bytes of a mapping) describes a store of
/// exactly this geometry and layout.
pub fn check_header(header: &[u8], g: &Geometry) -> Result<(), &'static str> {
    if header.get(..8) != Some(&MAGIC[..]) {
        return Err("not a sesscache store (wrong magic)");
    }
    if u32_at(header, 8) != LAYOUT_VERSION || u32_at(header, 12) != SLOT_LEN as u32 {
        return Err("made by another layout version");
    }
    if u64_at(header, 16) != g.total as u64
        || u32_at(header, 24) != g.shards as u32
        || u32_at(header, 28) != SLOTS_PER_SHARD as u32
    {
        return Err("of another size than SESSCACHE_STORE_SIZE");
    }
    Ok(())
}

/// FNV-1a, 64 bits: the slot checksum (against torn writes and garbage; the
/// seal is what authenticates) and the key hash.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A key's hash; never 0, which marks a free index entry.
pub fn key_hash(key: &[u8]) -> u64 {
    fnv1a(&[key]) | 1
}

/// What a valid slot holds.
#[derive(Debug, PartialEq, Eq)]
struct Slot<'a> {
    state: u32,
    expires: i64,
    stamp: u64,
    hash: u64,
    key: &'a [u8],
    value: &'a [u8],
}

/// Parses one slot; `None` for anything that is not a complete, intact
/// entry.
fn parse_slot(b: &[u8]) -> Option<Slot<'_>> {
    if b.len() < SLOT_LEN {
        return None;
    }
    let state = u32_at(b, 8);
    let key_len = usize::from(u16::from_le_bytes([b[12], b[13]]));
    let value_len = u32_at(b, 16) as usize;
    if !(state == STATE_LIVE || state == STATE_REMOVED)
        || key_len > KEY_MAX
        || value_len > VALUE_MAX
    {
        return None;
    }
    let key_at = SLOT_HEAD_LEN;
    let value_at = SLOT_HEAD_LEN + KEY_MAX;
    let key = &b[key_at..key_at + key_len];
    let value = &b[value_at..value_at + value_len];
    if u64_at(b, 0) != fnv1a(&[&b[8..SLOT_HEAD_LEN], key, value]) {
        return None;
    }
    Some(Slot {
        state,
        expires: u64_at(b, 24) as i64,
        stamp: u64_at(b, 32),
        hash: u64_at(b, 40),
        key,
        value,
    })
}

/// A point inside a slot write where the test hook may stop the process.
pub type WriteHook<'a> = &'a dyn Fn();

/// Writes a whole slot; `halfway` runs after the first half of the value
/// (the test hook that stops a writer mid-slot).
fn write_slot(b: &mut [u8], slot: &Slot<'_>, halfway: WriteHook<'_>) {
    b[..SLOT_HEAD_LEN].fill(0);
    put_u32(b, 8, slot.state);
    b[12..14].copy_from_slice(&(slot.key.len() as u16).to_le_bytes());
    put_u32(b, 16, slot.value.len() as u32);
    put_u64(b, 24, slot.expires as u64);
    put_u64(b, 32, slot.stamp);
    put_u64(b, 40, slot.hash);
    let key_at = SLOT_HEAD_LEN;
    let value_at = SLOT_HEAD_LEN + KEY_MAX;
    b[key_at..key_at + slot.key.len()].copy_from_slice(slot.key);
    let half = slot.value.len() / 2;
    b[value_at..value_at + half].copy_from_slice(&slot.value[..half]);
    halfway();
    b[value_at + half..value_at + slot.value.len()].copy_from_slice(&slot.value[half..]);
    let check = fnv1a(&[
        &b[8..SLOT_HEAD_LEN],
        &b[key_at..key_at + slot.key.len()],
        &b[value_at..value_at + slot.value.len()],
    ]);
    put_u64(b, 0, check);
}

/// Whether a slot holds `key` and `value`.
pub fn fits(key: &[u8], value: &[u8]) -> bool {
    key.len() <= KEY_MAX && value.len() <= VALUE_MAX
}

/// What a put did.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Stored,
    /// Stored in place of a live, unexpired entry of another key.
    StoredEvicting,
    TooLarge,
}

/// One shard, borrowed while its lock is held.
pub struct Shard<'a> {
    header: &'a mut [u8],
    slots: &'a mut [u8],
}

/// What [`Shard::check`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShardReport {
    pub live: usize,
    pub removed: usize,
    pub empty: usize,
    pub problems: Vec<String>,
}

impl<'a> Shard<'a> {
    /// `header` is the shard header (SHARD_HEADER_LEN bytes, lock included),
    /// `slots` its SHARD_SLOTS_LEN bytes of slots.
    pub fn new(header: &'a mut [u8], slots: &'a mut [u8]) -> Shard<'a> {
        assert!(header.len() >= SHARD_HEADER_LEN && slots.len() >= SHARD_SLOTS_LEN);
        Shard { header, slots }
    }

    fn slot(&self, i: usize) -> &[u8] {
        &self.slots[i * SLOT_LEN..(i + 1) * SLOT_LEN]
    }

    fn index_entry(&self, i: usize) -> (u64, i64, u64) {
        let at = INDEX_AT + i * INDEX_ENTRY_LEN;
        (
            u64_at(self.header, at),
            u64_at(self.header, at + 8) as i64,
            u64_at(self.header, at + 16),
        )
    }

    fn set_index_entry(&mut self, i: usize, hash: u64, expires: i64, stamp: u64) {
        let at = INDEX_AT + i * INDEX_ENTRY_LEN;
        put_u64(self.header, at, hash);
        put_u64(self.header, at + 8, expires as u64);
        put_u64(self.header, at + 16, stamp);
    }

    /// The slot holding `key` (live or removed), found through the index.
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        self.find_parsed(key, hash).map(|(i, _)| i)
    }

    /// The same, with what the slot holds (parsed once: the parse checks
    /// the slot's checksum over all its bytes).
    fn find_parsed(&self, key: &[u8], hash: u64) -> Option<(usize, Slot<'_>)> {
        (0..SLOTS_PER_SHARD).find_map(|i| {
            if self.index_entry(i).0 != hash {
                return None;
            }
            parse_slot(self.slot(i))
                .filter(|s| s.hash == hash && s.key == key)
                .map(|s| (i, s))
        })
    }

    fn next_stamp(&mut self) -> u64 {
        let stamp = u64_at(self.header, CLOCK_AT);
        put_u64(self.header, CLOCK_AT, stamp.wrapping_add(1));
        stamp
    }

    /// The value of a live, unexpired entry.
    pub fn get(&self, key: &[u8], now: i64) -> Option<Vec<u8>> {
        let (_, s) = self.find_parsed(key, key_hash(key))?;
        (s.state == STATE_LIVE && s.expires > now).then(|| s.value.to_vec())
    }

    /// Whether `key` was removed (and the removal has not expired).
    pub fn removed(&self, key: &[u8], now: i64) -> bool {
        self.find_parsed(key, key_hash(key))
            .is_some_and(|(_, s)| s.state == STATE_REMOVED && s.expires > now)
    }

    /// Stores `value` under `key` until `expires`. Into the key's own slot,
    /// else a free one, else the one to evict: expired first, else the
    /// oldest.
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        expires: i64,
        now: i64,
        halfway: WriteHook<'_>,
    ) -> Put {
        if !fits(key, value) {
            return Put::TooLarge;
        }
        let hash = key_hash(key);
        let (i, evicting) = match self.find(key, hash) {
            Some(i) => (i, false),
            None => self.victim(now),
        };
        self.write(
            i,
            &Slot {
                state: STATE_LIVE,
                expires,
                stamp: 0,
                hash,
                key,
                value,
            },
            halfway,
        );
        if evicting {
            Put::StoredEvicting
        } else {
            Put::Stored
        }
    }

    /// Marks `key` removed until `until` (or, if its entry is here, until
    /// the later of that and the entry's own expiry).
    pub fn remove(&mut self, key: &[u8], until: i64, now: i64, halfway: WriteHook<'_>) {
        if key.len() > KEY_MAX {
            return;
        }
        let hash = key_hash(key);
        let (i, until) = match self.find_parsed(key, hash) {
            Some((i, s)) => (i, s.expires.max(until)),
            None => (self.victim(now).0, until),
        };
        self.write(
            i,
            &Slot {
                state: STATE_REMOVED,
                expires: until,
                stamp: 0,
                hash,
                key,
                value: &[],
            },
            halfway,
        );
    }

    /// Returns a live entry's value and marks it removed in the same step:
    /// of all takers of one key, one gets it.
    pub fn take(&mut self, key: &[u8], now: i64, halfway: WriteHook<'_>) -> Option<Vec<u8>> {
        let value = self.get(key, now)?;
        self.remove(key, now, now, halfway);
        Some(value)
    }

    /// The slot a new key goes into, and whether that pushes out a live,
    /// unexpired entry: a free or unparsable slot, else an expired one,
    /// else the oldest.
    fn victim(&self, now: i64) -> (usize, bool) {
        let mut oldest = (0, u64::MAX);
        let mut expired = None;
        for i in 0..SLOTS_PER_SHARD {
            let (hash, expires, stamp) = self.index_entry(i);
            if hash == 0 {
                return (i, false);
            }
            if expires <= now && expired.is_none() {
                expired = Some(i);
            }
            if stamp < oldest.1 {
                oldest = (i, stamp);
            }
        }
        if let Some(i) = expired {
            // The index said expired; an unparsable slot is free too.
            return (i, false);
        }
        let live = parse_slot(self.slot(oldest.0)).is_some_and(|s| s.state == STATE_LIVE);
        (oldest.0, live)
    }

    fn write(&mut self, i: usize, slot: &Slot<'_>, halfway: WriteHook<'_>) {
        let stamp = self.next_stamp();
        let slot = Slot { stamp, ..*slot };
        // The index entry goes first: should the writer die in the slot, the
        // repair finds the slot torn and frees both.
        self.set_index_entry(i, slot.hash, slot.expires, stamp);
        write_slot(
            &mut self.slots[i * SLOT_LEN..(i + 1) * SLOT_LEN],
            &slot,
            halfway,
        );
    }

    /// After a holder died: frees every slot that is not intact and rebuilds
    /// the index and the clock from the slots. Returns the slots freed.
    pub fn repair(&mut self) -> usize {
        let mut freed = 0;
        let mut clock = 0;
        for i in 0..SLOTS_PER_SHARD {
            let entry = parse_slot(self.slot(i)).map(|s| (s.hash, s.expires, s.stamp));
            match entry {
                Some((hash, expires, stamp)) if hash == key_hash(self.slot_key(i)) => {
                    clock = clock.max(stamp.wrapping_add(1));
                    self.set_index_entry(i, hash, expires, stamp);
                }
                _ => {
                    if self.index_entry(i).0 != 0 || u32_at(self.slot(i), 8) != 0 {
                        freed += 1;
                    }
                    self.slots[i * SLOT_LEN..i * SLOT_LEN + SLOT_HEAD_LEN].fill(0);
                    self.set_index_entry(i, 0, 0, 0);
                }
            }
        }
        put_u64(self.header, CLOCK_AT, clock);
        freed
    }

    fn slot_key(&self, i: usize) -> &[u8] {
        parse_slot(self.slot(i)).map_or(&[], |s| s.key)
    }

    /// A consistency check (for tests): every index entry that is in use
    /// points at an intact slot that agrees with it, no key is in two slots,
    /// every key is in the shard its hash names.
    pub fn check(&self, g: &Geometry, shard: usize) -> ShardReport {
        let mut r = ShardReport::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..SLOTS_PER_SHARD {
            let (hash, expires, stamp) = self.index_entry(i);
            match parse_slot(self.slot(i)) {
                None if hash == 0 => r.empty += 1,
                None => r.problems.push(format!(
                    "shard {shard} slot {i}: index in use, slot not intact"
                )),
                Some(_) if hash == 0 => r
                    .problems
                    .push(format!("shard {shard} slot {i}: intact slot not indexed")),
                Some(s) => {
                    if (s.hash, s.expires, s.stamp) != (hash, expires, stamp)
                        || s.hash != key_hash(s.key)
                    {
                        r.problems
                            .push(format!("shard {shard} slot {i}: index disagrees with slot"));
                    }
                    if g.shard_of(s.hash) != shard {
                        r.problems.push(format!(
                            "shard {shard} slot {i}: key of shard {}",
                            g.shard_of(s.hash)
                        ));
                    }
                    if !seen.insert(s.key.to_vec()) {
                        r.problems
                            .push(format!("shard {shard} slot {i}: key twice"));
                    }
                    if s.stamp >= u64_at(self.header, CLOCK_AT) {
                        r.problems
                            .push(format!("shard {shard} slot {i}: stamp ahead of the clock"));
                    }
                    if s.state == STATE_LIVE {
                        r.live += 1
                    } else {
                        r.removed += 1
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_bytes() -> (Vec<u8>, Vec<u8>) {
        (vec![0u8; SHARD_HEADER_LEN], vec![0u8; SHARD_SLOTS_LEN])
    }

    /// A small xorshift generator: the tests need arbitrary bytes, not
    /// good randomness.
    struct Bytes(u64);
    impl Bytes {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn fill(&mut self, b: &mut [u8]) {
            for x in b {
                *x = self.next() as u8;
            }
        }
    }

    const NONE: WriteHook<'static> = &|| {};

    #[test]
    fn put_get_remove_take() {
        let (mut h, mut s) = shard_bytes();
        let mut shard = Shard::new(&mut h, &mut s);
        assert_eq!(shard.put(b"k1", b"value1", 100, 10, NONE), Put::Stored);
        assert_eq!(shard.get(b"k1", 10).as_deref(), Some(&b"value1"[..]));
        assert_eq!(shard.get(b"k1", 100), None, "expired at its expiry");
        assert_eq!(shard.get(b"k2", 10), None);
        assert!(!shard.removed(b"k1", 10));
        shard.remove(b"k1", 50, 10, NONE);
        assert_eq!(shard.get(b"k1", 10), None);
        assert!(shard.removed(b"k1", 10));
        assert!(
            shard.removed(b"k1", 99),
            "a removal lasts as long as the entry would have"
        );
        assert!(!shard.removed(b"k1", 100));
        shard.remove(b"absent", 30, 10, NONE);
        assert!(shard.removed(b"absent", 29));
        assert_eq!(shard.put(b"k3", b"v3", 100, 10, NONE), Put::Stored);
        assert_eq!(shard.take(b"k3", 10, NONE).as_deref(), Some(&b"v3"[..]));
        assert_eq!(shard.take(b"k3", 10, NONE), None, "only one taker gets it");
        assert!(shard.removed(b"k3", 10));
        assert_eq!(shard.put(b"k3", b"again", 100, 10, NONE), Put::Stored);
        assert_eq!(shard.get(b"k3", 10).as_deref(), Some(&b"again"[..]));
        assert!(
            shard
                .check(
                    &Geometry {
                        total: 0,
                        shards: 1
                    },
                    0
                )
                .problems
                .is_empty()
        );
    }

    #[test]
    fn too_large_stays_out() {
        let (mut h, mut s) = shard_bytes();
        let mut shard = Shard::new(&mut h, &mut s);
        assert_eq!(
            shard.put(b"k", &vec![7u8; VALUE_MAX + 1], 100, 0, NONE),
            Put::TooLarge
        );
        assert_eq!(
            shard.put(&[b'k'; KEY_MAX + 1], b"v", 100, 0, NONE),
            Put::TooLarge
        );
        assert_eq!(
            shard.put(b"k", &vec![7u8; VALUE_MAX], 100, 0, NONE),
            Put::Stored
        );
        assert_eq!(shard.get(b"k", 0).map(|v| v.len()), Some(VALUE_MAX));
    }

    #[test]
    fn full_shard_evicts_expired_then_oldest() {
        let (mut h, mut s) = shard_bytes();
        let mut shard = Shard::new(&mut h, &mut s);
        for n in 0..SLOTS_PER_SHARD {
            let expires = if n == 5 { 20 } else { 1000 };
            assert_eq!(
                shard.put(format!("k{n}").as_bytes(), b"v", expires, 10, NONE),
                Put::Stored
            );
        }
        assert_eq!(
            shard.put(b"new1", b"v", 1000, 30, NONE),
            Put::Stored,
            "the expired one goes"
        );
        assert_eq!(shard.get(b"k5", 10), None);
        assert_eq!(
            shard.put(b"new2", b"v", 1000, 30, NONE),
            Put::StoredEvicting
        );
        assert_eq!(shard.get(b"k0", 30), None, "then the oldest");
        assert!(shard.get(b"k1", 30).is_some());
        assert!(shard.get(b"new1", 30).is_some() && shard.get(b"new2", 30).is_some());
        assert!(
            shard
                .check(
                    &Geometry {
                        total: 0,
                        shards: 1
                    },
                    0
                )
                .problems
                .is_empty()
        );
    }

    #[test]
    fn torn_slot_is_not_read_and_repair_frees_it() {
        let (mut h, mut s) = shard_bytes();
        {
            let mut shard = Shard::new(&mut h, &mut s);
            shard.put(b"whole", b"abcdef", 100, 0, NONE);
            shard.put(b"torn", b"0123456789", 100, 0, NONE);
        }
        // The second slot written again, its writer gone half way.
        let i = {
            let shard = Shard::new(&mut h, &mut s);
            shard.find(b"torn", key_hash(b"torn")).unwrap()
        };
        s[i * SLOT_LEN + SLOT_HEAD_LEN + KEY_MAX + 3] ^= 0x55;
        let mut shard = Shard::new(&mut h, &mut s);
        assert_eq!(shard.get(b"torn", 0), None);
        assert!(
            !shard
                .check(
                    &Geometry {
                        total: 0,
                        shards: 1
                    },
                    0
                )
                .problems
                .is_empty()
        );
        assert_eq!(shard.repair(), 1);
        assert!(
            shard
                .check(
                    &Geometry {
                        total: 0,
                        shards: 1
                    },
                    0
                )
                .problems
                .is_empty()
        );
        assert_eq!(shard.get(b"whole", 0).as_deref(), Some(&b"abcdef"[..]));
        assert_eq!(shard.put(b"torn", b"new", 100, 0, NONE), Put::Stored);
        assert_eq!(shard.get(b"torn", 0).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn hostile_bytes_are_misses_never_a_panic() {
        let mut rng = Bytes(0x9e37_79b9_7f4a_7c15);
        let (mut h, mut s) = shard_bytes();
        for round in 0..200 {
            rng.fill(&mut h);
            rng.fill(&mut s);
            if round % 2 == 0 {
                // Index entries that name the probed key, over random slots.
                for i in 0..SLOTS_PER_SHARD {
                    put_u64(&mut h, INDEX_AT + i * INDEX_ENTRY_LEN, key_hash(b"probe"));
                }
            }
            if round % 3 == 0 {
                // Plausible lengths and states with wrong checksums.
                for i in 0..SLOTS_PER_SHARD {
                    put_u32(&mut s, i * SLOT_LEN + 8, STATE_LIVE);
                    s[i * SLOT_LEN + 12..i * SLOT_LEN + 14].copy_from_slice(&5u16.to_le_bytes());
                    put_u32(&mut s, i * SLOT_LEN + 16, (rng.next() % 4000) as u32);
                    s[i * SLOT_LEN + SLOT_HEAD_LEN..i * SLOT_LEN + SLOT_HEAD_LEN + 5]
                        .copy_from_slice(b"probe");
                }
            }
            let mut shard = Shard::new(&mut h, &mut s);
            assert_eq!(shard.get(b"probe", 0), None);
            assert!(!shard.removed(b"probe", 0));
            let _ = shard.check(
                &Geometry {
                    total: 0,
                    shards: 1,
                },
                0,
            );
            shard.put(b"mine", b"value", i64::MAX, 0, NONE);
            assert_eq!(shard.get(b"mine", 0).as_deref(), Some(&b"value"[..]));
            shard.repair();
            assert_eq!(shard.get(b"mine", 0).as_deref(), Some(&b"value"[..]));
            assert!(
                shard
                    .check(
                        &Geometry {
                            total: 0,
                            shards: 1
                        },
                        0
                    )
                    .problems
                    .is_empty()
            );
            assert_eq!(shard.take(b"mine", 0, NONE).as_deref(), Some(&b"value"[..]));
        }
    }

    #[test]
    fn short_or_odd_slot_bytes() {
        assert_eq!(parse_slot(&[]), None);
        assert_eq!(parse_slot(&[0xff; SLOT_LEN - 1]), None);
        assert_eq!(parse_slot(&[0xff; SLOT_LEN]), None);
        assert_eq!(
            parse_slot(&[0; SLOT_LEN]),
            None,
            "an empty slot is no entry"
        );
    }

    #[test]
    fn header_geometry() {
        assert_eq!(Geometry::for_size(0), None);
        assert_eq!(Geometry::for_size(HEADER_LEN + 4096), None);
        let g = Geometry::for_size(16 << 20).unwrap();
        assert!(g.shards >= 100 && g.slots_offset() + g.shards * SHARD_SLOTS_LEN <= g.total);
        let mut header = vec![0u8; HEADER_LEN];
        write_header(&mut header, &g);
        assert!(check_header(&header, &g).is_err(), "no magic yet");
        write_magic(&mut header);
        assert_eq!(check_header(&header, &g), Ok(()));
        let other = Geometry::for_size(8 << 20).unwrap();
        assert!(check_header(&header, &other).is_err());
        header[8] ^= 1;
        assert!(check_header(&header, &g).is_err());
        assert!(check_header(&header[..10], &g).is_err());
    }
}
