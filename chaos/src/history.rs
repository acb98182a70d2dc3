//! The recorded history of a chaos run: every operation clients attempted and what came of
//! it, every fault, and the final read of every partition, one JSON object per line in
//! `history.jsonl` of the run directory. The checker reads it back, so a history can be
//! checked again (`strata-chaos check <run-dir>`).

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// One event. `t_ms` is milliseconds since the run started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A produce was enqueued. Values are unique: `p<producer>-<seq>`.
    Send {
        t_ms: u64,
        producer: u32,
        idempotent: bool,
        value: String,
    },
    /// The broker acknowledged `value` at `partition`/`offset` (acks=all).
    Ack {
        t_ms: u64,
        value: String,
        partition: i32,
        offset: i64,
    },
    /// The produce of `value` failed. `definite`: the client knows it was not written
    /// (librdkafka's NOT_PERSISTED); otherwise it may or may not have been.
    Fail {
        t_ms: u64,
        value: String,
        definite: bool,
        error: String,
    },
    /// A group consumer was assigned these partitions (its reads start over).
    Assign {
        t_ms: u64,
        consumer: u32,
        partitions: Vec<i32>,
    },
    /// A group consumer read `value` at `partition`/`offset`.
    Read {
        t_ms: u64,
        consumer: u32,
        partition: i32,
        offset: i64,
        value: String,
    },
    /// The group's committed offset of `partition`, as an observer fetched it.
    Committed {
        t_ms: u64,
        partition: i32,
        offset: i64,
    },
    /// A fault began (`kind` and the nodes it touches).
    Fault {
        t_ms: u64,
        kind: String,
        nodes: Vec<usize>,
    },
    /// The fault ended.
    Heal { t_ms: u64, kind: String },
    /// The final read (after every fault healed) found `value` at `partition`/`offset`.
    Final {
        partition: i32,
        offset: i64,
        value: String,
    },
    /// The final read of `partition` reached its high watermark `end` (absent: it did not).
    FinalEnd { partition: i32, end: i64 },
    /// A transaction of the writer ended: its values, and what the client learnt
    /// (`committed`, `aborted`, or `unknown` when it could not tell).
    TxnEnd {
        t_ms: u64,
        txn: String,
        values: Vec<String>,
        outcome: String,
    },
    /// The read_committed observer read `value` from the transactional topic.
    TxnRead {
        t_ms: u64,
        partition: i32,
        offset: i64,
        value: String,
    },
    /// The final read_committed read of the transactional topic found `value`.
    TxnFinal {
        partition: i32,
        offset: i64,
        value: String,
    },
    /// The final read_committed read of the transactional topic finished `partition`.
    TxnFinalEnd { partition: i32, end: i64 },
    /// The transform group's committed offset of the input `partition` at the end.
    TxnCommitted { partition: i32, offset: i64 },
}

/// Appends events to `history.jsonl` as they happen, from any thread.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    out: Mutex<BufWriter<std::fs::File>>,
}

impl Recorder {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        Ok(Recorder {
            start: Instant::now(),
            out: Mutex::new(BufWriter::new(std::fs::File::create(path)?)),
        })
    }

    /// Milliseconds since the recorder was created.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Records one event.
    pub fn record(&self, e: &Event) {
        if let (Ok(mut out), Ok(line)) = (self.out.lock(), serde_json::to_string(e)) {
            let _ = writeln!(out, "{line}");
        }
    }

    /// Flushes what was recorded to the file.
    pub fn flush(&self) -> std::io::Result<()> {
        match self.out.lock() {
            Ok(mut out) => out.flush(),
            Err(_) => Err(std::io::Error::other("recorder poisoned")),
        }
    }
}

/// Reads a history file back.
pub fn load(path: &Path) -> Result<Vec<Event>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        events.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(events)
}
