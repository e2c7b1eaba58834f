//! The signatures already accepted, so that none is accepted twice while its timestamp is
//! within the tolerance (after that the timestamp alone refuses it).
//!
//! Bounded: at most `capacity` signatures, each forgotten once its window closed. When it is
//! full of signatures still in their window, new ones are refused (503) rather than an old
//! one forgotten early, which would make that one replayable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// What the cache says of a signature.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// Not seen in its window: it is now recorded.
    First,
    /// Already accepted once.
    Again,
    /// Full of signatures still in their windows; the soonest is forgotten in this many seconds.
    Full { retry_after: u64 },
}

pub(super) struct ReplayCache {
    capacity: usize,
    /// Each signature → the last second (unix) its timestamp is acceptable.
    expires: HashMap<[u8; 32], i64>,
    /// The same entries, soonest expiry first.
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self { capacity, expires: HashMap::new(), by_expiry: BinaryHeap::new() }
    }

    /// Records `mac`, acceptable until `expires` (inclusive), unless it was recorded before.
    pub(super) fn record(&mut self, mac: [u8; 32], expires: i64, now: i64) -> Seen {
        while let Some(Reverse((e, m))) = self.by_expiry.peek() {
            if *e >= now {
                break;
            }
            self.expires.remove(m);
            self.by_expiry.pop();
        }
        if self.expires.contains_key(&mac) {
            return Seen::Again;
        }
        if self.expires.len() >= self.capacity {
            let soonest = self.by_expiry.peek().map_or(now, |Reverse((e, _))| *e);
            return Seen::Full { retry_after: soonest.saturating_sub(now).saturating_add(1).max(1) as u64 };
        }
        self.expires.insert(mac, expires);
        self.by_expiry.push(Reverse((expires, mac)));
        Seen::First
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.expires.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_refused_again_until_its_window_closes() {
        let mut cache = ReplayCache::new(10);
        assert_eq!(cache.record([1; 32], 1300, 1000), Seen::First);
        assert_eq!(cache.record([1; 32], 1300, 1000), Seen::Again);
        assert_eq!(cache.record([1; 32], 1300, 1300), Seen::Again, "the last second of its window");
        assert_eq!(cache.record([2; 32], 1600, 1301), Seen::First);
        assert_eq!(cache.len(), 1, "the first one's window closed and it was forgotten");
    }

    #[test]
    fn a_full_cache_refuses_new_signatures_instead_of_forgetting_live_ones() {
        let mut cache = ReplayCache::new(2);
        assert_eq!(cache.record([1; 32], 1300, 1000), Seen::First);
        assert_eq!(cache.record([2; 32], 1310, 1000), Seen::First);
        assert_eq!(cache.record([3; 32], 1320, 1010), Seen::Full { retry_after: 291 });
        assert_eq!(cache.record([1; 32], 1300, 1010), Seen::Again, "still remembered");
        assert_eq!(cache.record([3; 32], 1320, 1301), Seen::First, "room again once one expired");
        assert_eq!(cache.len(), 2);
    }
}
