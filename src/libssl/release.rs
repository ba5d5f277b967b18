//! Where libssl's release lines differ in what an application of the
//! session cache observes, and which of those behaviours the running libssl
//! has: one [`ReleaseBehaviour`], chosen once from `OpenSSL_version_num()`.
//! A release the library was not tested on gets none, and the library
//! passes every call through ([`super::serving`]).

use crate::cache::Expiry;

/// How libssl keeps a session's time and timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionClock {
    /// `time_t` seconds; `time + timeout` past `time_t`'s range never
    /// expires (3.0).
    Seconds,
    /// `OSSL_TIME` nanoseconds (3.3 and later): a time or timeout is the
    /// `time_t` value in nanoseconds in unsigned 64-bit arithmetic (so
    /// negative and huge values wrap), and a sum past that range saturates
    /// to "never".
    Nanoseconds,
}

/// The behaviours of libssl's session cache that differ between release
/// lines, for one release.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReleaseBehaviour {
    pub clock: SessionClock,
    /// `SSL_CTX_add_session` of the session already cached re-links it in
    /// expiry order (3.0, 3.5 before 3.5.7); later releases only update its
    /// time and leave it where it was.
    pub readd_moves_session: bool,
    /// A flush or an eviction that removes several sessions calls the
    /// remove callback newest first, freeing each session right after its
    /// callback (4.0.2 and later, 3.6.5 and later); earlier releases call
    /// them oldest first, and a flush frees after the last callback.
    pub removals_newest_first: bool,
}

/// Releases of one line that the library reproduces exactly: from the
/// first release of the line that the differential tests ran against, up
/// to the first later one known from its sources to change what an
/// application observes in a way the tests have not seen (if any).
pub struct ServedReleases {
    pub line: (u64, u64),
    pub from_patch: u64,
    pub before_patch: Option<u64>,
}

/// What the library serves; every other release passes through. Earlier
/// releases of a line than the first tested one behave differently in
/// places (re-adding a session, the order of removals), so they are not
/// guessed at.
pub const SERVED_RELEASES: &[ServedReleases] = &[
    ServedReleases {
        line: (3, 0),
        from_patch: 0,
        before_patch: None,
    },
    ServedReleases {
        line: (3, 5),
        from_patch: 7,
        before_patch: None,
    },
    // 3.6.5 calls the remove callbacks newest first; the tests ran
    // against 3.6.3.
    ServedReleases {
        line: (3, 6),
        from_patch: 3,
        before_patch: Some(5),
    },
    ServedReleases {
        line: (4, 0),
        from_patch: 2,
        before_patch: None,
    },
];

impl ServedReleases {
    fn contains(&self, version_num: u64) -> bool {
        let p = patch(version_num);
        release_line(version_num) == self.line
            && p >= self.from_patch
            && self.before_patch.is_none_or(|before| p < before)
    }

    /// "3.0", "3.5.7 and later 3.5", "3.6.3 to 3.6.4".
    fn text(&self) -> String {
        let (major, minor) = self.line;
        match (self.from_patch, self.before_patch) {
            (0, None) => format!("{major}.{minor}"),
            (from, None) => format!("{major}.{minor}.{from} and later {major}.{minor}"),
            (from, Some(before)) => {
                format!("{major}.{minor}.{from} to {major}.{minor}.{}", before - 1)
            }
        }
    }
}

/// How the served releases are named to a user.
pub fn served_text() -> String {
    let named: Vec<String> = SERVED_RELEASES.iter().map(ServedReleases::text).collect();
    named.join(", ")
}

/// (major, minor) of an `OpenSSL_version_num()` value (`0xMNN00PP0`).
pub fn release_line(version_num: u64) -> (u64, u64) {
    (version_num >> 28, (version_num >> 20) & 0xff)
}

/// The patch number of an `OpenSSL_version_num()` value.
fn patch(version_num: u64) -> u64 {
    (version_num >> 4) & 0xff
}

/// "major.minor.patch" of an `OpenSSL_version_num()` value.
pub fn version_text(version_num: u64) -> String {
    let (major, minor) = release_line(version_num);
    format!("{major}.{minor}.{}", patch(version_num))
}

