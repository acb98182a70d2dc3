//! A second, independent client: kafka-python (installed by `scripts/test`) produces with
//! acks=all, consumes in a group, commits, and resumes at the commit against the real binary.
#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn kafka_python_produce_group_consume_commit() {
    let broker = common::Broker::start(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_client.py"
    );
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
    assert!(stdout.contains("kafka-python: ok 200 records"), "{stdout}");
}
