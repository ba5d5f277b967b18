//! A shared session store behind the in-process cache.
//!
//! The in-process cache stays the first level. With a store configured
//! (`SESSCACHE_STORE=redis://…`), a session the cache stores for a server is
//! also sealed (see [`seal`]) and written to the store with the lifetime it
//! has left, and announced to the other processes sharing the store, which
//! keep it in a local pool; a server lookup that misses locally asks the
//! pool, then the store; a removal deletes it from the store and tells the
//! others, which forget it too.
//!
//! Nothing here may make a handshake fail or hang: reads are bounded by the
//! store's timeout and skipped while the store is down; writes and deletes
//! go through a bounded queue to a background thread (overflow is dropped
//! and counted). Backends plug in behind [`Backend`].

#[cfg(feature = "store-bench")]
pub mod bench;
pub mod redis;
pub mod seal;
pub mod shm;

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use once_cell::sync::{Lazy, OnceCell};

use crate::cache::SessionKey;
use crate::diag;
use crate::libssl::{self, Session, SessionRef};
use seal::Keyring;

/// A store failed or is unreachable; the caller goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// One connection to a store, for reads.
pub trait StoreConnection: Send {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Gets and deletes in one step: of all callers in all processes, at
    /// most one receives the value.
    fn take(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// One change to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Store `value` under `key` for `ttl_secs` seconds.
    Put {
        key: String,
        value: Vec<u8>,
        ttl_secs: u64,
    },
    Delete {
        key: String,
    },
    /// Send `message` to every process listening on `channel`.
    Publish {
        channel: String,
        message: Vec<u8>,
    },
}

/// A connection for changes whose replies are never awaited: `send` only
/// hands the commands to the kernel (bounded by the write timeout), so a
/// handshake thread may use it.
pub trait StoreWriter: Send {
    fn send(&mut self, ops: &[WriteOp]) -> Result<(), StoreError>;
}

/// A kind of store: opens connections and listens for peers' messages.
pub trait Backend: Send + Sync {
    /// A connection whose every operation is bounded by the configured
    /// timeout.
    fn connect(&self) -> Result<Box<dyn StoreConnection>, StoreError>;
    /// A writer (see [`StoreWriter`]), its operations bounded likewise.
    fn connect_writer(&self) -> Result<Box<dyn StoreWriter>, StoreError>;
    /// Subscribes to `channel` (calling `subscribed` once the store has
    /// taken the subscription), then delivers the messages published there
    /// until the connection fails (then returns the error; the caller
    /// reconnects after a pause).
    fn listen(
        &self,
        channel: &str,
        subscribed: &mut dyn FnMut(),
        deliver: &mut dyn FnMut(&[u8]),
    ) -> StoreError;
    /// Whether the store itself remembers that `key` was removed (a backend
    /// without announcements keeps such marks; consulted on local hits).
    fn was_deleted(&self, _key: &str) -> bool {
        false
    }
    /// The backend's own counters of this process, by name.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Whether the store cannot hold `value` under `key` (a backend of
    /// fixed-size slots; it counts them): such a session stays local and
    /// is neither queued nor counted as a write.
    fn too_large(&self, _key: &str, _value: &[u8]) -> bool {
        false
    }
}

/// The store's settings: from the environment, or `sesscache_configure`
/// before the first `SSL_CTX_new`.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub url: Option<String>,
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates a `rediss://` store's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    pub prefix: String,
    pub timeout: Duration,
    pub push: bool,
    pub queue: usize,
    pub pool: usize,
    /// The shm store's size in bytes.
    pub size: usize,
    /// The permission bits a joined shm store file may have.
    pub mode: u32,
}

impl StoreConfig {
    fn from_env() -> StoreConfig {
        let mut config = StoreConfig {
            url: None,
            key_file: None,
            ca_file: None,
            prefix: "sesscache:".into(),
            timeout: Duration::from_millis(20),
            push: true,
            queue: 4096,
            pool: 20480,
            size: shm::DEFAULT_SIZE,
            mode: shm::DEFAULT_MODE,
        };
        for name in SETTINGS {
            if let Some(value) = std::env::var_os(name).and_then(|v| v.into_string().ok()) {
                if !config.set(name, &value) {
                    diag::warn_once(
                        "sesscache: a SESSCACHE_STORE* variable has an invalid value; it is ignored",
                    );
                }
            }
        }
        config
    }