impl ReleaseBehaviour {
    /// libssl 3.0's behaviour, the reference the others differ from.
    pub const OF_3_0: ReleaseBehaviour = ReleaseBehaviour {
        clock: SessionClock::Seconds,
        readd_moves_session: true,
        removals_newest_first: false,
    };

    /// The behaviour of libssl release `version_num`, whatever its line;
    /// [`ReleaseBehaviour::of_served`] is the one the library acts on.
    fn of_release(version_num: u64) -> ReleaseBehaviour {
        let line = release_line(version_num);
        ReleaseBehaviour {
            clock: if line >= (3, 3) {
                SessionClock::Nanoseconds
            } else {
                SessionClock::Seconds
            },
            readd_moves_session: line < (3, 5) || (line == (3, 5) && patch(version_num) < 7),
            removals_newest_first: line > (4, 0)
                || (line == (4, 0) && patch(version_num) >= 2)
                || (line == (3, 6) && patch(version_num) >= 5),
        }
    }

    /// The behaviour of `version_num`, if it is one of [`SERVED_RELEASES`].
    pub fn of_served(version_num: u64) -> Option<ReleaseBehaviour> {
        SERVED_RELEASES
            .iter()
            .any(|served| served.contains(version_num))
            .then(|| ReleaseBehaviour::of_release(version_num))
    }

    /// When a session of this `time` and `timeout` (in seconds, as
    /// `SSL_SESSION_get_time`/`get_timeout` give them) stops being
    /// resumable, in libssl's expiry order. With nanoseconds, libssl's own
    /// value also has the fraction of a second the session was made at;
    /// `Session::expiry` reads that where it can.
    pub fn expiry(&self, time: i64, timeout: i64) -> Expiry {
        match self.clock {
            SessionClock::Seconds => Expiry::from_time_and_timeout(time, timeout),
            SessionClock::Nanoseconds => {
                // Both are libssl's u64 nanoseconds in whole seconds.
                let ns = |s: i64| u128::from(s as u64) * u128::from(NANOS);
                let sum = ns(time) + ns(timeout);
                Expiry::from_nanos(u64::try_from(sum).unwrap_or(u64::MAX))
            }
        }
    }

    /// The time `t` (seconds, as given to `SSL_CTX_flush_sessions(_ex)` or
    /// read from `time(NULL)`) as a time to compare expiries with.
    pub fn time(&self, t: i64) -> i64 {
        match self.clock {
            SessionClock::Seconds => t,
            // libssl compares `t` in nanoseconds, wrapped to 64 bits unsigned.
            SessionClock::Nanoseconds => Expiry::nanos_as_time((t as u64).wrapping_mul(NANOS)),
        }
    }

    /// Whole seconds from `now` until `expiry` (`None`: never).
    pub fn seconds_left(&self, expiry: Expiry, now: i64) -> Option<u64> {
        let left = expiry.left(self.time(now))?;
        Some(match self.clock {
            SessionClock::Seconds => left,
            SessionClock::Nanoseconds => left / NANOS,
        })
    }
}

