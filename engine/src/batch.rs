//! RecordBatch v2 framing: header fields, CRC-32C, validation and stamping. Pure: no I/O.
//!
//! Layout of a batch header (all big-endian), as Kafka clients send it:
//!
//! ```text
//!  0  baseOffset            i64   assigned by the log (outside the CRC)
//!  8  batchLength           i32   bytes after this field
//! 12  partitionLeaderEpoch  i32   stamped by the log (outside the CRC)
//! 16  magic                 i8    must be 2
//! 17  crc                   u32   CRC-32C of bytes 21..end
//! 21  attributes            i16   bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
//! 23  lastOffsetDelta       i32
//! 27  baseTimestamp         i64
//! 35  maxTimestamp          i64
//! 43  producerId            i64
//! 51  producerEpoch         i16
//! 53  baseSequence          i32
//! 57  recordsCount          i32
//! 61  records ...
//! ```
//!
//! Invariant: a batch that passed [`validate`] has `batchLength + 12` bytes, magic 2, a CRC that
//! matches, and (for client batches) `recordsCount == lastOffsetDelta + 1 >= 1`. Because the two
//! fields the log rewrites (base offset, leader epoch) lie outside the CRC, stamping never
//! invalidates a batch.

use crate::error::BatchError;
use crate::offset::{LeaderEpoch, Offset};

/// Size of the fixed RecordBatch v2 header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before and including the length field (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Magic byte of RecordBatch v2.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_POS: usize = 0;
const LENGTH_POS: usize = 8;
const LEADER_EPOCH_POS: usize = 12;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;
const LAST_OFFSET_DELTA_POS: usize = 23;
const BASE_TIMESTAMP_POS: usize = 27;
const MAX_TIMESTAMP_POS: usize = 35;
const PRODUCER_ID_POS: usize = 43;
const PRODUCER_EPOCH_POS: usize = 51;
const BASE_SEQUENCE_POS: usize = 53;
const RECORDS_COUNT_POS: usize = 57;

const _: () = assert!(RECORDS_COUNT_POS + 4 == HEADER_BYTES);
const _: () = assert!(CRC_POS + 4 == ATTRIBUTES_POS);

pub use crate::compression::Compression;

/// Where a batch comes from, which decides how it is validated and numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A producer: the log assigns offsets; `recordsCount` must equal `lastOffsetDelta + 1`.
    Client,
    /// A follower copying its leader (or a compacted batch): offsets are kept as given, and
    /// compaction may have left fewer records than the offset delta spans.
    Replication,
}

/// The parsed fixed header of one batch. Cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset in the batch.
    pub base_offset: Offset,
    /// The `batchLength` field: bytes after it.
    pub batch_length: i32,
    /// Leader epoch stamped when the batch was appended.
    pub partition_leader_epoch: LeaderEpoch,
    /// Format magic (2).
    pub magic: i8,
    /// CRC-32C from the header.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: i16,
    /// Offset of the last record relative to the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Total size of the batch in bytes, header included.
    pub fn size(&self) -> usize {
        // batch_length was checked non-negative by `parse_header`.
        LOG_OVERHEAD + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(i64::from(self.last_offset_delta))
    }

    /// Offset after the batch: the log end offset once it is appended.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    /// The compression codec.
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes)
    }

    /// Whether this is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "callers read header fields of a buffer checked to hold a whole header"
)]
fn be_i16(b: &[u8], pos: usize) -> i16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[pos..pos + 2]);
    i16::from_be_bytes(a)
}

#[expect(
    clippy::indexing_slicing,
    reason = "callers read header fields of a buffer checked to hold a whole header"
)]
fn be_i32(b: &[u8], pos: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[pos..pos + 4]);
    i32::from_be_bytes(a)
}

#[expect(
    clippy::indexing_slicing,
    reason = "callers read header fields of a buffer checked to hold a whole header"
)]
fn be_i64(b: &[u8], pos: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    i64::from_be_bytes(a)
}

