//! The partition checkpoint: the recovery point (everything below it is durable) with the
//! segment and byte position where it lies, and the log start offset. Written atomically
//! (temporary file, fdatasync, rename, directory fsync) when the recovery point is
//! checkpointed, on truncation, on `delete_records_before` and on close.
//!
//! Format (text, one `key value` per line, version first):
//!
//! ```text
//! version 1
//! recovery_point 1234
//! segment 1000
//! position 56789
//! index_entries 13
//! time_index_entries 13
//! log_start_offset 0
//! ```
//!
//! The index entry counts say how many entries of that segment's indexes were flushed with the
//! checkpoint (the index files of the active segment are preallocated, so their length says
//! nothing).

use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};
use crate::io::Storage;
use crate::offset::Offset;

/// File name of the partition checkpoint inside the log directory.
pub const CHECKPOINT_FILE: &str = "partition.checkpoint";

/// What the checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionCheckpoint {
    /// Everything below this offset was durable when the checkpoint was written.
    pub recovery_point: Offset,
    /// Base offset of the segment holding the recovery point.
    pub segment_base: Offset,
    /// Byte position of the recovery point in that segment (a batch boundary).
    pub position: u64,
    /// Offset index entries of that segment flushed with the checkpoint.
    pub index_entries: usize,
    /// Time index entries of that segment flushed with the checkpoint.
    pub time_index_entries: usize,
    /// The log start offset.
    pub log_start_offset: Offset,
}

/// Writes `contents` to `dir/name` atomically and durably through `storage`.
pub(crate) fn write_atomically(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let f = storage
        .open(&tmp, true)
        .map_err(|e| LogError::io(&tmp, e))?;
    f.set_len(0).map_err(|e| LogError::io(&tmp, e))?;
    f.write_at(contents, 0).map_err(|e| LogError::io(&tmp, e))?;
    f.sync_data().map_err(|e| LogError::io(&tmp, e))?;
    drop(f);
    storage
        .rename(&tmp, &path)
        .map_err(|e| LogError::io(&path, e))?;
    storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    Ok(())
}

/// Reads a whole small file through `storage`; `None` if it does not exist.
pub(crate) fn read_small(storage: &dyn Storage, path: &Path) -> Result<Option<String>> {
    if !storage.exists(path) {
        return Ok(None);
    }
    let f = storage
        .open(path, false)
        .map_err(|e| LogError::io(path, e))?;
    let len = f.len().map_err(|e| LogError::io(path, e))?;
    if len > 1 << 20 {
        return Err(LogError::Malformed {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is too large for a checkpoint"),
        });
    }
    let mut buf = vec![0u8; len as usize];
    let n = f.read_at(&mut buf, 0).map_err(|e| LogError::io(path, e))?;
    buf.truncate(n);
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| LogError::Malformed {
            path: path.to_path_buf(),
            reason: "not UTF-8".into(),
        })
}

impl PartitionCheckpoint {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> String {
        format!(
            "version 1\nrecovery_point {}\nsegment {}\nposition {}\nindex_entries {}\ntime_index_entries {}\nlog_start_offset {}\n",
            self.recovery_point,
            self.segment_base,
            self.position,
            self.index_entries,
            self.time_index_entries,
            self.log_start_offset
        )
    }

    /// Parses a checkpoint written by [`PartitionCheckpoint::encode`].
    pub fn decode(text: &str, path: &Path) -> Result<PartitionCheckpoint> {
        let bad = |reason: &str| LogError::Malformed {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut fields = std::collections::HashMap::new();
        for line in text.lines() {
            let (k, v) = line
                .split_once(' ')
                .ok_or_else(|| bad("line without a value"))?;
            let v: i64 = v
                .trim()
                .parse()
                .map_err(|_| bad("value is not an integer"))?;
            fields.insert(k.to_string(), v);
        }
        if fields.get("version") != Some(&1) {
            return Err(bad("unknown version"));
        }
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| bad(&format!("missing {k}")))
        };
        let cp = PartitionCheckpoint {
            recovery_point: Offset(get("recovery_point")?),
            segment_base: Offset(get("segment")?),
            position: u64::try_from(get("position")?).map_err(|_| bad("negative position"))?,
            index_entries: usize::try_from(get("index_entries")?)
                .map_err(|_| bad("negative count"))?,
            time_index_entries: usize::try_from(get("time_index_entries")?)
                .map_err(|_| bad("negative count"))?,
            log_start_offset: Offset(get("log_start_offset")?),
        };
        if cp.recovery_point < cp.segment_base || cp.log_start_offset.0 < 0 {
            return Err(bad("inconsistent offsets"));
        }
        Ok(cp)
    }

    /// Reads the checkpoint of a log directory, if there is one.
    pub fn read(storage: &dyn Storage, dir: &Path) -> Result<Option<PartitionCheckpoint>> {
        let path: PathBuf = dir.join(CHECKPOINT_FILE);
        match read_small(storage, &path)? {
            None => Ok(None),
            Some(text) => PartitionCheckpoint::decode(&text, &path).map(Some),
        }
    }

    /// Writes the checkpoint of a log directory atomically.
    pub fn write(&self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        write_atomically(storage, dir, CHECKPOINT_FILE, self.encode().as_bytes())
    }
}