    /// Applies one setting by its environment-variable name.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        let number = || value.parse::<u64>().ok();
        match name {
            "SESSCACHE_STORE" => self.url = (!value.is_empty()).then(|| value.to_string()),
            "SESSCACHE_STORE_KEY_FILE" => {
                self.key_file = (!value.is_empty()).then(|| PathBuf::from(value))
            }
            "SESSCACHE_STORE_CA_FILE" => {
                self.ca_file = (!value.is_empty()).then(|| PathBuf::from(value))
            }
            "SESSCACHE_STORE_PREFIX" => self.prefix = value.to_string(),
            "SESSCACHE_STORE_TIMEOUT_MS" => match number().filter(|&ms| (1..=60_000).contains(&ms))
            {
                Some(ms) => self.timeout = Duration::from_millis(ms),
                None => return false,
            },
            "SESSCACHE_STORE_PUSH" => match value {
                "0" => self.push = false,
                "1" => self.push = true,
                _ => return false,
            },
            "SESSCACHE_STORE_QUEUE" => match number().filter(|&n| (1..=1 << 20).contains(&n)) {
                Some(n) => self.queue = n as usize,
                None => return false,
            },
            "SESSCACHE_STORE_POOL" => match number().filter(|&n| n <= 1 << 24) {
                Some(n) => self.pool = n as usize,
                None => return false,
            },
            "SESSCACHE_STORE_SIZE" => {
                match parse_size(value).filter(|n| (shm::MIN_SIZE..=shm::MAX_SIZE).contains(n)) {
                    Some(n) => self.size = n,
                    None => return false,
                }
            }
            "SESSCACHE_STORE_MODE" => match u32::from_str_radix(value, 8)
                .ok()
                .filter(|m| m & !0o660 == 0 && m & 0o600 == 0o600)
            {
                Some(m) => self.mode = m,
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

/// Every setting, by its environment-variable name.
pub const SETTINGS: [&str; 10] = [
    "SESSCACHE_STORE",
    "SESSCACHE_STORE_KEY_FILE",
    "SESSCACHE_STORE_CA_FILE",
    "SESSCACHE_STORE_PREFIX",
    "SESSCACHE_STORE_TIMEOUT_MS",
    "SESSCACHE_STORE_PUSH",
    "SESSCACHE_STORE_QUEUE",
    "SESSCACHE_STORE_POOL",
    "SESSCACHE_STORE_SIZE",
    "SESSCACHE_STORE_MODE",
];

/// Bytes, with an optional `k`, `m` or `g` suffix (powers of 1024).
fn parse_size(value: &str) -> Option<usize> {
    let (digits, unit) = match value.char_indices().last()? {
        (i, 'k' | 'K') => (&value[..i], 1 << 10),
        (i, 'm' | 'M') => (&value[..i], 1 << 20),
        (i, 'g' | 'G') => (&value[..i], 1 << 30),
        _ => (value, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// Counters of the store, readable by name.
#[derive(Default)]
pub struct StoreCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub rejected: AtomicU64,
    pub dropped: AtomicU64,
    pub writes: AtomicU64,
    pub deletes: AtomicU64,
    pub pushes: AtomicU64,
    pub pool_hits: AtomicU64,
}

impl StoreCounters {
    pub fn named(&self) -> [(&'static str, u64); 9] {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("store_hits", v(&self.hits)),
            ("store_misses", v(&self.misses)),
            ("store_errors", v(&self.errors)),
            ("store_rejected", v(&self.rejected)),
            ("store_dropped", v(&self.dropped)),
            ("store_writes", v(&self.writes)),
            ("store_deletes", v(&self.deletes)),
            ("store_pushes", v(&self.pushes)),
            ("store_pool_hits", v(&self.pool_hits)),
        ]
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The store operations of one change (the write or deletion and its
/// announcement).
struct Job {
    ops: Vec<WriteOp>,
    is_put: bool,
}

const MSG_PUT: u8 = b'P';
const MSG_DELETE: u8 = b'D';
/// How long a peer's deletion is remembered, so that a copy cached here
/// before the deletion is not resumed (longer than any default lifetime).
const TOMBSTONE_SECS: i64 = 24 * 3600;

/// Sessions other processes announced, and the keys they deleted.
#[derive(Default)]
struct Peers {
    /// Blob and until when it is kept.
    pool: Bounded<(Vec<u8>, i64)>,
    /// Until when a deletion is remembered.
    tombstones: Bounded<i64>,
}

impl Peers {
    fn pool_remove(&mut self, key: &str) -> Option<(Vec<u8>, i64)> {
        self.pool.remove(key)
    }

    fn deleted(&self, key: &str, now: i64) -> bool {
        self.tombstones.get(key).is_some_and(|&until| until > now)
    }

    /// Entries and order keys of the pool, then of the tombstones.
    #[cfg(test)]
    fn sizes(&self) -> [usize; 4] {
        let (pool, tombstones) = (self.pool.sizes(), self.tombstones.sizes());
        [pool.0, pool.1, tombstones.0, tombstones.1]
    }
}

/// A map of at most `cap` entries that forgets its oldest insertion to make
/// room. The order is kept by insertion number, and every removal takes the
/// key out of both maps, so the two always hold the same keys.
struct Bounded<V> {
    entries: HashMap<String, (V, u64)>,
    order: BTreeMap<u64, String>,
    next: u64,
}

impl<V> Default for Bounded<V> {
    fn default() -> Bounded<V> {
        Bounded {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<V> Bounded<V> {
    fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(v, _)| v)
    }

    fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Inserts or replaces (a replaced entry keeps its place in the order).
    fn insert(&mut self, key: &str, value: V, cap: usize) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.0 = value;
            return;
        }
        if cap == 0 {
            return;
        }
        while self.entries.len() >= cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(key.to_string(), (value, self.next));
        self.order.insert(self.next, key.to_string());
        self.next += 1;
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        let (value, seq) = self.entries.remove(key)?;
        self.order.remove(&seq);
        Some(value)
    }

    /// Both maps' sizes (equal unless the structure is broken).
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (self.entries.len(), self.order.len())
    }
}

/// What a blob read from the pool or the store holds.
enum Opened {
    Live(SessionRef),
    Expired,
    Rejected,
}

/// The store as this process uses it.
pub struct Remote {
    backend: Arc<dyn Backend>,
    keys: Arc<Keyring>,
    config: StoreConfig,
    /// The connections lookups use, taken without waiting: a lookup never
    /// queues behind another one that is waiting on a slow store.
    readers: Vec<Mutex<Link<dyn StoreConnection>>>,
    /// The connection changes are sent on: directly by the thread that
    /// makes the change when it is free and nothing is queued (so a new
    /// session reaches the store before its client can be back), else by
    /// the writer thread from the queue.
    writer: Mutex<Link<dyn StoreWriter>>,
    /// Jobs queued and not yet sent; while any are, changes queue behind
    /// them so that the store sees them in order.
    queued: AtomicUsize,
    jobs: SyncSender<Job>,
    jobs_rx: Mutex<Option<Receiver<Job>>>,
    peers: Mutex<Peers>,
    instance: [u8; 8],
    pub counters: StoreCounters,
    health: Health,
}

/// What a store connection is used for. Each use answers or fails on its
/// own: a store may take lookups and refuse the subscription (an ACL
/// without the channel) or the changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Lookups,
    Changes,
    Announcements,
}

impl Role {
    const ALL: [Role; 3] = [Role::Lookups, Role::Changes, Role::Announcements];

    fn name(self) -> &'static str {
        match self {
            Role::Lookups => "lookups",
            Role::Changes => "changes",
            Role::Announcements => "announcements",
        }
    }
}

/// Whether the store answers each use of it: for the stats file, and said
/// once on stderr when it first stops answering.
#[derive(Default)]
struct Health {
    roles: [RoleHealth; Role::ALL.len()],
    warned: AtomicBool,
}

#[derive(Default)]
struct RoleHealth {
    down: AtomicBool,
    reason: Mutex<String>,
}

impl Health {
    fn of(&self, role: Role) -> &RoleHealth {
        &self.roles[role as usize]
    }

    fn failed(&self, role: Role, e: &StoreError) {
        let reason = printable(&e.0);
        if !self.warned.swap(true, Ordering::Relaxed) {
            say(&format!(
                "sesscache: the store does not answer ({reason}); sessions are not shared while it does not (store_errors, store_status in SESSCACHE_STATS)"
            ));
        }
        let of = self.of(role);
        *of.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason;
        of.down.store(true, Ordering::Relaxed);
    }

    fn answered(&self, role: Role) {
        let of = self.of(role);
        if of.down.load(Ordering::Relaxed) {
            of.down.store(false, Ordering::Relaxed);
        }
    }

    /// `ok` when every use last answered, else `unreachable: ` and the
    /// failing uses with their last reason (uses failing alike named
    /// together).
    fn status(&self) -> String {
        let mut failing: Vec<(Vec<&str>, String)> = Vec::new();
        for role in Role::ALL {
            let of = self.of(role);
            if !of.down.load(Ordering::Relaxed) {
                continue;
            }
            let reason = of.reason.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match failing.iter_mut().find(|(_, r)| *r == reason) {
                Some((roles, _)) => roles.push(role.name()),
                None => failing.push((vec![role.name()], reason)),
            }
        }
        if failing.is_empty() {
            return "ok".into();
        }
        let parts: Vec<String> = failing
            .iter()
            .map(|(roles, reason)| format!("{}: {reason}", roles.join(", ")))
            .collect();
        format!("unreachable: {}", parts.join("; "))
    }
}

/// A reason from a store or a file, fit for one line of stderr or of the
/// stats file: printable ASCII only, at most 200 characters (it may come
/// from a hostile server).
fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// One line on stderr; never panics, even with stderr closed.
fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// A connection that is reopened after a failure, not before a pause that
/// doubles with each failure (100 ms to 5 s).
struct Link<C: ?Sized> {
    role: Role,
    conn: Option<Box<C>>,
    retry_at: Option<std::time::Instant>,
    pause: Duration,
}

const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Lookup connections per process (one per concurrent lookup).
const READERS: usize = 4;
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

impl<C: ?Sized> Link<C> {
    fn new(role: Role) -> Link<C> {
        Link {
            role,
            conn: None,
            retry_at: None,
            pause: FIRST_PAUSE,
        }
    }

    /// Whether the connection failed recently and is not to be opened yet.
    fn waiting_to_reconnect(&self) -> bool {
        self.conn.is_none() && self.retry_at.is_some_and(|t| std::time::Instant::now() < t)
    }

    /// Runs `op` on the connection, opening it first with `connect` unless
    /// that failed recently.
    fn run<T>(
        &mut self,
        health: &Health,
        connect: impl FnOnce() -> Result<Box<C>, StoreError>,
        op: impl FnOnce(&mut C) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.waiting_to_reconnect() {
            return Err(StoreError("store down; waiting before reconnecting".into()));
        }
        if self.conn.is_none() {
            match connect() {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => return Err(self.failed(health, e)),
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        match op(conn) {
            Ok(v) => {
                self.retry_at = None;
                self.pause = FIRST_PAUSE;
                health.answered(self.role);
                Ok(v)
            }
            Err(e) => {
                self.conn = None;
                Err(self.failed(health, e))
            }
        }
    }

    fn failed(&mut self, health: &Health, e: StoreError) -> StoreError {
        health.failed(self.role, &e);
        self.retry_at = Some(std::time::Instant::now() + self.pause);
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        e
    }
}

impl Remote {
    pub fn new(
        backend: Arc<dyn Backend>,
        keys: impl Into<Arc<Keyring>>,
        config: StoreConfig,
    ) -> Remote {
        let (jobs, jobs_rx) = sync_channel(config.queue);
        let mut instance = [0u8; 8];
        // SAFETY: fills our 8-byte buffer; a failure leaves zeros, which
        // only means our own announcements are not recognised as ours.
        unsafe { libssl::sys::RAND_bytes(instance.as_mut_ptr(), instance.len() as c_int) };
        Remote {
            backend,
            keys: keys.into(),
            config,
            readers: (0..READERS)
                .map(|_| Mutex::new(Link::new(Role::Lookups)))
                .collect(),
            writer: Mutex::new(Link::new(Role::Changes)),
            queued: AtomicUsize::new(0),
            jobs,
            jobs_rx: Mutex::new(Some(jobs_rx)),
            peers: Mutex::new(Peers::default()),
            instance,
            counters: StoreCounters::default(),
            health: Health::default(),
        }
    }

    /// Starts the writer and, with pushes on, the listener thread.
    pub fn start(&'static self) {
        let rx = self
            .jobs_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            let spawned = std::thread::Builder::new()
                .name("sesscache-store-writer".into())
                .spawn(move || self.write_loop(rx));
            if spawned.is_err() {
                diag::warn_once(
                    "sesscache: cannot start the store writer thread; sessions are not shared",
                );
            }
        }
        if self.config.push {
            let spawned = std::thread::Builder::new()
                .name("sesscache-store-listener".into())
                .spawn(move || self.listen_loop());
            if spawned.is_err() {
                diag::warn_once(
                    "sesscache: cannot start the store listener thread; sessions are fetched on demand",
                );
            }
        }
    }

    fn channel(&self) -> String {
        format!("{}events", self.config.prefix)
    }

    /// The store key of a session: prefix, version, ID, in hex.
    pub fn store_key(&self, key: &SessionKey) -> String {
        // By hand, not with format!: this runs on every lookup of a store
        // with removal marks (shm), where formatting cost more than the rest.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(self.config.prefix.len() + 5 + 2 * key.id().len());
        s.push_str(&self.config.prefix);
        let version = (key.version() & 0xffff) as u16;
        for b in version.to_be_bytes().iter().chain(key.id()) {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
            if s.len() == self.config.prefix.len() + 4 {
                s.push(':');
            }
        }
        s
    }

    /// Associated data: the blob is valid only for this version, ID and
    /// session-ID context.
    fn aad(key: &SessionKey, sid_ctx: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + key.id().len() + sid_ctx.len());
        aad.extend_from_slice(b"sesscache-v1");
        aad.extend_from_slice(&key.version().to_be_bytes());
        aad.push(key.id().len() as u8);
        aad.extend_from_slice(key.id());
        aad.push(sid_ctx.len() as u8);
        aad.extend_from_slice(sid_ctx);
        aad
    }

    /// A server cached a new session: write it to the store (in the
    /// background) with the lifetime it has left.
    pub fn session_stored(&self, key: &SessionKey, sess: Session) {
        let ttl = sess.seconds_left(libssl::now());
        let Some(ttl) = ttl.filter(|&t| t > 0) else {
            return;
        };
        let Some(der) = sess.to_der() else {
            bump(&self.counters.errors);
            return;
        };
        let Some(blob) = self.keys.seal(&der, &Remote::aad(key, &sess.id_context())) else {
            bump(&self.counters.errors);
            return;
        };
        let store_key = self.store_key(key);
        if self.backend.too_large(&store_key, &blob) {
            return;
        }
        // The pool is not single use: a session that can carry early data
        // is given out by the store's take alone.
        let announcement = (self.config.push && sess.max_early_data() == 0)
            .then(|| self.announcement(MSG_PUT, &store_key, &blob));
        let mut ops = vec![WriteOp::Put {
            key: store_key,
            value: blob,
            ttl_secs: ttl,
        }];
        ops.extend(announcement);
        self.change(Job { ops, is_put: true });
    }

    /// A session was removed here: delete it from the store and tell peers.
    pub fn session_removed(&self, key: &SessionKey) {
        let store_key = self.store_key(key);
        let announcement = self
            .config
            .push
            .then(|| self.announcement(MSG_DELETE, &store_key, &[]));
        let mut ops = vec![WriteOp::Delete { key: store_key }];
        ops.extend(announcement);
        self.change(Job { ops, is_put: false });
    }

    /// Sends a change at once if the writer connection is free, open and
    /// nothing is queued; counts it as an error at once while the store is
    /// down and not yet to be retried (the writer thread would fail it the
    /// same way, perhaps only after the process has exited); otherwise
    /// queues it for the writer thread. Never waits for a lock or opens a
    /// connection.
    fn change(&self, job: Job) {
        if self.queued.load(Ordering::Acquire) == 0 {
            if let Ok(mut link) = self.writer.try_lock() {
                if link.waiting_to_reconnect() {
                    self.count_sent(&job, false);
                    return;
                }
                if link.conn.is_some() && self.queued.load(Ordering::Acquire) == 0 {
                    let sent = link.run(
                        &self.health,
                        || Err(StoreError("no connecting here".into())),
                        |w| w.send(&job.ops),
                    );
                    self.count_sent(&job, sent.is_ok());
                    return;
                }
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.jobs.try_send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            bump(&self.counters.dropped);
        }
    }

    fn count_sent(&self, job: &Job, sent: bool) {
        match (sent, job.is_put) {
            (true, true) => bump(&self.counters.writes),
            (true, false) => bump(&self.counters.deletes),
            (false, _) => bump(&self.counters.errors),
        }
    }

    /// Whether a peer deleted this session (so a local copy must go).
    pub fn deleted_by_peer(&self, key: &SessionKey) -> bool {
        let store_key = self.store_key(key);
        if !self.config.push {
            return self.backend.was_deleted(&store_key);
        }
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.deleted(&store_key, libssl::now())
    }

    /// Server lookup after a local miss: the peers' pool, then the store.
    /// A blob that does not open for this version, ID and session-ID
    /// context, does not decode, or is for another session is rejected.
    ///
    /// `single_use` (libssl's anti-replay rule applies to the connection):
    /// the session is taken out of the store in the same step as it is
    /// read, so that of all servers sharing the store one gets it, and the
    /// pool is not asked. A session that can carry early data is never
    /// served from the pool either.
    pub fn fetch(&self, key: &SessionKey, sid_ctx: &[u8], single_use: bool) -> Option<SessionRef> {
        let store_key = self.store_key(key);
        let now = libssl::now();
        let pooled = {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            if peers.deleted(&store_key, now) {
                return None;
            }
            peers.pool_remove(&store_key)
        };
        if let Some((blob, _)) = pooled.filter(|&(_, until)| !single_use && until > now) {
            match self.open(key, sid_ctx, &blob, now) {
                // Announced by a peer that pools early-data sessions: only
                // the store's take may give those out.
                Opened::Live(s) if s.view().max_early_data() > 0 => {}
                Opened::Live(s) => {
                    bump(&self.counters.hits);
                    bump(&self.counters.pool_hits);
                    return Some(s);
                }
                other => return self.count(other),
            }
        }
        let blob = match self.read(&store_key, single_use) {
            Ok(Some(blob)) => blob,
            Ok(None) => {
                bump(&self.counters.misses);
                return None;
            }
            Err(_) => {
                bump(&self.counters.errors);
                return None;
            }
        };
        self.count(self.open(key, sid_ctx, &blob, now))
    }

    /// A server about to resume a session that can carry early data from
    /// its own cache takes it out of the store first, so that no other
    /// server gets it from there: true if this take got it. A store that
    /// does not have it (another server took it first, or it never reached
    /// the store) or does not answer means no: the session is then not
    /// resumed, which a server may always decide.
    pub fn claim(&self, key: &SessionKey) -> bool {
        let store_key = self.store_key(key);
        drop(
            self.peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pool_remove(&store_key),
        );
        match self.read(&store_key, true) {
            Ok(Some(_)) => true,
            Ok(None) => {
                bump(&self.counters.misses);
                false
            }
            Err(_) => {
                bump(&self.counters.errors);
                false
            }
        }
    }

    /// Opens and decodes a blob.
    fn open(&self, key: &SessionKey, sid_ctx: &[u8], blob: &[u8], now: i64) -> Opened {
        let session = self
            .keys
            .open(blob, &Remote::aad(key, sid_ctx))
            .ok()
            .and_then(|der| libssl::session_from_der(&der))
            .filter(|s| s.view().key().as_ref() == Some(key));
        match session {
            Some(s) if !s.view().expired_at(now) => Opened::Live(s),
            Some(_) => Opened::Expired,
            None => Opened::Rejected,
        }
    }

    /// Counts what a store read gave and returns the session if it is live.
    fn count(&self, opened: Opened) -> Option<SessionRef> {
        match opened {
            Opened::Live(s) => {
                bump(&self.counters.hits);
                Some(s)
            }
            Opened::Expired => {
                bump(&self.counters.misses);
                None
            }
            Opened::Rejected => {
                bump(&self.counters.rejected);
                diag::warn_once(
                    "sesscache: rejected a session blob from the store (forged, other context or unknown key)",
                );
                None
            }
        }
    }

    /// One GET (or, with `take`, one atomic get-and-delete) on the first
    /// lookup connection that is free; none free means every one is busy
    /// with a lookup (or waiting on a slow store).
    fn read(&self, store_key: &str, take: bool) -> Result<Option<Vec<u8>>, StoreError> {
        for reader in &self.readers {
            if let Ok(mut link) = reader.try_lock() {
                return link.run(
                    &self.health,
                    || self.backend.connect(),
                    |c| {
                        if take {
                            c.take(store_key)
                        } else {
                            c.get(store_key)
                        }
                    },
                );
            }
        }
        Err(StoreError("every lookup connection is busy".into()))
    }

    fn write_loop(&self, jobs: Receiver<Job>) {
        // Open the writer connection at once, so that the first changes can
        // take the direct path.
        let _ = self.writer.lock().unwrap_or_else(|e| e.into_inner()).run(
            &self.health,
            || self.backend.connect_writer(),
            |_| Ok(()),
        );
        for job in jobs {
            let sent = self.writer.lock().unwrap_or_else(|e| e.into_inner()).run(
                &self.health,
                || self.backend.connect_writer(),
                |w| w.send(&job.ops),
            );
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.count_sent(&job, sent.is_ok());
        }
    }

    /// `kind` | instance (8) | key length (2) | key | blob, on our channel.
    fn announcement(&self, kind: u8, key: &str, blob: &[u8]) -> WriteOp {
        let mut m = Vec::with_capacity(11 + key.len() + blob.len());
        m.push(kind);
        m.extend_from_slice(&self.instance);
        m.extend_from_slice(&(key.len() as u16).to_be_bytes());
        m.extend_from_slice(key.as_bytes());
        m.extend_from_slice(blob);
        WriteOp::Publish {
            channel: self.channel(),
            message: m,
        }
    }

    fn listen_loop(&self) {
        let channel = self.channel();
        let mut pause = FIRST_PAUSE;
        loop {
            let mut delivered = false;
            let error = self.backend.listen(
                &channel,
                &mut || self.health.answered(Role::Announcements),
                &mut |m| {
                    delivered = true;
                    self.peer_message(m);
                },
            );
            self.health.failed(Role::Announcements, &error);
            pause = if delivered {
                FIRST_PAUSE
            } else {
                (pause * 2).min(LONGEST_PAUSE)
            };
            std::thread::sleep(pause);
        }
    }

    /// A message from another process: keep its session in the pool, or
    /// remember its deletion.
    pub fn peer_message(&self, m: &[u8]) {
        if m.len() < 11 {
            return;
        }
        let (kind, instance, key_len) =
            (m[0], &m[1..9], u16::from_be_bytes([m[9], m[10]]) as usize);
        if instance == self.instance || m.len() < 11 + key_len {
            return;
        }
        let Ok(key) = std::str::from_utf8(&m[11..11 + key_len]) else {
            return;
        };
        if !key.starts_with(&self.config.prefix) {
            return;
        }
        bump(&self.counters.pushes);
        let now = libssl::now();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            MSG_PUT if self.config.pool > 0 => {
                if peers.tombstones.contains(key) {
                    return;
                }
                // The blob's own expiry is inside the sealed session; the
                // pool keeps it at most as long as a default session lives.
                let blob = m[11 + key_len..].to_vec();
                peers.pool.insert(key, (blob, now + 7200), self.config.pool);
            }
            MSG_DELETE => {
                peers.pool.remove(key);
                peers
                    .tombstones
                    .insert(key, now + TOMBSTONE_SECS, self.config.pool.max(1024));
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The process's store: configured once, its secrets read while privileges
// last, re-created after fork
// ---------------------------------------------------------------------------

static CONFIG: Lazy<Mutex<StoreConfig>> = Lazy::new(|| Mutex::new(StoreConfig::from_env()));
/// Set when the first `SSL_CTX` is created: the configuration is final.
static FROZEN: AtomicBool = AtomicBool::new(false);
static ENABLED: AtomicBool = AtomicBool::new(false);
/// What [`freeze`] read and built, inherited by forked children so that
/// none of them reads a file the parent could read and it cannot.
static PREPARED: OnceCell<Prepared> = OnceCell::new();
/// Why a configured store is not used (set by [`freeze`]).
static UNUSABLE: OnceCell<String> = OnceCell::new();
/// Set in every process (again after each fork) until it has checked
/// whether its stderr has been told [`UNUSABLE`].
static UNUSABLE_UNTOLD: AtomicBool = AtomicBool::new(false);
/// This process's store; reset to NULL in a forked child, whose copy has
/// no threads (the parent's is leaked there on purpose: its locks may be
/// held by threads that do not exist in the child).
static REMOTE: AtomicPtr<Remote> = AtomicPtr::new(std::ptr::null_mut());

struct Prepared {
    backend: Arc<dyn Backend>,
    keys: Arc<Keyring>,
    config: StoreConfig,
    /// The backend is the shared mapping (no announcements, its own counters).
    shm: bool,
}

fn is_shm() -> bool {
    PREPARED.get().is_some_and(|p| p.shm)
}

/// Reads the `SESSCACHE_STORE*` variables now, at load time (see
/// `diag::read_environment`).
pub fn read_environment() {
    Lazy::force(&CONFIG);
}

/// Changes a setting; only before the first `SSL_CTX_new`.
pub fn configure(name: &str, value: &str) -> bool {
    if FROZEN.load(Ordering::Acquire) {
        return false;
    }
    CONFIG
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .set(name, value)
}

extern "C" fn in_forked_child() {
    REMOTE.store(std::ptr::null_mut(), Ordering::Release);
    if UNUSABLE.get().is_some() {
        UNUSABLE_UNTOLD.store(true, Ordering::Relaxed);
    }
}

/// Makes the configuration final (first `SSL_CTX_new`, in a server's
/// master process before it forks and drops privileges): reads the key
/// file and the CA file now and builds the backend, or says on stderr why
/// a configured store cannot be used.
pub fn freeze() {
    if FROZEN.swap(true, Ordering::AcqRel) {
        return;
    }
    let config = CONFIG.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(url) = config.url.clone() else {
        return;
    };
    // SAFETY: registers a plain function to run in forked children.
    unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
    match prepare(&url, config) {
        Ok(prepared) => {
            let _ = PREPARED.set(prepared);
            ENABLED.store(true, Ordering::Release);
        }
        Err(reason) => {
            let _ = UNUSABLE.set(printable(&reason));
            tell_unusable();
        }
    }
}

/// Everything the store needs, read now.
fn prepare(url: &str, config: StoreConfig) -> Result<Prepared, String> {
    let place = shm::Place::parse(url);
    if let Some(place) = &place {
        let mut config = config;
        // Every process reads the mapping itself: nothing to announce.
        config.push = false;
        // The key first: a store that cannot be sealed leaves no file behind.
        let keys = match config.key_file.as_deref() {
            Some(key_file) => load_keys(key_file)?,
            // An inherited mapping is sealed with a key made here, in memory.
            None if *place == shm::Place::Inherited => memory_key()?,
            None => return Err("an shm store joined by path needs SESSCACHE_STORE_KEY_FILE (the same file in every server)".into()),
        };
        let region = match place {
            shm::Place::Inherited => shm::Region::inherited(config.size)?,
            shm::Place::File(path) => shm::Region::file(path, config.size, config.mode)?,
        };
        return Ok(Prepared {
            backend: Arc::new(shm::ShmBackend::new(Box::leak(Box::new(region)))),
            keys: Arc::new(keys),
            config,
            shm: true,
        });
    }
    let Some(key_file) = config.key_file.as_deref() else {
        return Err("SESSCACHE_STORE is set but SESSCACHE_STORE_KEY_FILE is not: sessions are never stored unencrypted".into());
    };
    let keys = load_keys(key_file)?;
    let backend: Arc<dyn Backend> = if url.starts_with("redis://") || url.starts_with("rediss://") {
        let ca = match config.ca_file.as_deref() {
            Some(path) => Some(seal::read_file(path)?.0),
            None => None,
        };
        Arc::new(redis::RedisBackend::new(url, config.timeout, ca)?)
    } else {
        return Err("SESSCACHE_STORE must be a redis:// or rediss:// URL, shm or shm:/path".into());
    };
    Ok(Prepared {
        backend,
        keys: Arc::new(keys),
        config,
        shm: false,
    })
}

/// The key file's keys, with one warning when others may read it.
fn load_keys(key_file: &std::path::Path) -> Result<Keyring, String> {
    let (keys, mode) = Keyring::load(key_file)?;
    if mode & 0o077 != 0 {
        say(&printable(&format!(
            "sesscache: the store's key file {} is accessible by group or others (mode {mode:04o}); it is used, but should be chmod 600",
            key_file.display()
        )));
    }
    Ok(keys)
}

/// A random key that exists only in this process and its forked children.
fn memory_key() -> Result<Keyring, String> {
    let mut bytes = [0u8; 32];
    // SAFETY: fills our 32-byte buffer.
    let ok = unsafe { libssl::sys::RAND_bytes(bytes.as_mut_ptr(), bytes.len() as c_int) } == 1;
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    bytes.fill(0);
    let keys = if ok {
        Keyring::parse(&hex)
    } else {
        Err("no random bytes for its key".into())
    };
    // SAFETY: overwrites the string's own bytes with ASCII zeros, keeping it UTF-8.
    unsafe { hex.as_bytes_mut() }.fill(b'0');
    keys
}

/// The identity of the file this process's stderr is, to tell whether a
/// message written earlier reached it.
fn stderr_identity() -> u64 {
    // SAFETY: fstat on fd 2 into our own zeroed buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return 0;
    }
    (st.st_dev << 40) ^ st.st_ino ^ 1
}

/// Which stderr was last told why the store is unusable: shared with every
/// forked child (one anonymous shared page), so that among a master and
/// its workers each distinct stderr is told once. A server such as nginx
/// points its processes' stderr at its error log only after reading its
/// configuration, when this was first said.
static TOLD: Lazy<Option<&'static AtomicU64>> = Lazy::new(|| {
    // SAFETY: a fresh shared anonymous mapping of one page, never unmapped;
    // zero-filled, so it holds a valid AtomicU64 (page-aligned).
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    // SAFETY: the mapping above lives for the rest of the process.
    (page != libc::MAP_FAILED).then(|| unsafe { &*page.cast::<AtomicU64>() })
});

/// Says why the store is unusable on this process's stderr, unless that
/// file was told already.
#[cold]
fn tell_unusable() {
    UNUSABLE_UNTOLD.store(false, Ordering::Relaxed);
    let Some(reason) = UNUSABLE.get() else {
        return;
    };
    let here = stderr_identity();
    if let Some(told) = *TOLD {
        let before = told.load(Ordering::Acquire);
        if before == here
            || told
                .compare_exchange(before, here, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
    }
    say(&format!(
        "sesscache[{}]: the store is not used: {reason}",
        std::process::id()
    ));
}

/// The store, if one is configured and usable; created (with its threads)
/// on first use in each process.
// Inline: every removal asks, and without a store the answer is one load.
#[inline]
pub fn remote() -> Option<&'static Remote> {
    if !ENABLED.load(Ordering::Relaxed) {
        if UNUSABLE_UNTOLD.load(Ordering::Relaxed) {
            tell_unusable();
        }
        return None;
    }
    let current = REMOTE.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: published by `start_remote` from a leaked Box, never freed.
        return Some(unsafe { &*current });
    }
    start_remote()
}

/// [`remote`]'s first use in a process: builds the store from what
/// [`freeze`] prepared (reading nothing) and publishes it.
#[cold]
fn start_remote() -> Option<&'static Remote> {
    let prepared = PREPARED.get()?;
    let fresh = Box::into_raw(Box::new(Remote::new(
        prepared.backend.clone(),
        prepared.keys.clone(),
        prepared.config.clone(),
    )));
    match REMOTE.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            // SAFETY: just published; lives for the rest of the process.
            let remote: &'static Remote = unsafe { &*fresh };
            // With the writer open, a change is sent by the thread that
            // makes it: this process's first session is in the store before
            // its handshake ends, not after the writer thread has connected
            // (a client that comes back at once to another process would
            // miss it), and a process that exits after one connection has
            // stored its session. For the shm store opening costs nothing;
            // for Redis it is a connection and a PING, each bounded by the
            // timeout, as a lookup's first connection is.
            let _ = remote.writer.lock().unwrap_or_else(|e| e.into_inner()).run(
                &remote.health,
                || remote.backend.connect_writer(),
                |_| Ok(()),
            );
            remote.start();
            Some(remote)
        }
        Err(winner) => {
            // SAFETY: ours was never published or started.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: published by the winner, never freed.
            Some(unsafe { &*winner })
        }
    }
}

/// The store's counters by name (zero when no store is in use).
pub fn counters() -> Vec<(&'static str, u64)> {
    let current = REMOTE.load(Ordering::Acquire);
    // SAFETY: a published Remote is never freed.
    let mut named = match unsafe { current.as_ref() } {
        Some(remote) => {
            let mut named = remote.counters.named().to_vec();
            named.extend(remote.backend.counters());
            named
        }
        None => StoreCounters::default().named().to_vec(),
    };
    if is_shm() && named.len() == StoreCounters::default().named().len() {
        named.extend(shm::COUNTER_NAMES.iter().map(|&n| (n, 0)));
    }
    named
}

/// For the stats file, when a store is configured: `store_status=` (`ok`,
/// `unusable: reason`, `unreachable: reason`) and the store's counters.
pub fn stats_lines() -> String {
    if let Some(reason) = UNUSABLE.get() {
        return format!("store_status=unusable: {reason}\n");
    }
    if !ENABLED.load(Ordering::Relaxed) {
        return String::new();
    }
    let current = REMOTE.load(Ordering::Acquire);
    // SAFETY: a published Remote is never freed.
    let status = match unsafe { current.as_ref() } {
        Some(remote) => remote.health.status(),
        None => "ok".into(),
    };
    let mut text = format!("store_status={status}\n");
    for (n, v) in counters() {
        text.push_str(&format!("{n}={v}\n"));
    }
    text
}

#[cfg(test)]
mod tests;