/// Parses the fixed header at the start of `bytes` (which must hold at least [`HEADER_BYTES`]).
/// Checks only what is needed to frame the batch: the length field.
pub fn parse_header(bytes: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::Truncated {
            position,
            needed: HEADER_BYTES,
            available: bytes.len(),
        });
    }
    let batch_length = be_i32(bytes, LENGTH_POS);
    if (batch_length as i64) < (HEADER_BYTES - LOG_OVERHEAD) as i64 {
        return Err(BatchError::InvalidLength {
            position,
            length: i64::from(batch_length),
            limit: i32::MAX as usize,
        });
    }
    Ok(BatchHeader {
        base_offset: Offset(be_i64(bytes, BASE_OFFSET_POS)),
        batch_length,
        partition_leader_epoch: LeaderEpoch(be_i32(bytes, LEADER_EPOCH_POS)),
        magic: bytes.get(MAGIC_POS).copied().unwrap_or(0) as i8,
        crc: be_i32(bytes, CRC_POS) as u32,
        attributes: be_i16(bytes, ATTRIBUTES_POS),
        last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA_POS),
        base_timestamp: be_i64(bytes, BASE_TIMESTAMP_POS),
        max_timestamp: be_i64(bytes, MAX_TIMESTAMP_POS),
        producer_id: be_i64(bytes, PRODUCER_ID_POS),
        producer_epoch: be_i16(bytes, PRODUCER_EPOCH_POS),
        base_sequence: be_i32(bytes, BASE_SEQUENCE_POS),
        records_count: be_i32(bytes, RECORDS_COUNT_POS),
    })
}

/// Computes the CRC-32C of a whole batch's checksummed region (attributes..end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_POS..).unwrap_or(&[]))
}

