//! Typed errors of the engine, split by operation.
//!
//! [`BatchError`] says why a batch offered to `append` was refused (nothing of it is written).
//! [`LogError`] is what the log's operations return; it keeps [`LogError::Corruption`] apart from
//! [`LogError::Io`] because recovery branches on that difference.

use std::io;
use std::path::PathBuf;

use crate::offset::Offset;

/// Why a record batch was rejected by validation. Nothing of a rejected batch is written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header, or a length field that points past the input.
    #[error("batch truncated: need {needed} bytes at position {position}, have {available}")]
    Truncated {
        /// Position of the batch in the input.
        position: usize,
        /// Bytes the header says the batch needs.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// The batch length field is smaller than a header or larger than the limit.
    #[error("invalid batch length {length} at position {position} (limit {limit})")]
    InvalidLength {
        /// Position of the batch in the input.
        position: usize,
        /// The length field's value.
        length: i64,
        /// The largest batch accepted.
        limit: usize,
    },
    /// Only RecordBatch v2 (magic 2) is stored.
    #[error("unsupported magic {magic} at position {position}; only magic 2 is accepted")]
    UnsupportedMagic {
        /// Position of the batch in the input.
        position: usize,
        /// The magic byte found.
        magic: i8,
    },
    /// The CRC-32C over attributes..end does not match the header.
    #[error(
        "crc mismatch at position {position}: header {expected:#010x}, computed {actual:#010x}"
    )]
    CrcMismatch {
        /// Position of the batch in the input.
        position: usize,
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the bytes.
        actual: u32,
    },
    /// Record count and last offset delta disagree, or the count is not positive.
    #[error(
        "record count {count} does not match last offset delta {last_offset_delta} at position {position}"
    )]
    CountMismatch {
        /// Position of the batch in the input.
        position: usize,
        /// The header's record count.
        count: i32,
        /// The header's last offset delta.
        last_offset_delta: i32,
    },
    /// The batch's offsets do not fit in an i64.
    #[error("batch at position {position} overflows the offset range")]
    OffsetOverflow {
        /// Position of the batch in the input.
        position: usize,
    },
    /// The input holds no batch at all.
    #[error("no record batch in the input")]
    Empty,
    /// A replicated batch does not start at the log end offset, or batches go backwards.
    #[error("batch base offset {base_offset} does not follow the expected offset {expected}")]
    NonMonotonic {
        /// The batch's base offset.
        base_offset: Offset,
        /// The smallest offset acceptable here.
        expected: Offset,
    },
}

/// Errors of the log's operations.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch failed validation; nothing was written.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The batches together exceed the configured `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {limit}")]
    BatchTooLarge {
        /// The size offered.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// First offset still in the log.
        log_start_offset: Offset,
        /// Next offset to be assigned.
        log_end_offset: Offset,
    },
    /// Stored bytes are corrupt in the middle of the log (not a torn tail).
    #[error("corrupt log segment {segment:?} at position {position}: {reason}")]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte position of the bad batch in that file.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// A checkpoint or configuration file could not be parsed.
    #[error("malformed file {path:?}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The directory is locked by another owner (another process, or another open `Log` in
    /// this one): opening it too would assign the same offsets twice. Nothing was changed.
    #[error("log directory {dir:?} is locked by {}; only one owner may open it", crate::io::dir_lock::holder_description(*holder_pid))]
    DirectoryLocked {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, where the lock file names it.
        holder_pid: Option<u32>,
    },
    /// The log or its commit pipeline has been closed.
    #[error("log is closed")]
    Closed,
    /// An I/O error from the storage backend.
    #[error("i/o error on {path:?}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// The log error for a directory that could not be locked.
    pub(crate) fn from_lock(e: crate::io::LockError) -> LogError {
        match e {
            crate::io::LockError::Held { dir, holder_pid } => {
                LogError::DirectoryLocked { dir, holder_pid }
            }
            crate::io::LockError::Io { dir, source } => LogError::Io { path: dir, source },
        }
    }
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> LogError {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result type of the log's operations.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
