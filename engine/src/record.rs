//! Records in and out, without knowing Kafka's byte layout.
//!
//! [`BatchBuilder`] turns [`Record`]s (key, value, headers, timestamp) into one RecordBatch v2,
//! compressed with any of Kafka's codecs and optionally carrying an idempotent producer's id,
//! epoch and sequence; [`crate::Log::append`] takes what it builds. [`RecordReader`] turns the
//! bytes of a read back into [`StoredRecord`]s, each with its offset: it checks every batch's
//! CRC, decompresses, skips transaction control batches and starts exactly at the offset asked
//! for (a read returns whole batches, so the bytes may begin before it).
//! [`crate::Log::read_records`] does both steps of a read.
//!
//! ```
//! use strata_engine::{BatchBuilder, Compression, Offset, Record, RecordReader};
//!
//! let batch = BatchBuilder::new()
//!     .compression(Compression::Zstd)
//!     .record(Record::new("first").key("k").header("trace", "1").timestamp(1_000))
//!     .record(Record::new("second").key("k"))
//!     .build()?;
//! // The log assigns offsets on append; a batch built alone starts at offset 0.
//! let records: Vec<_> = RecordReader::new(batch.freeze(), Offset(1)).collect::<Result<_, _>>()?;
//! assert_eq!(records.len(), 1);
//! assert_eq!(records[0].offset, Offset(1));
//! assert_eq!(records[0].value.as_deref(), Some(&b"second"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The broker does not use this module on its hot paths: it stores and serves the batches
//! producers send as they are.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{self, HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2, Origin};
use crate::compression::{self, CodecError, Compression};
use crate::error::BatchError;
use crate::offset::Offset;

/// Bytes one batch may inflate to when read. Kafka's default `max.message.bytes` is 1 MiB; a
/// batch that claims more than this after decompression is refused as corrupt or hostile.
pub const MAX_INFLATED_BATCH_BYTES: usize = 128 << 20;

/// Attribute bit: the timestamps are the log's append time, not the producer's.
const LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit: a control batch (transaction markers).
const CONTROL: i16 = 0x20;

/// One record header: a string key and an optional value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The key. Kafka header keys are UTF-8 strings; a stored key that is not UTF-8 is read
    /// with replacement characters, as Kafka's own clients read it.
    pub key: String,
    /// The value, `None` for null.
    pub value: Option<Bytes>,
}