/// Validates one complete batch (`batch` is exactly one batch's bytes) and returns its header.
pub fn validate(
    batch: &[u8],
    position: usize,
    origin: Origin,
    max_bytes: usize,
) -> Result<BatchHeader, BatchError> {
    let header = parse_header(batch, position)?;
    if header.size() > max_bytes {
        return Err(BatchError::InvalidLength {
            position,
            length: i64::from(header.batch_length),
            limit: max_bytes,
        });
    }
    if header.size() != batch.len() {
        return Err(BatchError::Truncated {
            position,
            needed: header.size(),
            available: batch.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic {
            position,
            magic: header.magic,
        });
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            position,
            expected: header.crc,
            actual,
        });
    }
    let counts_ok = match origin {
        Origin::Client => {
            header.records_count >= 1
                && i64::from(header.last_offset_delta) + 1 == i64::from(header.records_count)
        }
        Origin::Replication => {
            header.records_count >= 0
                && header.last_offset_delta >= 0
                && i64::from(header.records_count) <= i64::from(header.last_offset_delta) + 1
        }
    };
    if header
        .base_offset
        .0
        .checked_add(i64::from(header.last_offset_delta) + 1)
        .is_none()
    {
        return Err(BatchError::OffsetOverflow { position });
    }
    if !counts_ok {
        return Err(BatchError::CountMismatch {
            position,
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Splits a buffer of concatenated batches by their length fields, without checking CRCs or
/// anything else: the headers with each batch's position in `bytes`. For callers that only need
/// header fields of batches the log validates anyway ([`validate_all`] builds on it).
pub fn frame(
    bytes: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut out = Vec::new();
    let mut position = 0usize;
    while let Some(rest) = bytes.get(position..).filter(|r| !r.is_empty()) {
        let header = parse_header(rest, position)?;
        if header.size() > max_batch_bytes {
            return Err(BatchError::InvalidLength {
                position,
                length: i64::from(header.batch_length),
                limit: max_batch_bytes,
            });
        }
        if header.size() > rest.len() {
            return Err(BatchError::Truncated {
                position,
                needed: header.size(),
                available: rest.len(),
            });
        }
        out.push((position, header));
        position += header.size();
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

/// Splits a buffer of concatenated batches and validates each. Returns the headers with each
/// batch's position in `bytes`. Fails on the first bad batch; then nothing may be written.
pub fn validate_all(
    bytes: &[u8],
    origin: Origin,
    max_batch_bytes: usize,
) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut out = frame(bytes, max_batch_bytes)?;
    for (position, header) in &mut out {
        let one = bytes
            .get(*position..*position + header.size())
            .ok_or(BatchError::Truncated {
                position: *position,
                needed: header.size(),
                available: bytes.len() - *position,
            })?;
        *header = validate(one, *position, origin, max_batch_bytes)?;
    }
    Ok(out)
}

/// Writes `value` at `pos` of a batch header. Invariant: `batch` holds a whole header (it was
/// validated, or built here), which the assertion checks.
fn put_field(batch: &mut [u8], pos: usize, value: &[u8]) {
    assert!(batch.len() >= HEADER_BYTES, "a batch holds a whole header");
    if let Some(field) = batch.get_mut(pos..pos + value.len()) {
        field.copy_from_slice(value);
    }
}

/// Writes the base offset into a batch header (outside the CRC).
pub fn stamp_base_offset(batch: &mut [u8], base_offset: Offset) {
    put_field(batch, BASE_OFFSET_POS, &base_offset.0.to_be_bytes());
}

/// Bytes at the start of a batch that an append stamps (base offset, batch length, partition
/// leader epoch): all outside the CRC, so a stamped copy of them followed by the client's
/// untouched bytes from here on is the stamped batch.
pub const STAMPED_PREFIX_BYTES: usize = LEADER_EPOCH_POS + 4;
const _: () = assert!(STAMPED_PREFIX_BYTES <= MAGIC_POS && BASE_OFFSET_POS < LENGTH_POS);

/// Stamps a copy of a batch's first [`STAMPED_PREFIX_BYTES`] with its base offset and
/// partition leader epoch (what [`stamp_base_offset`] and [`stamp_leader_epoch`] do to a
/// whole batch), for appends that write the rest of the batch from the caller's buffer.
pub fn stamp_prefix(
    prefix: &mut [u8; STAMPED_PREFIX_BYTES],
    base_offset: Offset,
    epoch: LeaderEpoch,
) {
    let (offset, rest) = prefix.split_at_mut(LENGTH_POS);
    offset.copy_from_slice(&base_offset.0.to_be_bytes());
    if let Some(field) = rest.get_mut(LEADER_EPOCH_POS - LENGTH_POS..) {
        field.copy_from_slice(&epoch.0.to_be_bytes());
    }
}

/// Writes the partition leader epoch into a batch header (outside the CRC).
pub fn stamp_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    put_field(batch, LEADER_EPOCH_POS, &epoch.0.to_be_bytes());
}

/// Rewrites the CRC field from the batch's bytes (used by compaction after rewriting records).
pub fn restamp_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    put_field(batch, CRC_POS, &crc.to_be_bytes());
}

/// Marks the batch as an idempotent producer's: producer id, epoch and base sequence, CRC
/// restamped (what a client writes; for tests and tools that speak for one).
pub fn stamp_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    put_field(batch, PRODUCER_ID_POS, &producer_id.to_be_bytes());
    put_field(batch, PRODUCER_EPOCH_POS, &producer_epoch.to_be_bytes());
    put_field(batch, BASE_SEQUENCE_POS, &base_sequence.to_be_bytes());
    restamp_crc(batch);
}

/// Sets the transactional (and, with `control`, the control) attribute bit of a batch and
/// restamps its CRC: a transactional producer's batch, or a transaction marker (what a client
/// or a transaction coordinator writes; for the broker's markers, tests and tools).
pub fn stamp_transactional(batch: &mut [u8], control: bool) {
    let Some(field) = batch
        .get(ATTRIBUTES_POS..ATTRIBUTES_POS + 2)
        .and_then(|f| <[u8; 2]>::try_from(f).ok())
    else {
        return;
    };
    let mut attributes = i16::from_be_bytes(field) | 0x10;
    if control {
        attributes |= 0x20;
    }
    put_field(batch, ATTRIBUTES_POS, &attributes.to_be_bytes());
    restamp_crc(batch);
}

/// Sets the record count field (used by compaction).
pub(crate) fn set_records_count(batch: &mut [u8], count: i32) {
    put_field(batch, RECORDS_COUNT_POS, &count.to_be_bytes());
}

/// Sets the batch length field (used by compaction).
pub(crate) fn set_batch_length(batch: &mut [u8], length: i32) {
    put_field(batch, LENGTH_POS, &length.to_be_bytes());
}

/// A record given to [`build`]: key and value, each `None` for null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Offset delta from the batch base offset.
    pub offset_delta: i32,
    /// Timestamp delta from the batch base timestamp.
    pub timestamp_delta: i64,
    /// Key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value, `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The whole encoded record, length prefix included.
    pub raw: &'a [u8],
}

use crate::record::read_varlong;

fn read_bytes<'a>(b: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varlong(b, pos)?;
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len)?;
    let s = b.get(*pos..end)?;
    *pos = end;
    Some(Some(s))
}

