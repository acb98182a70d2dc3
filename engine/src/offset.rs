//! Newtypes for the numbers a log is made of: offsets and leader epochs.
//!
//! Offsets and epochs are never mixed with plain integers or with each other; the conversion to
//! the wire's `i64`/`i32` happens only at the edges (the server's codec, the on-disk format).

use std::fmt;

/// The position of a record in a partition's log. The first record ever appended has offset 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl Offset {
    /// Offset 0, the start of a new log.
    pub const ZERO: Offset = Offset(0);

    /// The raw value, for the wire and the disk.
    pub const fn value(self) -> i64 {
        self.0
    }

    /// This offset plus `n` records.
    pub const fn plus(self, n: i64) -> Offset {
        Offset(self.0 + n)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The epoch of a partition's leadership. Every leader change bumps it; each batch records the
/// epoch of the leader that appended it (the batch header's `partitionLeaderEpoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// The epoch used by logs that are not replicated (and by Kafka clients, which send -1).
    pub const UNKNOWN: LeaderEpoch = LeaderEpoch(-1);

    /// The raw value, for the wire and the disk.
    pub const fn value(self) -> i32 {
        self.0
    }
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