/// Nanoseconds in a second: libssl's `OSSL_TIME` unit.
pub(super) const NANOS: u64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    const V3_0_19: u64 = 0x3000_0130;
    const V3_0_22: u64 = 0x3000_0160;
    const V3_3_0: u64 = 0x3030_0000;
    const V3_4_1: u64 = 0x3040_0010;
    const V3_5_5: u64 = 0x3050_0050;
    const V3_5_7: u64 = 0x3050_0070;
    const V3_6_3: u64 = 0x3060_0030;
    const V3_6_5: u64 = 0x3060_0050;
    const V4_0_1: u64 = 0x4000_0010;
    const V4_0_2: u64 = 0x4000_0020;

    #[test]
    fn each_release_gets_its_behaviour() {
        let b = ReleaseBehaviour::of_release;
        assert_eq!(b(V3_0_19), ReleaseBehaviour::OF_3_0);
        assert_eq!(b(V3_0_22).clock, SessionClock::Seconds);
        assert!(b(V3_0_22).readd_moves_session);
        assert_eq!(b(V3_3_0).clock, SessionClock::Nanoseconds);
        assert_eq!(b(V3_4_1).clock, SessionClock::Nanoseconds);
        assert!(b(V3_5_5).readd_moves_session);
        assert!(!b(V3_5_7).readd_moves_session);
        for v in [V3_0_22, V3_5_5, V3_5_7, V3_6_3, V4_0_1] {
            assert!(!b(v).removals_newest_first, "{}", version_text(v));
        }
        for v in [V3_6_5, V4_0_2, 0x4010_0000] {
            assert!(b(v).removals_newest_first, "{}", version_text(v));
        }
        for v in [V3_5_7, V3_6_5, V4_0_2] {
            assert_eq!(b(v).clock, SessionClock::Nanoseconds);
            assert!(!b(v).readd_moves_session);
        }
    }

    #[test]
    fn only_served_releases_get_a_behaviour() {
        let served = |v| ReleaseBehaviour::of_served(v).is_some();
        for v in [V3_0_19, V3_0_22, V3_5_7, 0x3050_0080, V3_6_3, 0x3060_0040] {
            assert!(served(v), "{}", version_text(v));
        }
        for v in [V4_0_2, 0x4000_0030] {
            assert!(served(v), "{}", version_text(v));
            assert!(
                ReleaseBehaviour::of_served(v)
                    .unwrap()
                    .removals_newest_first
            );
        }
        let untested = [
            0x3010_0000,
            0x1010_117f,
            V3_3_0,
            V3_4_1,
            V3_5_5,
            V3_6_5,
            V4_0_1,
        ];
        for v in untested {
            assert!(!served(v), "{}", version_text(v));
        }
        assert_eq!(
            served_text(),
            "3.0, 3.5.7 and later 3.5, 3.6.3 to 3.6.4, 4.0.2 and later 4.0"
        );
        assert_eq!(version_text(V3_5_7), "3.5.7");
    }

    #[test]
    fn seconds_overflow_time_t_and_nanoseconds_saturate() {
        let old = ReleaseBehaviour::of_release(V3_0_22);
        let new = ReleaseBehaviour::of_release(V3_5_7);
        let now = 1_800_000_000;
        for line in [old, new] {
            assert!(!line.expiry(now, 300).has_passed(line.time(now + 300)));
            assert!(line.expiry(now, 300).has_passed(line.time(now + 301)));
            assert_eq!(
                line.seconds_left(line.expiry(now, 300), now + 100),
                Some(200)
            );
        }
        // SSL_CTX_set_timeout(-5) reads back as a huge timeout on 3.3+:
        // its sum with the time saturates, the session never expires.
        let huge = 18_446_744_068;
        assert!(!new.expiry(now, huge).has_passed(i64::MAX));
        assert_eq!(new.seconds_left(new.expiry(now, huge), now), None);
        assert!(new.expiry(now, huge) > new.expiry(18_000_000_000, 0));
        assert!(old.expiry(now, huge).has_passed(now + huge + 1));
    }

    #[test]
    fn flush_times_wrap_with_nanoseconds() {
        let old = ReleaseBehaviour::of_release(V3_0_22);
        let new = ReleaseBehaviour::of_release(V3_5_7);
        let session = |line: ReleaseBehaviour, timeout| line.expiry(1_800_000_000, timeout);
        // A negative time removes nothing on 3.0.
        assert!(!session(old, 7200).has_passed(old.time(-1)));
        // A time of -1 wraps to the top of libssl's nanosecond range:
        // later than every finite expiry.
        assert!(session(new, 7200).has_passed(new.time(-1)));
        assert!(!session(new, 18_446_744_068).has_passed(new.time(-1)));
        // A time past libssl's nanosecond range wraps to an earlier one.
        assert!(
            new.expiry(1_553_255_926, 0)
                .has_passed(new.time(20_000_000_000))
        );
        assert!(
            !new.expiry(1_553_255_927, 0)
                .has_passed(new.time(20_000_000_000))
        );
    }
}
