//! DescribeLogDirs: the broker's data directory, with the size of every partition replica it
//! holds and the directory's total and usable bytes (what `kafka-log-dirs.sh` and
//! Cruise-Control-style balancers read). Strata has one log directory per broker (`log.dirs`).

use crate::error_code::ErrorCode;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};

use super::{Context, s};

/// `(total, usable)` bytes of the filesystem holding `dir`, or `(-1, -1)` when unknown.
fn disk_space(dir: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `st` points to
    // writable memory of the size statvfs fills in.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return (-1, -1);
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as i64;
    (
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    )
}

/// DescribeLogDirs of this broker's replicas; `topics: None` asks for all of them.
pub fn describe_log_dirs(ctx: &Context, r: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if !ctx.authorized_on_cluster(crate::acl::Operation::Describe) {
        // v3+ carries the error; older versions get no directories, as Kafka answers.
        return msg!(DescribeLogDirsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
        });
    }
    let wanted = |topic: &str, partition: i32| {
        r.topics.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition))
        })
    };
    let mut topics = Vec::new();
    for t in ctx.broker.topics() {
        let partitions: Vec<DescribeLogDirsPartition> = t
            .local_partitions()
            .into_iter()
            .filter(|p| wanted(&t.name, p.index))
            .map(|p| {
                // How far this replica's log end is behind the high watermark it knows (0 on
                // the leader).
                let lag = (p.high_watermark().0 - p.log.log_end_offset().0).max(0);
                msg!(DescribeLogDirsPartition {
                    partition_index: p.index,
                    partition_size: i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX),
                    offset_lag: lag,
                    is_future_key: false,
                })
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(msg!(DescribeLogDirsTopic {
                name: TopicName(s(&t.name)),
                partitions,
            }));
        }
    }
    let dir = &ctx.broker.config.log_dir;
    let (total_bytes, usable_bytes) = disk_space(dir);
    let log_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    msg!(DescribeLogDirsResponse {
        error_code: 0,
        results: vec![msg!(DescribeLogDirsResult {
            error_code: 0,
            log_dir: s(&log_dir.display().to_string()),
            topics,
            total_bytes,
            usable_bytes,
        })],
    })
}
