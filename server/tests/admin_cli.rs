//! `strata topic|group|cluster ...` run as an operator runs them, as processes against real
//! brokers, checked against what librdkafka clients see: topics created and changed, records
//! produced and consumed (keys placed as Kafka's default partitioner places them), a real
//! consumer group's lag and offsets reset, a 3-node cluster's health as a broker dies and
//! comes back.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Broker;
use common::cluster::{Cluster, wait_for};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

/// Runs `strata <args>` against `bootstrap`, feeding `stdin`.
fn strata(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .env("STRATA_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; its standard output.
fn ok(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = strata(bootstrap, args, stdin);
    assert!(
        out.status.success(),
        "strata {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command with `--format json`; its output parsed.
fn json(bootstrap: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let out = ok(bootstrap, &a, None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn topic_in<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|t| t["name"] == name)
}

#[test]
fn topic_commands_create_change_fill_read_and_delete_topics() {
    let b = Broker::start(&["num.partitions=1"]);
    let bs = b.bootstrap();
    ok(
        &bs,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "cleanup.policy=compact",
        ],
        None,
    );
    // The topic as a librdkafka client sees it.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some("orders"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

    let list = json(&bs, &["topic", "list"]);
    assert_eq!(
        topic_in(&list, "orders").unwrap()["partitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let described = json(&bs, &["topic", "describe", "orders"]);
    let configs = described["configs"].as_array().unwrap();
    assert!(
        configs.iter().any(|c| c["name"] == "cleanup.policy"
            && c["value"] == "compact"
            && c["source"] == "topic"),
        "{described}"
    );

    // Changed: a config set, one removed, partitions added.
    ok(
        &bs,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=3600000",
            "--delete",
            "cleanup.policy",
        ],
        None,
    );
    ok(
        &bs,
        &["topic", "add-partitions", "orders", "--count", "5"],
        None,
    );
    let described = json(&bs, &["topic", "describe", "orders"]);
    let set: Vec<(&str, &str)> = described["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(set, [("retention.ms", "3600000")]);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 5);

    // Produced with keys: each key lands where librdkafka's Java-compatible partitioner
    // (murmur2, as Kafka's default) puts it, and everything reads back.
    let lines: String = (0..200)
        .map(|i| format!("key-{}:value-{i}\n", i % 40))
        .collect();
    let out = strata(
        &bs,
        &["topic", "produce", "orders", "-K", ":"],
        Some(&lines),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("200 records produced"));
    let consumed = ok(
        &bs,
        &[
            "topic",
            "consume",
            "orders",
            "--from-beginning",
            "--exit",
            "--format",
            "json",
        ],
        None,
    );
    let records: Vec<Value> = consumed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 200);
    let mut placed: BTreeMap<String, i64> = BTreeMap::new();
    for r in &records {
        let key = r["key"].as_str().unwrap().to_string();
        let p = r["partition"].as_i64().unwrap();
        assert_eq!(*placed.entry(key).or_insert(p), p, "one key, one partition");
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    ok(
        &bs,
        &["topic", "create", "mirror", "--partitions", "5"],
        None,
    );
    for key in placed.keys() {
        producer
            .send(BaseRecord::to("mirror").key(key.as_str()).payload("x"))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let mirrored = ok(
        &bs,
        &[
            "topic",
            "consume",
            "mirror",
            "--from-beginning",
            "--exit",
            "--format",
            "json",
        ],
        None,
    );
    let by_librdkafka: BTreeMap<String, i64> = mirrored
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["partition"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(placed, by_librdkafka);
    // Values in order within a key.
    let of_key0: Vec<&str> = records
        .iter()
        .filter(|r| r["key"] == "key-0")
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        of_key0,
        ["value-0", "value-40", "value-80", "value-120", "value-160"]
    );
    // A count stops early; --print-key shows keys.
    let three = ok(
        &bs,
        &[
            "topic",
            "consume",
            "orders",
            "--from-beginning",
            "-n",
            "3",
            "--print-key",
            "=",
        ],
        None,
    );
    assert_eq!(three.lines().count(), 3);
    assert!(
        three
            .lines()
            .all(|l| l.starts_with("key-") && l.contains("=value-"))
    );

    // Mistakes: a clear error, a suggestion, a failing exit status, nothing changed.
    let typo = strata(&bs, &["topic", "describe", "ordres"], None);
    assert_eq!(typo.status.code(), Some(1));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(
        err.contains("does not exist") && err.contains("did you mean \"orders\""),
        "{err}"
    );
    let dup = strata(&bs, &["topic", "create", "orders"], None);
    assert!(String::from_utf8_lossy(&dup.stderr).contains("TOPIC_ALREADY_EXISTS"));
    let bad = strata(
        &bs,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=soon",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        json(&bs, &["topic", "describe", "orders"])["configs"][0]["value"],
        "3600000"
    );

    ok(&bs, &["topic", "delete", "orders", "mirror"], None);
    let list = json(&bs, &["topic", "list"]);
    assert!(topic_in(&list, "orders").is_none() && topic_in(&list, "mirror").is_none());
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Reads `n` records with `c`; their values.
fn poll_n(c: &BaseConsumer, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    assert_eq!(got.len(), n, "records read");
    got
}

#[test]
fn group_commands_show_lag_and_reset_a_real_groups_offsets() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    ok(
        &bs,
        &["topic", "create", "events", "--partitions", "1"],
        None,
    );
    let lines: String = (0..100).map(|i| format!("e{i}\n")).collect();
    ok(&bs, &["topic", "produce", "events"], Some(&lines));

    // A librdkafka consumer reads 30 and commits them; while it is a member, the group shows it.
    let c = consumer(&bs, "billing");
    c.subscribe(&["events"]).unwrap();
    let first = poll_n(&c, 30);
    assert_eq!(first[0], "e0");
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let groups = json(&bs, &["group", "list"]);
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "billing" && g["state"] == "Stable"),
        "{groups}"
    );
    let described = json(&bs, &["group", "describe", "billing"]);
    assert_eq!(
        described["members"].as_array().unwrap().len(),
        1,
        "{described}"
    );
    assert_eq!(
        described["members"][0]["assignment"]["events"],
        serde_json::json!([0])
    );
    let lag = json(&bs, &["group", "lag", "billing"]);
    assert_eq!(lag["total_lag"], 70, "{lag}");
    assert_eq!(lag["partitions"][0]["committed"], 30);
    assert_eq!(lag["partitions"][0]["end"], 100);

    // Offsets cannot move under a live member.
    let refused = strata(
        &bs,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-earliest",
            "--execute",
        ],
        None,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop its consumers first"));
    drop(c); // closes: leaves the group

    // A dry run changes nothing; --execute does, and the group's next consumer starts there.
    wait_for("the group to empty", Duration::from_secs(20), || {
        (json(&bs, &["group", "describe", "billing"])["members"]
            .as_array()?
            .is_empty())
        .then_some(())
    });
    let plan = json(
        &bs,
        &["group", "reset-offsets", "billing", "--shift-by", "-20"],
    );
    assert_eq!(plan[0]["from"], 30);
    assert_eq!(plan[0]["to"], 10);
    assert_eq!(json(&bs, &["group", "lag", "billing"])["total_lag"], 70);
    ok(
        &bs,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--shift-by",
            "-20",
            "--execute",
        ],
        None,
    );
    assert_eq!(json(&bs, &["group", "lag", "billing"])["total_lag"], 90);
    let c = consumer(&bs, "billing");
    c.subscribe(&["events"]).unwrap();
    assert_eq!(poll_n(&c, 1), ["e10"]);
    drop(c);
    wait_for("the group to empty", Duration::from_secs(20), || {
        (json(&bs, &["group", "describe", "billing"])["members"]
            .as_array()?
            .is_empty())
        .then_some(())
    });
    // Beyond the log: clamped to it. By time: a time after every record is the end.
    let plan = json(
        &bs,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-offset",
            "1000",
            "--execute",
        ],
    );
    assert_eq!(plan[0]["to"], 100);
    ok(
        &bs,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-datetime",
            "2001-01-01T00:00:00",
            "--execute",
        ],
        None,
    );
    assert_eq!(json(&bs, &["group", "lag", "billing"])["total_lag"], 100);
    ok(
        &bs,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--to-datetime",
            "2999-01-01",
            "--execute",
        ],
        None,
    );
    assert_eq!(json(&bs, &["group", "lag", "billing"])["total_lag"], 0);

    let typo = strata(&bs, &["group", "describe", "biling"], None);
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean \"billing\""));
    ok(&bs, &["group", "delete", "billing"], None);
    let groups = json(&bs, &["group", "list"]);
    assert!(
        !groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "billing")
    );
}

