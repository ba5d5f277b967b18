//! The Redis backend, through the `redis` crate's synchronous client.
//! Every connection gets the configured timeout for connecting, reading and
//! writing, so no call can block a handshake for longer.

use std::time::Duration;

use redis::{Client, Connection};

use super::{Backend, StoreConnection, StoreError};

pub struct RedisBackend {
    client: Client,
    timeout: Duration,
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

impl RedisBackend {
    pub fn new(url: &str, timeout: Duration) -> Result<RedisBackend, StoreError> {
        Ok(RedisBackend {
            client: Client::open(url).map_err(failed)?,
            timeout,
        })
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

struct RedisConnection(Connection);

impl StoreConnection for RedisConnection {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.0)
            .map_err(failed)
    }

    fn put(&mut self, key: &str, value: &[u8], ttl_secs: u64) -> Result<(), StoreError> {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(ttl_secs.max(1))
            .query(&mut self.0)
            .map_err(failed)
    }

    fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(key)
            .query::<i64>(&mut self.0)
            .map(|_| ())
            .map_err(failed)
    }

    fn publish(&mut self, channel: &str, message: &[u8]) -> Result<(), StoreError> {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query::<i64>(&mut self.0)
            .map(|_| ())
            .map_err(failed)
    }
}

impl Backend for RedisBackend {
    fn connect(&self) -> Result<Box<dyn StoreConnection>, StoreError> {
        Ok(Box::new(RedisConnection(self.open(self.timeout)?)))
    }

    fn listen(&self, channel: &str, deliver: &mut dyn FnMut(&[u8])) -> StoreError {
        // A subscriber waits for messages, so its reads may block long; a
        // timeout still lets a dead connection be noticed and replaced.
        let mut conn = match self.open(Duration::from_secs(30)) {
            Ok(c) => c,
            Err(e) => return e,
        };
        let mut pubsub = conn.as_pubsub();
        if let Err(e) = pubsub.subscribe(channel) {
            return failed(e);
        }
        loop {
            match pubsub.get_message() {
                Ok(msg) => deliver(msg.get_payload_bytes()),
                Err(e) if e.is_timeout() => continue,
                Err(e) => return failed(e),
            }
        }
    }
}
