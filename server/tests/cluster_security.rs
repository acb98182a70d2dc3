//! Clusters whose own links are secured, from the outside: three real `strata` processes with
//! mutual TLS on the controller listener (Raft between voters, brokers' registrations and
//! heartbeats) and on the inter-broker listener (followers' fetches), serving librdkafka on a
//! PLAINTEXT listener and kafka-python on a SASL_SSL one. The leader is SIGKILLed under
//! acks=all and nothing acknowledged is lost; nodes without the cluster's credentials (a
//! certificate from another CA, no TLS at all) cannot register; followers that log in with
//! SASL replicate, and one with a wrong password is refused and never joins an ISR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::certs::{Purpose, ca, keystore, leaf};
use common::cluster::{Cluster, Layout, wait_for};
use common::history::*;

/// The cluster's CA and one node certificate (both purposes: a node is the server of its
/// listeners and the client of its peers'), and an intruder's from another CA.
fn write_certs(dir: &Path) {
    let cluster_ca = ca("strata cluster CA");
    let other_ca = ca("some other CA");
    let names = ["localhost", "127.0.0.1"];
    let both = [Purpose::ServerAuth, Purpose::ClientAuth];
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    w("ca.pem", &cluster_ca.cert.pem());
    w(
        "node.pem",
        &keystore(&leaf(&cluster_ca, "strata-node", &names, &both)),
    );
    w(
        "intruder.pem",
        &keystore(&leaf(&other_ca, "strata-node", &names, &both)),
    );
    // Signed by the cluster's CA, but not a node's principal (a client's, say).
    w(
        "impostor.pem",
        &keystore(&leaf(&cluster_ca, "impostor", &names, &both)),
    );
}

const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                          username=\"broker\" password=\"broker-secret\" \
                          user_broker=\"broker-secret\" user_alice=\"alice-secret\" \
                          user_admin=\"admin-secret\";";

/// Three nodes with PLAINTEXT (librdkafka and the harness), INTERNAL (`internal` protocol:
/// the inter-broker listener) and CLIENT (SASL_SSL) listeners, and mutual TLS on the
/// controller listener. Returns the cluster and each node's CLIENT port.
fn secured_cluster(certs: &Path, internal: &str, more: &[&str]) -> (Cluster, Vec<u16>) {
    let d = certs.display();
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let clients: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let per_node = (0..3)
        .map(|i| {
            vec![format!(
                "listeners=PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{},CLIENT://127.0.0.1:{}",
                ports[i],
                common::free_port(),
                clients[i]
            )]
        })
        .collect();
    let mut extra = vec![
        format!(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:{internal},CLIENT:SASL_SSL,CONTROLLER:SSL"
        ),
        "inter.broker.listener.name=INTERNAL".to_string(),
        "controller.listener.names=CONTROLLER".to_string(),
        format!("ssl.keystore.location={d}/node.pem"),
        format!("ssl.truststore.location={d}/ca.pem"),
        "ssl.client.auth=requested".to_string(),
        "sasl.enabled.mechanisms=PLAIN".to_string(),
        format!("listener.name.client.plain.sasl.jaas.config={PLAIN_JAAS}"),
        format!("listener.name.internal.plain.sasl.jaas.config={PLAIN_JAAS}"),
    ];
    extra.extend(more.iter().map(|m| m.to_string()));
    let c = Cluster::start(Layout {
        brokers: 3,
        extra,
        per_node,
        ports,
        ..Layout::default()
    });
    (c, clients)
}