#[test]
fn cluster_health_follows_a_killed_broker_down_and_back() {
    let mut c = Cluster::start3();
    let bs = c.bootstrap();
    ok(
        &bs,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
        None,
    );
    // A group's first command on a new cluster: `__consumer_offsets` is created by it, and its
    // coordinator may still be loading when the offsets are asked for (how often that window
    // is hit here depends on timing; the command must wait it out, not fail).
    let plan = json(
        &bs,
        &[
            "group",
            "reset-offsets",
            "first",
            "--topic",
            "orders",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(plan.as_array().unwrap().len(), 3);
    wait_for("a healthy cluster", Duration::from_secs(30), || {
        strata(&bs, &["cluster", "health"], None)
            .status
            .success()
            .then_some(())
    });
    let info = json(&bs, &["cluster", "info"]);
    assert_eq!(info["brokers"].as_array().unwrap().len(), 3);
    // The quorum as DescribeQuorum tells it: the active controller is one of the three
    // combined nodes, and so is every voter, each heard from.
    let quorum = &info["quorum"];
    let leader = quorum["leader"].as_i64().unwrap();
    assert!((1..=3).contains(&leader), "{quorum}");
    assert_eq!(info["controller"], leader);
    let voters: Vec<i64> = quorum["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(voters, [1, 2, 3]);
    assert!(
        quorum["voters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["reachable"] == true)
    );
    assert!(
        info["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["state"] == "up")
    );

    c.broker(3).kill9();
    let bs = c.bootstrap_without(3);
    let health = wait_for("broker 3 seen down", Duration::from_secs(15), || {
        let out = strata(&bs, &["cluster", "health", "--format", "json"], None);
        let h: Value = serde_json::from_slice(&out.stdout).ok()?;
        (h["brokers_down"] == serde_json::json!([3])).then_some((out.status.code(), h))
    });
    assert_eq!(health.0, Some(3), "unhealthy exits 3");
    assert!(
        !health.1["under_replicated_partitions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let text = strata(&bs, &["cluster", "health"], None);
    assert!(String::from_utf8_lossy(&text.stdout).contains("UNHEALTHY: brokers down: 3"));
    let info = json(&bs, &["cluster", "info"]);
    let b3 = info["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == 3)
        .unwrap();
    assert_eq!(b3["state"], "fenced");
    // Node 3 was also a quorum voter: once silent for a few seconds, health names it.
    wait_for(
        "voter 3 reported unreachable",
        Duration::from_secs(20),
        || {
            let out = strata(&bs, &["cluster", "health", "--format", "json"], None);
            let h: Value = serde_json::from_slice(&out.stdout).ok()?;
            (h["controllers_unreachable"] == serde_json::json!([3])).then_some(())
        },
    );
    // The on-call question, as kafka-topics.sh asks it: which partitions are under-replicated
    // (all of orders'), and which unavailable (none).
    let under = json(&bs, &["topic", "describe", "--under-replicated-partitions"]);
    let orders: Vec<&Value> = under
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == "orders")
        .collect();
    assert_eq!(orders.len(), 3, "{under}");
    assert!(orders.iter().all(|p| p["under_replicated"] == true));
    let text = ok(
        &bs,
        &[
            "topic",
            "describe",
            "orders",
            "--under-replicated-partitions",
        ],
        None,
    );
    assert!(
        text.contains("3(down)") && text.contains("UNDER-REPLICATED"),
        "{text}"
    );
    assert_eq!(
        json(&bs, &["topic", "describe", "--unavailable-partitions"]),
        serde_json::json!([])
    );
    // The topic still serves (min.insync.replicas=2 of 3).
    ok(&bs, &["topic", "produce", "orders"], Some("still-up\n"));

    c.broker(3).restart();
    wait_for("the cluster healthy again", Duration::from_secs(60), || {
        strata(&c.bootstrap(), &["cluster", "health"], None)
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn the_commands_log_in_with_sasl_from_a_command_config() {
    let port = common::free_port();
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                username=\"admin\" password=\"admin-secret\" user_alice=\"alice-secret\";";
    let _b = Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}"),
        ],
    );
    let bs = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alice.properties");
    std::fs::write(
        &config,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"alice-secret\";\n",
    )
    .unwrap();
    let config = config.display().to_string();
    ok(
        &bs,
        &["topic", "create", "secured", "--command-config", &config],
        None,
    );
    let list = json(&bs, &["topic", "list", "--command-config", &config]);
    assert!(topic_in(&list, "secured").is_some());
    // -X overrides the file: a wrong password is refused, clearly, with a failing status.
    let out = strata(
        &bs,
        &[
            "topic",
            "list",
            "--command-config",
            &config,
            "-X",
            "sasl.password=wrong",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SASL login refused"), "{err}");
    // Without credentials the broker answers nothing but the handshake.
    let out = strata(&bs, &["topic", "list", "--timeout", "3"], None);
    assert_eq!(out.status.code(), Some(1));
}

/// A librdkafka producer's settings as SCRAM user `user`.
fn scram_client(bootstrap: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("message.timeout.ms", "5000");
    c
}

/// Produces one record as `config`'s user; the delivery result.
fn produce_as(config: &ClientConfig, topic: &str) -> Result<(), String> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let rt = common::kafka::runtime();
    let producer: FutureProducer = config.create().unwrap();
    rt.block_on(producer.send(
        FutureRecord::<(), _>::to(topic).payload("x"),
        Duration::from_secs(5),
    ))
    .map(|_| ())
    .map_err(|(e, _)| e.to_string())
}

/// Logs in as `config`'s user (librdkafka) and asks for metadata.
fn login_as(config: &ClientConfig) -> Result<(), String> {
    let c: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    c.fetch_metadata(None, Duration::from_secs(5))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn users_acls_and_quotas_from_the_commands_govern_real_clients() {
    let port = common::free_port();
    let mport = common::free_port();
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                user_admin=\"admin-secret\";";
    let _b = Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}"),
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    let bs = format!("127.0.0.1:{port}");
    let admin = [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        "sasl.username=admin",
        "-X",
        "sasl.password=admin-secret",
    ];
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut a = args.to_vec();
        a.extend(admin);
        strata(&bs, &a, stdin)
    };
    let run_ok = |args: &[&str], stdin: Option<&str>| {
        let out = run(args, stdin);
        assert!(
            out.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run_ok(&["topic", "create", "orders", "-p", "1"], None);

    // A SCRAM user created by the command (the password from stdin) logs in; without ACLs
    // it may not write.
    run_ok(&["user", "set", "carol"], Some("carol-secret\n"));
    let users: Value =
        serde_json::from_str(&run_ok(&["user", "list", "--format", "json"], None)).unwrap();
    assert_eq!(users[0]["user"], "carol");
    assert_eq!(users[0]["credentials"][0][0], "SCRAM-SHA-512");
    let carol = scram_client(&bs, "carol", "carol-secret");
    login_as(&carol).expect("carol logs in");
    let refused = produce_as(&carol, "orders").unwrap_err();
    assert!(refused.contains("uthorization"), "{refused}");

    // ACLs from the command let her write; removed, they stop her again.
    run_ok(
        &[
            "acl",
            "create",
            "--resource",
            "topic:orders",
            "--principal",
            "User:carol",
            "--operation",
            "write",
            "--operation",
            "describe",
        ],
        None,
    );
    let acls: Value = serde_json::from_str(&run_ok(
        &[
            "acl",
            "list",
            "--principal",
            "User:carol",
            "--format",
            "json",
        ],
        None,
    ))
    .unwrap();
    let ops: Vec<&str> = acls
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["describe", "write"]);
    produce_as(&carol, "orders").expect("carol may write");
    let out = run(
        &[
            "acl",
            "delete",
            "--resource",
            "topic:orders",
            "--principal",
            "User:carol",
            "--operation",
            "write",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 ACLs deleted"));
    assert!(produce_as(&carol, "orders").is_err());

    // Quotas set and listed.
    run_ok(
        &[
            "quota",
            "set",
            "user=carol",
            "--set",
            "producer_byte_rate=1048576",
        ],
        None,
    );
    let quotas: Value =
        serde_json::from_str(&run_ok(&["quota", "list", "--format", "json"], None)).unwrap();
    assert_eq!(quotas[0]["entity"], "user=carol");
    assert_eq!(quotas[0]["values"][0][0], "producer_byte_rate");
    assert_eq!(quotas[0]["values"][0][1], 1048576.0);

    // The user deleted: her login is refused.
    run_ok(&["user", "delete", "carol"], None);
    // The clients only say the broker is unreachable; the broker counts the refused login.
    let failures = || Broker::metric(mport, "strata_sasl_authentication_failures");
    let before = failures();
    assert!(login_as(&carol).is_err());
    assert!(failures() > before, "a refused login, not a refused write");
    let users: Value =
        serde_json::from_str(&run_ok(&["user", "list", "--format", "json"], None)).unwrap();
    assert_eq!(users, serde_json::json!([]));
}

#[test]
fn txn_commands_find_an_open_transaction() {
    use rdkafka::producer::{BaseProducer, BaseRecord as Record, Producer as _};
    let b = Broker::start(&[
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.num.partitions=1",
    ]);
    let bs = b.bootstrap();
    ok(&bs, &["topic", "create", "payments", "-p", "2"], None);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("transactional.id", "payments-tx")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(20)).unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send(Record::<(), _>::to("payments").partition(1).payload("p"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();

    let listed = json(&bs, &["txn", "list", "--state", "Ongoing"]);
    assert_eq!(listed[0]["transactional_id"], "payments-tx", "{listed}");
    let described = json(&bs, &["txn", "describe", "payments-tx"]);
    assert_eq!(described["state"], "Ongoing");
    assert_eq!(described["partitions"]["payments"], serde_json::json!([1]));
    let producers = json(&bs, &["txn", "producers", "payments"]);
    assert_eq!(producers[0]["partition"], 1);
    assert_eq!(producers[0]["current_txn_start_offset"], 0);

    producer
        .commit_transaction(Duration::from_secs(20))
        .unwrap();
    // EndTxn is answered once the commit is decided (PrepareCommit, as in Kafka); the markers
    // follow, then CompleteCommit.
    assert_eq!(
        json(&bs, &["txn", "list", "--state", "Ongoing"]),
        serde_json::json!([])
    );
    let state = wait_for("the commit completed", Duration::from_secs(10), || {
        let d = json(&bs, &["txn", "describe", "payments-tx"]);
        let state = d["state"].as_str()?.to_string();
        (state != "PrepareCommit").then_some(state)
    });
    assert_eq!(state, "CompleteCommit");
    let producers = json(&bs, &["txn", "producers", "payments", "-p", "1"]);
    assert_eq!(producers[0]["current_txn_start_offset"], -1);
    let typo = strata(&bs, &["txn", "producers", "paymnts"], None);
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean \"payments\""));
}

#[test]
fn a_kip_848_consumer_group_is_described_with_its_assignment() {
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    ok(
        &bs,
        &["topic", "create", "clicks", "--partitions", "2"],
        None,
    );
    let lines: String = (0..10).map(|i| format!("c{i}\n")).collect();
    ok(
        &bs,
        &["topic", "produce", "clicks", "-p", "0"],
        Some(&lines),
    );
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "clickers")
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&["clicks"]).unwrap();
    poll_n(&c, 4);
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let described = json(&bs, &["group", "describe", "clickers"]);
    assert_eq!(
        described["protocol_type"], "consumer (KIP-848)",
        "{described}"
    );
    assert_eq!(described["members"].as_array().unwrap().len(), 1);
    assert_eq!(
        described["members"][0]["assignment"]["clicks"],
        serde_json::json!([0, 1])
    );
    // Four read and committed of ten in partition 0; partition 1 is empty.
    assert_eq!(described["total_lag"], 6, "{described}");
    let listed = json(&bs, &["group", "list"]);
    let g = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "clickers")
        .unwrap();
    assert_eq!(g["group_type"], "consumer");
}
