//! Independent Kafka clients against the real binary, each with its own protocol
//! implementation: aiokafka (Python asyncio), kafkajs (JavaScript) and Debian's kcat (an older
//! librdkafka, 2.0), beside the rdkafka and kafka-python tests. With each: produce with keys and
//! headers, consume from the start and from an offset, a consumer group that commits and
//! resumes exactly after its commit, and the admin calls the client offers. `scripts/test`
//! installs all three; a missing one fails here, it is never skipped. The README's kcat example
//! is taken from the README itself and run too.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output, Stdio};

fn broker() -> common::Broker {
    common::Broker::start(&[])
}

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what} does not run ({e}); scripts/test installs it"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a client script against a fresh broker and checks it reported every step.
fn run_client(what: &str, program: &str, script: &str, steps: &[&str]) {
    let b = broker();
    let out = run(what, Command::new(program).arg(script).arg(b.bootstrap()));
    let text = stdout(&out);
    for step in steps {
        assert!(text.contains(step), "{what}: {step}: {text}");
    }
}

#[test]
fn aiokafka_admin_produce_consume_and_group_resume() {
    run_client(
        "aiokafka",
        "python3",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/aiokafka_client.py"
        ),
        &[
            "admin ok",
            "produced 100",
            "consumed from the start 100",
            "consumed from offset 5",
            "group resumed after its commit",
            "aiokafka: ok",
        ],
    );
}

/// Transactions as aiokafka runs them: commit and abort seen by read_committed and
/// read_uncommitted consumers, consume-transform-produce with send_offsets_to_transaction,
/// and a second producer of the transactional id fencing the first.
#[test]
fn aiokafka_transactions() {
    run_client(
        "aiokafka",
        "python3",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/aiokafka_transactions.py"
        ),
        &[
            "read_committed sees commits only",
            "consume-transform-produce exactly once",
            "zombie fenced (ProducerFenced)",
            "aiokafka: transactions ok",
        ],
    );
}

/// Transactions as kafkajs runs them (EndTxn below v2: a fenced producer hears
/// INVALID_PRODUCER_EPOCH): commit and abort under both isolation levels, consume-transform-
/// produce with sendOffsets, zombie fencing.
#[test]
fn kafkajs_transactions() {
    run_client(
        "kafkajs",
        "node",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/kafkajs_transactions.js"
        ),
        &[
            "read_committed sees commits only",
            "consume-transform-produce exactly once",
            "zombie fenced (INVALID_PRODUCER_EPOCH)",
            "kafkajs: transactions ok",
        ],
    );
}

#[test]
fn kafkajs_admin_produce_consume_and_group_resume() {
    run_client(
        "kafkajs",
        "node",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/kafkajs_client.js"),
        &[
            "admin ok",
            "produced 100",
            "consumed from the start 100",
            "consumed from offset 5",
            "group resumed after its commit 60",
            "kafkajs: ok",
        ],
    );
}

/// kcat with its input on stdin.
fn kcat(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kcat does not run ({e}); scripts/test installs it"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn kcat_produce_consume_from_offset_group_resume_and_metadata() {
    let b = broker();
    let bs = b.bootstrap();
    let lines: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    // Keys after -K's delimiter, one header on every record; the topic is auto-created.
    kcat(
        &["-b", &bs, "-P", "-t", "kc", "-K", ":", "-H", "src=kcat"],
        &lines,
    );
    let all = stdout(&kcat(
        &[
            "-b",
            &bs,
            "-C",
            "-t",
            "kc",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%o %k %s %h\\n",
        ],
        "",
    ));
    let rows: Vec<&str> = all.lines().collect();
    assert_eq!(rows.len(), 20, "{all}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(*row, format!("{i} k{i} v{i} src=kcat"));
    }
    let from5 = stdout(&kcat(
        &[
            "-b", &bs, "-C", "-t", "kc", "-p", "0", "-o", "5", "-c", "1", "-f", "%o %s\\n",
        ],
        "",
    ));
    assert_eq!(from5.trim(), "5 v5");
    // A group member that stops after 12 records commits them (auto-commit on close); the
    // next member of the group reads exactly the other 8.
    let group = |count: Option<&str>| {
        let mut args = vec!["-b", bs.as_str(), "-G", "kc-group", "kc", "-f", "%o\\n"];
        args.extend(["-X", "auto.offset.reset=earliest"]);
        match count {
            Some(c) => args.extend(["-c", c]),
            None => args.push("-e"),
        }
        stdout(&kcat(&args, ""))
    };
    let first: Vec<i64> = group(Some("12"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(first, (0..12).collect::<Vec<_>>());
    let rest: Vec<i64> = group(None).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(
        rest,
        (12..20).collect::<Vec<_>>(),
        "resumed after the commit"
    );
    let md = stdout(&kcat(&["-b", &bs, "-L", "-t", "kc"], ""));
    assert!(
        md.contains("topic \"kc\" with 1 partitions") && md.contains("leader 1"),
        "{md}"
    );
}

/// The README's kcat lines, as a newcomer copies them, against a broker on another port.
#[test]
fn the_readme_kcat_example_works() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let commands: Vec<String> = readme
        .split('`')
        .filter(|s| s.starts_with("kcat "))
        .map(str::to_string)
        .collect();
    let producer = commands
        .iter()
        .find(|c| c.contains(" -P"))
        .expect("the README shows a kcat producer");
    let consumer = commands
        .iter()
        .find(|c| c.contains(" -C"))
        .expect("the README shows a kcat consumer");
    let b = broker();
    let here = |c: &str| -> Vec<String> {
        c.replace("127.0.0.1:9092", &b.bootstrap())
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    let args = here(producer);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    kcat(&refs, "hello\nworld\n");
    // The consumer as shown, told to stop at the end of the topic.
    let mut args = here(consumer);
    args.push("-e".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = stdout(&kcat(&refs, ""));
    assert_eq!(got, "hello\nworld\n");
}
