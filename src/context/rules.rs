//! libssl's session-cache decisions that need no libssl to make: what
//! `ssl_update_cache` stores, the mode libssl itself is given, when the
//! automatic flush runs and on which counter, which `SSL_CTX_ctrl`
//! commands are the cache's, which removals leave the shared store and how
//! libssl's counters are corrected for hits it never saw. Kept apart from [`super::CtxState`] so each is unit-tested.

use std::ffi::{c_int, c_long};

use super::{
    CTRL_GET_SESS_CACHE_MODE, CTRL_SESS_ACCEPT_GOOD, CTRL_SESS_CACHE_FULL, CTRL_SESS_CONNECT_GOOD,
    CTRL_SESS_NUMBER, CTRL_SET_SESS_CACHE_SIZE, SESS_CACHE_CLIENT, SESS_CACHE_NO_AUTO_CLEAR,
    SESS_CACHE_NO_INTERNAL_STORE, SESS_CACHE_SERVER, SESS_CACHE_UPDATE_TIME,
};
use crate::diag::Event;
use crate::libssl::{SSL_OP_NO_ANTI_REPLAY, SSL_OP_NO_TICKET};

/// What `ssl_update_cache` looks at, for a connection that has a new
/// session.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewSessionFacts {
    pub tls13: bool,
    pub server: bool,
    pub max_early_data: u32,
    pub options: u64,
    pub has_remove_cb: bool,
}

/// Whether libssl adds the new session to its internal cache (the mode's
/// `NO_INTERNAL_STORE` aside). A TLS 1.3 server's session normally lives
/// in a stateless ticket and is not cached, unless it can carry early data
/// under anti-replay (the cache is the replay check), the application asked
/// to hear of removals, or tickets are stateful.
pub fn libssl_caches_new_session(f: NewSessionFacts) -> bool {
    !f.tls13
        || !f.server
        || early_data_single_use(f.max_early_data, f.options)
        || f.has_remove_cb
        || f.options & SSL_OP_NO_TICKET != 0
}

/// Whether libssl treats a session of this server as single use: it can
/// carry early data and anti-replay is on, so libssl removes it from the
/// cache when it is resumed.
pub fn early_data_single_use(max_early_data: u32, options: u64) -> bool {
    max_early_data > 0 && options & SSL_OP_NO_ANTI_REPLAY == 0
}

/// The cache mode libssl itself holds for a ctx: its own store off;
/// `UPDATE_TIME` is applied by us (libssl's own add must not apply it a
/// second time). Its internal lookup stays as the application set it: the
/// table it looks in holds only parked sessions, and a miss there goes on
/// to our get hook.
pub fn mode_for_libssl(app_mode: u32) -> c_long {
    c_long::from((app_mode & !SESS_CACHE_UPDATE_TIME) | SESS_CACHE_NO_INTERNAL_STORE)
}

/// Whether the automatic flush is due after a good handshake: libssl
/// flushes every 255 of them (its counter's low byte all ones) on the
/// side the mode caches, unless `NO_AUTO_CLEAR`.
pub fn auto_flush_due(mode: u32, server: bool, good_handshakes: c_long) -> bool {
    let side = if server {
        SESS_CACHE_SERVER
    } else {
        SESS_CACHE_CLIENT
    };
    mode & SESS_CACHE_NO_AUTO_CLEAR == 0 && mode & side == side && good_handshakes & 0xff == 0xff
}

/// The counter of good handshakes whose low byte times libssl's
/// automatic flush: accepted ones on a server, connected ones on a client.
pub fn good_handshakes_counter(server: bool) -> c_int {
    if server {
        CTRL_SESS_ACCEPT_GOOD
    } else {
        CTRL_SESS_CONNECT_GOOD
    }
}

/// Whether an `SSL_CTX_ctrl` command is one of the session cache's (its
/// statistics, size and mode), which sesscache answers.
pub fn is_cache_command(cmd: c_int) -> bool {
    (CTRL_SESS_NUMBER..=CTRL_SESS_CACHE_FULL).contains(&cmd)
        || (CTRL_SET_SESS_CACHE_SIZE..=CTRL_GET_SESS_CACHE_MODE).contains(&cmd)
}

/// Whether a session leaving the cache this way leaves the shared store
/// too: one removed or expired must not be resumed elsewhere; one evicted
/// for room, or dropped with its ctx, stays valid there.
pub fn removal_leaves_store(event: Event) -> bool {
    matches!(event, Event::Remove | Event::Expire)
}

