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
