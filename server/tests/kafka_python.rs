//! A second, independent client: kafka-python (installed by `scripts/test`) produces with
//! acks=all, consumes in a group, commits, and resumes at the commit against the real binary;
//! and its admin client describes and alters topic and broker configs.
#![allow(clippy::unwrap_used)]

mod common;

/// Runs a kafka-python script against `broker`; its stdout.
fn run_script(broker: &common::Broker, script: &str) -> String {
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(broker.bootstrap())
        .output()
        .expect("python3 runs (scripts/test installs kafka-python)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kafka-python failed:\n{stdout}\n{stderr}"
    );
    stdout.into_owned()
}

#[test]
fn kafka_python_produce_group_consume_commit() {
    let broker = common::Broker::start(&[]);
    let stdout = run_script(&broker, "kafka_python_client.py");
    assert!(stdout.contains("kafka-python: ok 200 records"), "{stdout}");
}

/// DescribeConfigs sources, synonyms and types, IncrementalAlterConfigs APPEND/SUBTRACT, and
/// read-only broker configs, as kafka-python's admin client reports them.
#[test]
fn kafka_python_describes_and_alters_configs() {
    let broker = common::Broker::start(&["log.retention.ms=1234567"]);
    let stdout = run_script(&broker, "kafka_python_configs.py");
    assert!(stdout.contains("kafka-python: configs ok"), "{stdout}");
}

/// describe_topic_partitions paged by its cursor and describe_producers after an idempotent
/// producer's sends, as kafka-python's admin client calls them.
#[test]
fn kafka_python_pages_topic_partitions_and_describes_producers() {
    let broker = common::Broker::start(&[]);
    let stdout = run_script(&broker, "kafka_python_admin.py");
    assert!(stdout.contains("kafka-python: admin ok"), "{stdout}");
}

/// kafka-python's consumer uses incremental fetch sessions (KIP-227): it reads three partitions
/// in many small fetches while one of them grows, gets every record once and in order, and the
/// broker's metrics show the session and its incremental fetches.
#[test]
fn kafka_python_consumes_through_an_incremental_fetch_session() {
    let mport = common::free_port();
    let broker = common::Broker::start(&[&format!("metrics.listen=127.0.0.1:{mport}")]);
    let stdout = run_script(&broker, "kafka_python_fetch_sessions.py");
    assert!(
        stdout.contains("kafka-python: fetch sessions ok 2200"),
        "{stdout}"
    );
    let incremental = common::Broker::metric(mport, "strata_incremental_fetches_total");
    println!("{incremental} incremental fetches");
    assert!(incremental >= 10.0, "{incremental} incremental fetches");
}

/// Transactions as kafka-python's producer runs them: commit and abort seen by read_committed
/// and read_uncommitted consumers, consume-transform-produce with send_offsets_to_transaction,
/// and a second producer of the transactional id fencing the first.
#[test]
fn kafka_python_transactions() {
    let broker = common::Broker::start(&[]);
    let stdout = run_script(&broker, "kafka_python_transactions.py");
    for step in [
        "read_committed sees commits only",
        "consume-transform-produce exactly once",
        "zombie fenced (ProducerFencedError)",
        "kafka-python: transactions ok",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
}