/// libssl's callback-hit or miss counter with our own hits taken out: they
/// reach libssl through our get hook, so it counted each as a callback hit
/// and, not finding a parked session first, as a miss.
pub fn without_our_hits(libssl_count: c_long, our_hits: u64) -> c_long {
    let hits = c_long::try_from(our_hits).unwrap_or(c_long::MAX);
    libssl_count.saturating_sub(hits).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls13_server() -> NewSessionFacts {
        NewSessionFacts {
            tls13: true,
            server: true,
            ..Default::default()
        }
    }

    #[test]
    fn tls13_server_sessions_are_cached_only_for_a_reason() {
        assert!(!libssl_caches_new_session(tls13_server()));
        let early = NewSessionFacts {
            max_early_data: 16384,
            ..tls13_server()
        };
        assert!(libssl_caches_new_session(early));
        let early_no_anti_replay = NewSessionFacts {
            options: SSL_OP_NO_ANTI_REPLAY,
            ..early
        };
        assert!(!libssl_caches_new_session(early_no_anti_replay));
        let remove_cb = NewSessionFacts {
            has_remove_cb: true,
            ..tls13_server()
        };
        assert!(libssl_caches_new_session(remove_cb));
        let no_ticket = NewSessionFacts {
            options: SSL_OP_NO_TICKET,
            ..tls13_server()
        };
        assert!(libssl_caches_new_session(no_ticket));
    }

    #[test]
    fn tls12_and_client_sessions_are_always_cached() {
        assert!(libssl_caches_new_session(NewSessionFacts {
            server: true,
            ..Default::default()
        }));
        assert!(libssl_caches_new_session(NewSessionFacts {
            tls13: true,
            ..Default::default()
        }));
    }

    #[test]
    fn libssl_keeps_its_store_off_and_never_updates_time_itself() {
        assert_eq!(
            mode_for_libssl(SESS_CACHE_SERVER),
            c_long::from(SESS_CACHE_SERVER | SESS_CACHE_NO_INTERNAL_STORE)
        );
        assert_eq!(
            mode_for_libssl(SESS_CACHE_SERVER | SESS_CACHE_UPDATE_TIME | SESS_CACHE_NO_AUTO_CLEAR),
            c_long::from(
                SESS_CACHE_SERVER | SESS_CACHE_NO_AUTO_CLEAR | SESS_CACHE_NO_INTERNAL_STORE
            )
        );
        assert_eq!(
            mode_for_libssl(0),
            c_long::from(SESS_CACHE_NO_INTERNAL_STORE)
        );
    }

    #[test]
    fn auto_flush_every_255_good_handshakes_on_the_cached_side() {
        assert!(auto_flush_due(SESS_CACHE_SERVER, true, 255));
        assert!(auto_flush_due(SESS_CACHE_SERVER, true, 511));
        assert!(!auto_flush_due(SESS_CACHE_SERVER, true, 254));
        assert!(!auto_flush_due(SESS_CACHE_SERVER, true, 256));
        assert!(!auto_flush_due(SESS_CACHE_SERVER, false, 255));
        assert!(auto_flush_due(SESS_CACHE_CLIENT, false, 255));
        assert!(auto_flush_due(
            SESS_CACHE_SERVER | SESS_CACHE_CLIENT,
            false,
            255
        ));
        assert!(!auto_flush_due(
            SESS_CACHE_SERVER | SESS_CACHE_NO_AUTO_CLEAR,
            true,
            255
        ));
        assert!(!auto_flush_due(0, true, 255));
    }

    #[test]
    fn our_hits_come_off_libssl_counts_never_below_zero() {
        assert_eq!(without_our_hits(10, 4), 6);
        assert_eq!(without_our_hits(4, 4), 0);
        assert_eq!(without_our_hits(3, 4), 0);
        assert_eq!(without_our_hits(5, u64::MAX), 0);
    }

    #[test]
    fn the_auto_flush_counts_the_side_of_the_connection() {
        assert_eq!(good_handshakes_counter(true), CTRL_SESS_ACCEPT_GOOD);
        assert_eq!(good_handshakes_counter(false), CTRL_SESS_CONNECT_GOOD);
    }

    #[test]
    fn the_cache_commands_are_the_statistics_size_and_mode() {
        // SSL_CTRL_SESS_NUMBER .. SSL_CTRL_SESS_CACHE_FULL, then
        // SSL_CTRL_SET_SESS_CACHE_SIZE .. SSL_CTRL_GET_SESS_CACHE_MODE.
        for cmd in (20..=31).chain(42..=45) {
            assert!(is_cache_command(cmd), "{cmd}");
        }
        for cmd in [0, 19, 32, 41, 46, 78] {
            assert!(!is_cache_command(cmd), "{cmd}");
        }
    }

    #[test]
    fn only_a_removal_or_expiry_leaves_the_store() {
        assert!(removal_leaves_store(Event::Remove));
        assert!(removal_leaves_store(Event::Expire));
        assert!(!removal_leaves_store(Event::Evict));
        assert!(!removal_leaves_store(Event::CtxFree));
        assert!(!removal_leaves_store(Event::FlushAll));
    }
}