/// A record to append: what a producer sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The key, `None` for null.
    pub key: Option<Bytes>,
    /// The value, `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` takes the builder's time.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with this value, no key, no headers and the builder's timestamp.
    pub fn new(value: impl Into<Bytes>) -> Record {
        Record {
            value: Some(value.into()),
            ..Record::default()
        }
    }

    /// A tombstone for `key`: a record with a null value, which compaction keeps only until
    /// `delete.retention.ms` has passed.
    pub fn tombstone(key: impl Into<Bytes>) -> Record {
        Record {
            key: Some(key.into()),
            ..Record::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Record {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Record {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp(mut self, timestamp_ms: i64) -> Record {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// A record read back from the log, with the offset the log gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record's offset.
    pub offset: Offset,
    /// Milliseconds since the Unix epoch: the producer's time, or the log's append time for a
    /// topic with `message.timestamp.type=LogAppendTime`.
    pub timestamp: i64,
    /// The key, `None` for null.
    pub key: Option<Bytes>,
    /// The value, `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// Why records could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A batch holds at least one record.
    #[error("a batch needs at least one record")]
    Empty,
    /// The batch would not fit Kafka's 32-bit length fields.
    #[error("a batch of {records} records and {bytes} bytes does not fit in one RecordBatch")]
    TooLarge {
        /// Records given.
        records: usize,
        /// Bytes of the records section.
        bytes: usize,
    },
    /// The records could not be compressed or decompressed.
    #[error("batch at offset {base_offset}: {source}")]
    Codec {
        /// Base offset of the batch (0 when building).
        base_offset: Offset,
        /// What the codec said.
        #[source]
        source: CodecError,
    },
    /// The bytes are not a valid record batch (framing, magic, CRC).
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    /// The batch's CRC matched but its records do not parse.
    #[error("batch at offset {base_offset}: malformed records: {detail}")]
    Malformed {
        /// Base offset of the batch.
        base_offset: Offset,
        /// What was wrong.
        detail: &'static str,
    },
}

/// Builds one RecordBatch v2 from records: what a Kafka producer sends.
///
/// The batch starts at offset 0: the log assigns real offsets (and stamps its leader epoch) on
/// append. Timestamps default to the time [`BatchBuilder::build`] is called.
#[derive(Clone, Debug, Default)]
pub struct BatchBuilder {
    records: Vec<Record>,
    compression: Option<Compression>,
    producer: Option<(i64, i16, i32)>,
    timestamp: Option<i64>,
}

impl BatchBuilder {
    /// An empty builder: no compression, no producer id.
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    /// Compresses the records with `codec` (none by default).
    pub fn compression(mut self, codec: Compression) -> BatchBuilder {
        self.compression = Some(codec);
        self
    }

    /// Marks the batch as an idempotent producer's: its id, epoch and the sequence number of
    /// the batch's first record (the next batch of that producer starts at `base_sequence`
    /// plus this batch's record count).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer = Some((producer_id, producer_epoch, base_sequence));
        self
    }

    /// The timestamp of records that carry none (default: the time of `build`).
    pub fn timestamp(mut self, timestamp_ms: i64) -> BatchBuilder {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Adds a record.
    pub fn record(mut self, record: Record) -> BatchBuilder {
        self.records.push(record);
        self
    }

    /// Adds records.
    pub fn records(mut self, records: impl IntoIterator<Item = Record>) -> BatchBuilder {
        self.records.extend(records);
        self
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch: header, records, compression, CRC-32C.
    pub fn build(&self) -> Result<BytesMut, RecordError> {
        let now = self.timestamp.unwrap_or_else(now_ms);
        let first = self.records.first().ok_or(RecordError::Empty)?;
        let base_timestamp = first.timestamp.unwrap_or(now);
        let mut max_timestamp = base_timestamp;
        let mut body = Vec::new();
        let mut rec = Vec::new();
        for (delta, record) in self.records.iter().enumerate() {
            let timestamp = record.timestamp.unwrap_or(now);
            max_timestamp = max_timestamp.max(timestamp);
            rec.clear();
            rec.push(0u8); // record attributes: unused
            put_varlong(&mut rec, timestamp.wrapping_sub(base_timestamp));
            put_varlong(&mut rec, delta as i64);
            put_bytes(&mut rec, record.key.as_deref());
            put_bytes(&mut rec, record.value.as_deref());
            put_varlong(&mut rec, record.headers.len() as i64);
            for h in &record.headers {
                put_bytes(&mut rec, Some(h.key.as_bytes()));
                put_bytes(&mut rec, h.value.as_deref());
            }
            put_varlong(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let codec = self.compression.unwrap_or(Compression::None);
        let body_bytes = body.len();
        let too_large = || RecordError::TooLarge {
            records: self.records.len(),
            bytes: body_bytes,
        };
        let count = i32::try_from(self.records.len()).map_err(|_| too_large())?;
        let body = match codec {
            Compression::None => body,
            codec => compression::compress(codec, &body).map_err(|source| RecordError::Codec {
                base_offset: Offset::ZERO,
                source,
            })?,
        };
        let length = i32::try_from(HEADER_BYTES - LOG_OVERHEAD + body.len())
            .map_err(|_| too_large())?;
        let (producer_id, producer_epoch, base_sequence) = self.producer.unwrap_or((-1, -1, -1));
        let mut out = BytesMut::with_capacity(HEADER_BYTES + body.len());
        out.put_i64(0); // base offset: assigned by the log
        out.put_i32(length);
        out.put_i32(-1); // partition leader epoch: stamped by the log
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, computed below
        out.put_i16(i16::from(codec.id()));
        out.put_i32(count - 1);
        out.put_i64(base_timestamp);
        out.put_i64(max_timestamp);
        out.put_i64(producer_id);
        out.put_i16(producer_epoch);
        out.put_i32(base_sequence);
        out.put_i32(count);
        out.put_slice(&body);
        batch::restamp_crc(&mut out);
        debug_assert!(batch::validate(&out, 0, Origin::Client, usize::MAX).is_ok());
        Ok(out)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads the records of whole batches (the bytes of a read), starting at an offset.
///
/// Yields each record at or after `from` in offset order, then ends. Control batches
/// (transaction markers) are skipped. The first error (a bad CRC, a codec failure, records
/// that do not parse) is yielded once and ends the iteration: nothing after corrupt bytes is
/// trusted.
#[derive(Debug)]
pub struct RecordReader {
    bytes: Bytes,
    position: usize,
    from: Offset,
    pending: VecDeque<StoredRecord>,
    failed: bool,
}

impl RecordReader {
    /// A reader over `bytes` (zero or more whole batches) yielding records from `from` on.
    pub fn new(bytes: impl Into<Bytes>, from: Offset) -> RecordReader {
        RecordReader {
            bytes: bytes.into(),
            position: 0,
            from,
            pending: VecDeque::new(),
            failed: false,
        }
    }

    /// Decodes the next batch into `pending`; `Ok(false)` at the end of the bytes.
    fn next_batch(&mut self) -> Result<bool, RecordError> {
        let Some(rest) = self.bytes.get(self.position..).filter(|r| !r.is_empty()) else {
            return Ok(false);
        };
        let size = batch::parse_header(rest, self.position)?.size();
        let one = rest.get(..size).ok_or(BatchError::Truncated {
            position: self.position,
            needed: size,
            available: rest.len(),
        })?;
        let header = batch::validate(one, self.position, Origin::Replication, usize::MAX)?;
        let start = self.position;
        self.position += header.size();
        if header.attributes & CONTROL != 0 || header.last_offset() < self.from {
            return Ok(true);
        }
        let base_offset = header.base_offset;
        let malformed = |detail| RecordError::Malformed {
            base_offset,
            detail,
        };
        let section = self
            .bytes
            .slice(start + HEADER_BYTES..start + header.size());
        let section = match header.compression() {
            Compression::None => section,
            codec => Bytes::from(
                compression::decompress(codec, &section, MAX_INFLATED_BATCH_BYTES)
                    .map_err(|source| RecordError::Codec {
                        base_offset,
                        source,
                    })?,
            ),
        };
        let append_time = header.attributes & LOG_APPEND_TIME != 0;
        let mut pos = 0usize;
        for _ in 0..header.records_count {
            let len = usize::try_from(read_varlong(&section, &mut pos).ok_or_else(|| malformed("record length"))?)
                .map_err(|_| malformed("negative record length"))?;
            let end = pos
                .checked_add(len)
                .filter(|e| *e <= section.len())
                .ok_or_else(|| malformed("record runs past the batch"))?;
            let body = section.slice(pos..end);
            pos = end;
            let mut p = 1usize; // record attributes: unused
            let timestamp_delta =
                read_varlong(&body, &mut p).ok_or_else(|| malformed("timestamp delta"))?;
            let offset_delta =
                read_varlong(&body, &mut p).ok_or_else(|| malformed("offset delta"))?;
            let offset = base_offset.plus(offset_delta);
            if offset_delta < 0 || offset > header.last_offset() {
                return Err(malformed("offset delta outside the batch"));
            }
            let key = read_bytes(&body, &mut p).ok_or_else(|| malformed("key"))?;
            let value = read_bytes(&body, &mut p).ok_or_else(|| malformed("value"))?;
            let count = read_varlong(&body, &mut p).ok_or_else(|| malformed("header count"))?;
            let count = usize::try_from(count).map_err(|_| malformed("negative header count"))?;
            let mut headers = Vec::with_capacity(count.min(body.len()));
            for _ in 0..count {
                let key = read_bytes(&body, &mut p)
                    .flatten()
                    .ok_or_else(|| malformed("header key"))?;
                let value = read_bytes(&body, &mut p).ok_or_else(|| malformed("header value"))?;
                headers.push(Header {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    value,
                });
            }
            if p != body.len() {
                return Err(malformed("record length disagrees with its fields"));
            }
            if offset < self.from {
                continue;
            }
            self.pending.push_back(StoredRecord {
                offset,
                timestamp: if append_time {
                    header.max_timestamp
                } else {
                    header.base_timestamp.wrapping_add(timestamp_delta)
                },
                key,
                value,
                headers,
            });
        }
        if pos != section.len() {
            return Err(malformed("bytes after the last record"));
        }
        Ok(true)
    }
}

impl Iterator for RecordReader {
    type Item = Result<StoredRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(Ok(record));
            }
            if self.failed {
                return None;
            }
            match self.next_batch() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Appends a zig-zag varint, as Kafka's records encode every integer.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends a varint length (-1 for null) and the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varlong(out, -1),
    }
}

/// Reads a zig-zag varint at `*pos`; `None` if it runs past the end or past 64 bits.
pub(crate) fn read_varlong(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// Reads a varint length and that many bytes (`Some(None)` for null) out of `b`.
fn read_bytes(b: &Bytes, pos: &mut usize) -> Option<Option<Bytes>> {
    let len = read_varlong(b, pos)?;
    if len < 0 {
        return Some(None);
    }
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    if end > b.len() {
        return None;
    }
    let s = b.slice(*pos..end);
    *pos = end;
    Some(Some(s))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = Compression::ALL;

    fn read_all(bytes: impl Into<Bytes>, from: Offset) -> Vec<StoredRecord> {
        RecordReader::new(bytes, from)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn sample() -> Vec<Record> {
        (0..20)
            .map(|i| {
                let mut r = Record::new(format!("value-{i}-{}", "v".repeat(i * 13)));
                if i % 3 != 0 {
                    r = r.key(format!("key-{i}"));
                }
                if i % 2 == 0 {
                    r = r.header("trace", format!("t{i}")).header("empty", "");
                }
                if i == 7 {
                    r.value = None;
                    r.headers.push(Header {
                        key: "null".into(),
                        value: None,
                    });
                }
                // Timestamps need not rise within a batch: deltas may be negative.
                r.timestamp(1_700_000_000_000 + (i as i64 % 5) * 1000 - 2000)
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips_keys_values_headers_and_timestamps() {
        for codec in CODECS {
            let records = sample();
            let batch = BatchBuilder::new()
                .compression(codec)
                .records(records.clone())
                .build()
                .unwrap();
            let h = batch::validate(&batch, 0, Origin::Client, usize::MAX).unwrap();
            assert_eq!(h.compression(), codec);
            assert_eq!(h.records_count, 20);
            assert_eq!(h.max_timestamp, 1_700_000_000_000 + 2000);
            let got = read_all(batch.freeze(), Offset::ZERO);
            assert_eq!(got.len(), records.len(), "{codec}");
            for (i, (g, r)) in got.iter().zip(&records).enumerate() {
                assert_eq!(g.offset, Offset(i as i64));
                assert_eq!(g.key, r.key, "{codec} {i}");
                assert_eq!(g.value, r.value, "{codec} {i}");
                assert_eq!(g.headers, r.headers, "{codec} {i}");
                assert_eq!(Some(g.timestamp), r.timestamp, "{codec} {i}");
            }
        }
    }

    #[test]
    fn reading_starts_at_the_requested_offset_inside_and_across_batches() {
        let mut bytes = BytesMut::new();
        for (base, codec) in [(0i64, Compression::Lz4), (5, Compression::None)] {
            let mut b = BatchBuilder::new()
                .compression(codec)
                .records((0..5).map(|i| Record::new(format!("{}", base + i))))
                .build()
                .unwrap();
            batch::stamp_base_offset(&mut b, Offset(base));
            bytes.extend_from_slice(&b);
        }
        let bytes = bytes.freeze();
        for from in 0..=10 {
            let got = read_all(bytes.clone(), Offset(from));
            let offsets: Vec<i64> = got.iter().map(|r| r.offset.0).collect();
            assert_eq!(offsets, (from..10).collect::<Vec<_>>());
            for r in &got {
                assert_eq!(r.value.as_deref(), Some(r.offset.0.to_string().as_bytes()));
            }
        }
    }

    #[test]
    fn producer_fields_and_the_default_timestamp_are_stamped() {
        let before = now_ms();
        let b = BatchBuilder::new()
            .producer(42, 3, 100)
            .record(Record::new("a"))
            .record(Record::tombstone("k"))
            .build()
            .unwrap();
        let h = batch::validate(&b, 0, Origin::Client, usize::MAX).unwrap();
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, 100));
        assert!(h.base_timestamp >= before && h.base_timestamp <= now_ms());
        let got = read_all(b.freeze(), Offset::ZERO);
        assert_eq!(got[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(got[1].value, None);
        let fixed = BatchBuilder::new()
            .timestamp(5)
            .record(Record::new("x"))
            .build()
            .unwrap();
        assert_eq!(read_all(fixed.freeze(), Offset::ZERO)[0].timestamp, 5);
    }

    #[test]
    fn an_empty_builder_and_an_unknown_codec_are_errors() {
        assert!(matches!(BatchBuilder::new().build(), Err(RecordError::Empty)));
        assert!(matches!(
            BatchBuilder::new()
                .compression(Compression::Unknown(7))
                .record(Record::new("x"))
                .build(),
            Err(RecordError::Codec { .. })
        ));
    }

    #[test]
    fn control_batches_are_skipped_and_log_append_time_is_honoured() {
        let mut control = BatchBuilder::new().record(Record::new("marker")).build().unwrap();
        control[22] |= CONTROL as u8;
        batch::restamp_crc(&mut control);
        let mut appended = BatchBuilder::new()
            .timestamp(10)
            .record(Record::new("x"))
            .build()
            .unwrap();
        batch::stamp_base_offset(&mut appended, Offset(1));
        appended[22] |= LOG_APPEND_TIME as u8;
        appended[35..43].copy_from_slice(&99i64.to_be_bytes());
        batch::restamp_crc(&mut appended);
        let mut bytes = control;
        bytes.extend_from_slice(&appended);
        let got = read_all(bytes.freeze(), Offset::ZERO);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].offset, got[0].timestamp), (Offset(1), 99));
    }

    #[test]
    fn corrupt_bytes_give_one_error_and_end_the_iteration() {
        let good = BatchBuilder::new()
            .compression(Compression::Gzip)
            .records(sample())
            .build()
            .unwrap();
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        let mut r = RecordReader::new(bad_crc.freeze(), Offset::ZERO);
        assert!(matches!(r.next(), Some(Err(RecordError::Batch(BatchError::CrcMismatch { .. })))));
        assert!(r.next().is_none());
        // CRC fine, compressed bytes not: a codec error, never a panic.
        let mut bad_codec = good.clone();
        bad_codec[HEADER_BYTES + 12] ^= 0xff;
        batch::restamp_crc(&mut bad_codec);
        let errors: Vec<_> = RecordReader::new(bad_codec.freeze(), Offset::ZERO)
            .filter(Result::is_err)
            .collect();
        assert_eq!(errors.len(), 1);
        // Every single-byte change of an uncompressed batch's records, CRC restamped.
        let plain = BatchBuilder::new().records(sample()).build().unwrap();
        for at in HEADER_BYTES..plain.len() {
            let mut b = plain.clone();
            b[at] ^= 0x81;
            batch::restamp_crc(&mut b);
            for r in RecordReader::new(b.freeze(), Offset::ZERO) {
                if r.is_err() {
                    break;
                }
            }
        }
        assert!(read_all(Bytes::new(), Offset::ZERO).is_empty());
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [0, 1, -1, 63, -64, 64, i64::from(i32::MAX), i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_varlong(&[0xff; 11], &mut 0), None);
    }
}
