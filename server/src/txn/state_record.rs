//! A transactional id's state as a `__transaction_state` record: the key is Kafka's
//! TransactionLogKey v0 (version 0, then the id as a length-prefixed string), so the topic is
//! compacted per id; the value is a version tag (0x5354) and JSON, read only by Strata.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Value version tag of Strata's encoding (not one of Kafka's TransactionLogValue versions).
const VALUE_VERSION: [u8; 2] = [0x53, 0x54];

/// A transaction's state, Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction open (a producer id was handed out, or the last one completed long ago).
    Empty,
    /// Partitions were added: a transaction is open.
    Ongoing,
    /// EndTxn(commit) accepted: the commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a new producer: the abort markers are being written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
}

impl TxnState {
    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Every state, for ListTransactions' filters.
    pub const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    /// Whether markers are being written (the transaction is ending).
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// What the coordinator knows of one transactional id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    /// Its producer id.
    pub producer_id: i64,
    /// The current epoch: an older one is fenced.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// The state of its current (or last) transaction.
    pub state: TxnState,
    /// Partitions of the current transaction (the ones markers go to).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction began (its first AddPartitionsToTxn), ms since the epoch.
    pub start_ms: i64,
    /// When the state last changed, ms since the epoch.
    pub update_ms: i64,
    /// KIP-890 part 2 (transaction version 2): the producer id and epoch the client ended its
    /// last transaction with. Ending bumps the epoch, so the client's retry of that EndTxn
    /// comes with these and is answered as the ending's outcome, not fenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<(i64, i16)>,
    /// The producer id and epoch the markers of the prepared transaction carry, when not the
    /// current ones: a transaction-version-2 ending whose epoch bump overflowed gives the
    /// client a new producer id, and the markers end the old one's transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markers_as: Option<(i64, i16)>,
}

impl TxnMetadata {
    /// The producer id and epoch the markers of the current transaction carry.
    pub fn marker_producer(&self) -> (i64, i16) {
        self.markers_as
            .unwrap_or((self.producer_id, self.producer_epoch))
    }
}

/// The record key of `transactional_id`.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + transactional_id.len());
    k.extend_from_slice(&0i16.to_be_bytes());
    let len = i16::try_from(transactional_id.len()).unwrap_or(i16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(transactional_id.as_bytes());
    k
}

/// The transactional id of a record key, if it is one.
pub fn decode_key(key: &[u8]) -> Option<String> {
    let (version, rest) = key.split_first_chunk::<2>()?;
    if i16::from_be_bytes(*version) != 0 {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::try_from(i16::from_be_bytes(*len)).ok()?;
    (rest.len() == len)
        .then(|| String::from_utf8(rest.to_vec()).ok())
        .flatten()
}

/// The record value of `meta`.
pub fn encode_value(meta: &TxnMetadata) -> Vec<u8> {
    let mut v = VALUE_VERSION.to_vec();
    // Serializing a struct of plain fields cannot fail.
    v.extend(serde_json::to_vec(meta).unwrap_or_default());
    v
}

/// The metadata of a record value, if it is Strata's encoding.
pub fn decode_value(value: &[u8]) -> Option<TxnMetadata> {
    let rest = value.strip_prefix(&VALUE_VERSION)?;
    serde_json::from_slice(rest).ok()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let meta = TxnMetadata {
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("orders".to_string(), 2),
                ("__consumer_offsets".to_string(), 7),
            ]
            .into_iter()
            .collect(),
            start_ms: 1_700_000_000_000,
            update_ms: 1_700_000_000_500,
            ended_by: Some((42, 2)),
            markers_as: None,
        };
        assert_eq!(decode_key(&encode_key("app-1")).unwrap(), "app-1");
        assert_eq!(decode_value(&encode_value(&meta)).unwrap(), meta);
        assert_eq!(
            decode_key(b"\x00\x01\x00\x01a"),
            None,
            "another key version"
        );
        assert_eq!(decode_value(b"{}"), None, "no version tag");
        // A record written before the KIP-890 part 2 fields reads with none of them.
        let mut old = serde_json::to_value(&meta).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("ended_by");
        fields.remove("markers_as");
        let mut bytes = VALUE_VERSION.to_vec();
        bytes.extend(serde_json::to_vec(&old).unwrap());
        let read = decode_value(&bytes).unwrap();
        assert_eq!((read.ended_by, read.markers_as), (None, None));
    }
}