fn kafka_python(certs: &Path, bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec![
        common::python_script("kafka_python_cluster_sasl_ssl.py"),
        certs.join("ca.pem").display().to_string(),
        bootstrap.to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    common::python(&all)
}

fn metric_sum(c: &Cluster, name: &str) -> f64 {
    c.metrics_ports
        .iter()
        .map(|p| common::Broker::metric(*p, name))
        .sum()
}

#[test]
fn mutual_tls_between_nodes_survives_a_leader_kill_and_keeps_strangers_out() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (mut c, clients) = secured_cluster(certs.path(), "SSL", &[]);
    let sasl_ssl = |without: Option<usize>| {
        clients
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(i + 1) != without)
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    // Replication runs over the SSL inter-broker listener: the ISR fills.
    create_topic(&c.bootstrap(), "orders", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "orders", 0, 3) as usize;
    let out = kafka_python(
        certs.path(),
        &sasl_ssl(None),
        &["orders", "produce", "0", "300"],
    );
    assert!(out.contains("acked 300"), "{out}");
    let p = producer(&c.bootstrap(), &[]);
    let inflight = enqueue(&p, "orders", 300..900, None);
    std::thread::sleep(Duration::from_millis(20));
    c.broker(leader).kill9();
    let mut acked: Vec<u64> = (0..300).collect();
    acked.extend(acknowledged(inflight));
    assert_eq!(acked.len(), 900, "the new leader took every retried batch");
    let others = c.bootstrap_without(leader);
    wait_isr(&others, "orders", 0, 2);
    let out = kafka_python(
        certs.path(),
        &sasl_ssl(Some(leader)),
        &["orders", "produce", "900", "1000"],
    );
    assert!(out.contains("acked 100"), "{out}");
    acked.extend(900..1000);
    let read = read_back(&others, "orders", 0, acked.len());
    assert_nothing_lost(&read, &acked);
    // kafka-python reads everything over SASL_SSL, and the metadata it got names the CLIENT
    // listener's ports of the live brokers (not the PLAINTEXT or INTERNAL ones).
    let out = kafka_python(
        certs.path(),
        &sasl_ssl(Some(leader)),
        &["orders", "consume", "1000"],
    );
    assert!(out.contains("read 1000 distinct, max 999"), "{out}");
    let listed: Vec<u16> = out
        .lines()
        .find_map(|l| l.strip_prefix("brokers on ports "))
        .expect("the ports line")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    for (i, port) in clients.iter().enumerate() {
        if i + 1 != leader {
            assert!(listed.contains(port), "{listed:?} lacks node {}", i + 1);
        }
    }
    assert!(
        listed.iter().all(|p| clients.contains(p)),
        "{listed:?}: every address is a CLIENT listener's ({clients:?})"
    );
    // The killed node comes back over the same TLS links and rejoins.
    c.broker(leader).restart();
    wait_isr(&c.bootstrap(), "orders", 0, 3);

    // Strangers: a node with a certificate from another CA, and one without TLS, try to join.
    let before = metric_sum(&c, "strata_tls_handshake_failures");
    let voters = c.voters().to_string();
    let d = certs.path().display();
    let intruder = common::Broker::start(&[
        "node.id=4",
        "process.roles=broker",
        &format!("controller.quorum.voters={voters}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        "controller.listener.names=CONTROLLER",
        &format!("ssl.keystore.location={d}/intruder.pem"),
        &format!("ssl.truststore.location={d}/ca.pem"),
    ]);
    let plaintext = common::Broker::start(&[
        "node.id=5",
        "process.roles=broker",
        &format!("controller.quorum.voters={voters}"),
    ]);
    wait_for(
        "the controllers to refuse both strangers' handshakes",
        Duration::from_secs(20),
        || (metric_sum(&c, "strata_tls_handshake_failures") >= before + 2.0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    let brokers = common::cluster::broker_ids(&c.bootstrap());
    assert_eq!(brokers, vec![1, 2, 3], "no stranger registered");
    drop((intruder, plaintext));
}

#[test]
fn followers_log_in_with_sasl_and_a_wrong_password_never_joins_an_isr() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (mut c, _) = secured_cluster(certs.path(), "SASL_PLAINTEXT", &[]);
    create_topic(&c.bootstrap(), "logins", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "logins", 0, 3);
    let p = producer(&c.bootstrap(), &[]);
    let acked = produce_all(&p, "logins", 0..200);
    assert_eq!(acked.len(), 200);
    // A fourth broker whose inter-broker login is wrong: it registers (the controller link is
    // TLS, and its certificate is good), but no leader lets it fetch.
    let before = metric_sum(&c, "strata_sasl_authentication_failures");
    let port = common::free_port();
    let id = c.add_broker_on(
        port,
        &[
            &format!(
                "listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{},CLIENT://127.0.0.1:{}",
                common::free_port(),
                common::free_port()
            ),
            "listener.name.internal.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"guess\";",
        ],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["cluster", "reassign", "--bootstrap-server"])
        .arg(c.bootstrap())
        .args(["--topic", "logins", "--partition", "0", "--replicas"])
        .arg(format!("{leader},{id}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the leader to refuse the wrong login",
        Duration::from_secs(20),
        || (metric_sum(&c, "strata_sasl_authentication_failures") > before).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (_, replicas, isr) = partition_state(&c.bootstrap(), "logins", 0).unwrap();
    assert!(replicas.contains(&(id as i32)), "{replicas:?}");
    assert!(
        !isr.contains(&(id as i32)),
        "a broker with a wrong password joined the ISR: {isr:?}"
    );
    assert_eq!(read_back(&c.bootstrap(), "logins", 0, 200).len(), 200);
    let _ = c.broker(id);
}

/// ACLs and SCRAM users live in the metadata quorum: made through one broker, in force on
/// every other, and still there after every node is SIGKILLed and restarted. The nodes
/// replicate under the authorizer as super users (their certificate's DN).
#[test]
fn acls_and_scram_users_made_through_one_broker_hold_on_all_and_survive_a_full_restart() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (mut c, clients) = secured_cluster(
        certs.path(),
        "SSL",
        &[
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin;User:CN=strata-node",
        ],
    );
    let node = |i: usize| format!("127.0.0.1:{}", clients[i]);
    let ca = certs.path().join("ca.pem").display().to_string();
    let out = common::python(&[
        common::python_script("kafka_python_cluster_acls.py"),
        ca.clone(),
        "setup".into(),
        node(0),
        node(1),
        node(2),
    ]);
    assert!(out.contains("cluster-acls: setup ok"), "{out}");
    println!("{out}");
    // The topics' followers replicate under the authorizer (CLUSTER_ACTION as super users).
    let plaintext = c.bootstrap();
    wait_isr(&plaintext, "secured", 0, 3);
    for i in 1..=3 {
        c.broker(i).kill9();
    }
    for i in 1..=3 {
        c.broker(i).restart();
    }
    c.wait_live(3);
    let out = common::python(&[
        common::python_script("kafka_python_cluster_acls.py"),
        ca,
        "after-restart".into(),
        node(2),
    ]);
    assert!(out.contains("cluster-acls: after-restart ok"), "{out}");
    println!("{out}");

    // With an authorizer on, a certificate from the cluster's CA is not enough to use the
    // controller listener: its principal must be a super user (a node's).
    let before = metric_sum(&c, "strata_tls_handshake_failures");
    let d = certs.path().display();
    let impostor = common::Broker::start(&[
        "node.id=4",
        "process.roles=broker",
        &format!("controller.quorum.voters={}", c.voters()),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        "controller.listener.names=CONTROLLER",
        &format!("ssl.keystore.location={d}/impostor.pem"),
        &format!("ssl.truststore.location={d}/ca.pem"),
    ]);
    wait_for(
        "the controllers to refuse the impostor",
        Duration::from_secs(20),
        || (metric_sum(&c, "strata_tls_handshake_failures") > before).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        common::cluster::broker_ids(&plaintext),
        vec![1, 2, 3],
        "the impostor registered"
    );
    drop(impostor);
}

/// A cluster's first SCRAM user is added to a node's data directory with `strata scram add`
/// while it is down, as Kafka's storage tool adds one before the first start: the active
/// controller finds the quorum without users and adds the file's, and kafka-python logs in.
#[test]
fn a_first_scram_user_added_to_the_data_directory_reaches_the_quorum() {
    let (kafka, sasl, voter) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let mut node = common::Broker::start_on(
        kafka,
        &[
            "node.id=1",
            &format!("controller.quorum.voters=1@127.0.0.1:{voter}"),
            &format!("listeners=PLAINTEXT://127.0.0.1:{kafka},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
            "sasl.enabled.mechanisms=SCRAM-SHA-256",
            "offsets.topic.replication.factor=1",
        ],
    );
    node.kill9();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["scram", "add", "--data-dir"])
        .arg(node.data_dir())
        .arg("SCRAM-SHA-256=[name=carol,password=carol-secret]")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.restart();
    let script = format!(
        r#"
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers="127.0.0.1:{sasl}", security_protocol="SASL_PLAINTEXT",
                  sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="carol",
                  sasl_plain_password="carol-secret", acks="all", retries=20)
p.send("bootstrapped", value=b"x").get(timeout=30)
p.close()
print("carol produced")
"#
    );
    let out = common::python(&["-c", &script]);
    assert!(out.contains("carol produced"), "{out}");
}

/// A client on any listener is told addresses on that listener: in Metadata and in the KIP-951
/// leader hints of a produce answered by a broker that is not the leader (built after the
/// append, in a task of its own; it once named the first listener's addresses, which sent
/// TLS clients to a PLAINTEXT port).
#[test]
fn metadata_and_leader_hints_name_the_listener_the_client_uses() {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, ResponseKind};
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let other: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let per_node = (0..3)
        .map(|i| {
            vec![format!(
                "listeners=PLAINTEXT://127.0.0.1:{},OTHER://127.0.0.1:{}",
                ports[i], other[i]
            )]
        })
        .collect();
    let c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT".into()],
        per_node,
        ports,
        ..Layout::default()
    });
    create_topic(&c.bootstrap(), "hinted", 1, 1);
    let leader = wait_isr(&c.bootstrap(), "hinted", 0, 1);
    let elsewhere = (1..=3).find(|n| *n != leader).unwrap();
    let connect = |port: u16| {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut conn = connect(other[elsewhere as usize - 1]);
    let ResponseKind::Metadata(md) =
        common::wire::call(&mut conn, ApiKey::Metadata, 12, &MetadataRequest::default())
    else {
        panic!("not a Metadata response")
    };
    let mut listed: Vec<u16> = md.brokers.iter().map(|b| b.port as u16).collect();
    listed.sort();
    let mut want = other.clone();
    want.sort();
    assert_eq!(listed, want, "Metadata on OTHER names OTHER addresses");
    let batch = strata_engine::batch::build(strata_engine::Offset(0), 0, &[(None, Some(b"x"))]);
    let req = common::wire::produce("hinted", vec![(0, bytes::Bytes::from(batch))]);
    let ResponseKind::Produce(resp) = common::wire::call(&mut conn, ApiKey::Produce, 11, &req)
    else {
        panic!("not a Produce response")
    };
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 6);
    let hinted: Vec<(i32, i32)> = resp
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    assert_eq!(
        hinted,
        vec![(leader, i32::from(other[leader as usize - 1]))],
        "the leader's address on OTHER"
    );
}
