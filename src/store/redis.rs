//! The Redis backend, through the `redis` crate's synchronous client.
//! Every connection gets the configured timeout for connecting, reading and
//! writing, so no call can block a handshake for longer.
//!
//! Credentials come with the URL (`redis://user:pass@host:port/db`,
//! `redis://:pass@host`); `rediss://` speaks TLS through rustls, never
//! through the libssl this library interposes on, and trusts the CA
//! certificates given (`SESSCACHE_STORE_CA_FILE`, read before any
//! connection) or else the Mozilla roots compiled into the library.

use std::time::Duration;

use redis::io::tcp::TcpSettings;
use redis::{Client, Connection, IntoConnectionInfo, TlsCertificates};

use super::{Backend, StoreConnection, StoreError, StoreWriter, WriteOp};

pub struct RedisBackend {
    client: Client,
    timeout: Duration,
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

impl RedisBackend {
    /// A backend for `url`; `ca` is the PEM text of the CA certificates a
    /// `rediss://` server must chain to.
    pub fn new(url: &str, timeout: Duration, ca: Option<Vec<u8>>) -> Result<RedisBackend, String> {
        let failed = |e: redis::RedisError| format!("SESSCACHE_STORE: {e}");
        // TCP_NODELAY: small commands go out at once. Without it, a writer
        // whose replies are off waits for the peer's delayed ACK (40 ms)
        // before each command after the first.
        let info = url
            .into_connection_info()
            .map_err(failed)?
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = match ca {
            Some(_) if !url.starts_with("rediss://") => {
                return Err(
                    "SESSCACHE_STORE_CA_FILE is set but SESSCACHE_STORE is not a rediss:// URL"
                        .into(),
                );
            }
            Some(root_cert) => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
            .map_err(|e| format!("SESSCACHE_STORE_CA_FILE: {e}"))?,
            None => Client::open(info).map_err(failed)?,
        };
        Ok(RedisBackend { client, timeout })
    }

    fn open(&self, read_timeout: Duration) -> Result<Connection, StoreError> {
        let conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(failed)?;
        conn.set_read_timeout(Some(read_timeout)).map_err(failed)?;
        conn.set_write_timeout(Some(self.timeout)).map_err(failed)?;
        Ok(conn)
    }
}

struct RedisConnection {
    conn: Connection,
    /// The server does not know GETDEL (Redis before 6.2): takes run
    /// [`TAKE_SCRIPT`] instead.
    without_getdel: bool,
}

/// GETDEL as a script, for a Redis without it: a script runs with no other
/// client's command between its calls, so the take stays atomic.
const TAKE_SCRIPT: &str =
    "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v";

fn is_unknown_command(e: &redis::RedisError) -> bool {
    e.code() == Some("ERR") && e.to_string().contains("unknown command")
}

impl StoreConnection for RedisConnection {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.conn)
            .map_err(failed)
    }

    fn take(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.without_getdel {
            match redis::cmd("GETDEL").arg(key).query(&mut self.conn) {
                Err(e) if is_unknown_command(&e) => self.without_getdel = true,
                answer => return answer.map_err(failed),
            }
        }
        redis::cmd("EVAL")
            .arg(TAKE_SCRIPT)
            .arg(1)
            .arg(key)
            .query(&mut self.conn)
            .map_err(failed)
    }
}

/// A connection with replies switched off (`CLIENT REPLY OFF`): commands
/// are written and never waited for.
struct RedisWriter(Connection);

impl StoreWriter for RedisWriter {
    fn send(&mut self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for op in ops {
            match op {
                WriteOp::Put {
                    key,
                    value,
                    ttl_secs,
                } => {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("EX")
                        .arg((*ttl_secs).max(1));
                }
                WriteOp::Delete { key } => {
                    pipe.cmd("DEL").arg(key);
                }
                WriteOp::Publish { channel, message } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(message);
                }
            }
        }
        self.0
            .send_packed_command(&pipe.get_packed_pipeline())
            .map_err(failed)
    }
}

impl Backend for RedisBackend {
    fn connect(&self) -> Result<Box<dyn StoreConnection>, StoreError> {
        Ok(Box::new(RedisConnection {
            conn: self.open(self.timeout)?,
            without_getdel: false,
        }))
    }

    fn connect_writer(&self) -> Result<Box<dyn StoreWriter>, StoreError> {
        let mut conn = self.open(self.timeout)?;
        // One answer before replies go off: a store that refuses us (no or
        // the wrong credentials) refuses this PING, where it would refuse
        // every later write unheard.
        redis::cmd("PING").query::<()>(&mut conn).map_err(failed)?;
        // Redis answers nothing to this command, nor to any after it on this
        // connection, so nothing ever has to be read back.
        conn.send_packed_command(
            &redis::cmd("CLIENT")
                .arg("REPLY")
                .arg("OFF")
                .get_packed_command(),
        )
        .map_err(failed)?;
        Ok(Box::new(RedisWriter(conn)))
    }

    fn listen(
        &self,
        channel: &str,
        subscribed: &mut dyn FnMut(),
        deliver: &mut dyn FnMut(&[u8]),
    ) -> StoreError {
        // A subscriber waits for messages, so its reads may block long; a
        // timeout still lets a dead connection be noticed and replaced.
        let mut conn = match self.open(Duration::from_secs(30)) {
            Ok(c) => c,
            Err(e) => return e,
        };
        // Subscribed as a plain command, so that a refusal (an ACL user
        // without the channel) is an error here; the pub/sub helper's
        // subscribe discards the server's answer.
        if let Err(e) = redis::cmd("SUBSCRIBE").arg(channel).exec(&mut conn) {
            return failed(e);
        }
        subscribed();
        let mut pubsub = conn.as_pubsub();
        loop {
            match pubsub.get_message() {
                Ok(msg) => deliver(msg.get_payload_bytes()),
                Err(e) if e.is_timeout() => continue,
                Err(e) => return failed(e),
            }
        }
    }
}