/// Iterates the records of an uncompressed batch. Returns `None` if the batch is compressed or
/// its records are malformed.
pub fn records(batch: &[u8]) -> Option<Vec<RecordView<'_>>> {
    let header = parse_header(batch, 0).ok()?;
    if header.compression() != Compression::None || batch.len() != header.size() {
        return None;
    }
    let mut out = Vec::with_capacity(usize::try_from(header.records_count).ok()?.min(4096));
    let mut pos = HEADER_BYTES;
    for _ in 0..header.records_count {
        let start = pos;
        let len = usize::try_from(read_varlong(batch, &mut pos)?).ok()?;
        let body_start = pos;
        let end = body_start.checked_add(len)?;
        let body = batch.get(body_start..end)?;
        let mut p = 0usize;
        let _attributes = *body.get(p)?;
        p += 1;
        let timestamp_delta = read_varlong(body, &mut p)?;
        let offset_delta = i32::try_from(read_varlong(body, &mut p)?).ok()?;
        let key = read_bytes(body, &mut p)?;
        let value = read_bytes(body, &mut p)?;
        out.push(RecordView {
            offset_delta,
            timestamp_delta,
            key,
            value,
            raw: batch.get(start..end)?,
        });
        pos = end;
    }
    if pos != batch.len() {
        return None;
    }
    Some(out)
}

/// Builds an uncompressed RecordBatch v2 from `(key, value)` pairs, every record at
/// `base_timestamp`. For tests and benchmarks; embedders use [`crate::BatchBuilder`].
///
/// # Panics
///
/// If `records` is empty.
pub fn build(base_offset: Offset, base_timestamp: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let builder = crate::record::BatchBuilder::new()
        .timestamp(base_timestamp)
        .records(records.iter().map(|(key, value)| crate::record::Record {
            key: key.map(bytes::Bytes::copy_from_slice),
            value: value.map(bytes::Bytes::copy_from_slice),
            ..Default::default()
        }));
    match builder.build() {
        Ok(batch) => {
            let mut out = batch.to_vec();
            stamp_base_offset(&mut out, base_offset);
            out
        }
        Err(e) => panic!("a batch of {} records: {e}", records.len()),
    }
}

/// Builds a batch of `count` records whose values are `value_bytes` long, filled with `fill`.
pub fn build_filled(count: usize, value_bytes: usize, fill: u8, timestamp: i64) -> Vec<u8> {
    let value = vec![fill; value_bytes];
    let recs: Vec<KeyValue<'_>> = (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    build(Offset::ZERO, timestamp, &recs)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn built_batch_validates_and_round_trips_records() {
        let b = build(
            Offset(0),
            1000,
            &[
                (Some(b"k1"), Some(b"v1")),
                (None, None),
                (Some(b""), Some(b"x")),
            ],
        );
        let h = validate(&b, 0, Origin::Client, usize::MAX).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        let recs = records(&b).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].key, Some(&b"k1"[..]));
        assert_eq!(recs[1].value, None);
        assert_eq!(recs[2].key, Some(&b""[..]));
        assert_eq!(recs[2].offset_delta, 2);
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let mut b = build(Offset(0), 0, &[(None, Some(b"v"))]);
        stamp_base_offset(&mut b, Offset(77));
        stamp_leader_epoch(&mut b, LeaderEpoch(5));
        let h = validate(&b, 0, Origin::Client, usize::MAX).unwrap();
        assert_eq!(h.base_offset, Offset(77));
        assert_eq!(h.partition_leader_epoch, LeaderEpoch(5));
    }

    #[test]
    fn each_defect_is_named() {
        let good = build(Offset(0), 0, &[(None, Some(b"hello"))]);
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert!(matches!(
            validate(&bad_crc, 0, Origin::Client, usize::MAX),
            Err(BatchError::CrcMismatch { .. })
        ));
        let mut bad_magic = good.clone();
        bad_magic[MAGIC_POS] = 1;
        assert!(matches!(
            validate(&bad_magic, 0, Origin::Client, usize::MAX),
            Err(BatchError::UnsupportedMagic { magic: 1, .. })
        ));
        assert!(matches!(
            validate(&good[..good.len() - 1], 0, Origin::Client, usize::MAX),
            Err(BatchError::Truncated { .. })
        ));
        let mut bad_count = good.clone();
        set_records_count(&mut bad_count, 2);
        restamp_crc(&mut bad_count);
        assert!(matches!(
            validate(&bad_count, 0, Origin::Client, usize::MAX),
            Err(BatchError::CountMismatch { .. })
        ));
        assert!(matches!(
            validate(&good, 0, Origin::Client, 10),
            Err(BatchError::InvalidLength { .. })
        ));
        assert_eq!(
            validate_all(&[], Origin::Client, 100),
            Err(BatchError::Empty)
        );
    }
}
