//! SSL listeners from the outside: a broker with a PLAINTEXT and an SSL listener (mutual TLS,
//! certificates made for the test by rcgen), and kafka-python (an independent client, over
//! Python's OpenSSL) creating, producing and consuming over TLS; a client without a
//! certificate, with one from another CA, or speaking plaintext to the SSL port is refused (and
//! counted), the client refuses a broker its CA did not sign, and the plaintext listener keeps
//! serving and advertising itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::certs::{Purpose, ca, leaf};

fn write_certs(dir: &Path) {
    let ca1 = ca("strata test CA");
    let rogue = ca("another CA");
    let (server_crt, server_key) = leaf(
        &ca1,
        "broker",
        &["localhost", "127.0.0.1"],
        &[Purpose::ServerAuth],
    );
    let (client_crt, client_key) = leaf(&ca1, "client-1", &[], &[Purpose::ClientAuth]);
    let (rogue_crt, rogue_key) = leaf(&rogue, "intruder", &[], &[Purpose::ClientAuth]);
    let (client2_crt, client2_key) = leaf(&ca1, "client-2", &[], &[Purpose::ClientAuth]);
    let w = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    w("ca.pem", &ca1.cert.pem());
    w("rogue-ca.pem", &rogue.cert.pem());
    // Kafka's PEM keystore file: the private key and the certificate chain.
    w("server.pem", &format!("{server_key}{server_crt}"));
    w("client.crt", &client_crt);
    w("client.key", &client_key);
    w("client-2.crt", &client2_crt);
    w("client-2.key", &client2_key);
    w("rogue.crt", &rogue_crt);
    w("rogue.key", &rogue_key);
}

#[test]
fn kafka_python_over_mutual_tls_and_what_an_ssl_listener_refuses() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (plain, ssl, mport) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let d = certs.path().display();
    let broker = common::Broker::start_on(
        plain,
        &[
            &format!("listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
            "ssl.keystore.type=PEM",
            &format!("ssl.keystore.location={d}/server.pem"),
            "ssl.truststore.type=PEM",
            &format!("ssl.truststore.location={d}/ca.pem"),
            "ssl.client.auth=required",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    let stdout = common::python(&[
        common::python_script("kafka_python_tls.py"),
        certs.path().display().to_string(),
        format!("127.0.0.1:{ssl}"),
        broker.bootstrap(),
    ]);
    assert!(
        stdout.contains("tls: mutual TLS ok 300 records"),
        "{stdout}"
    );
    assert!(stdout.contains("tls: ok"), "{stdout}");
    println!("{stdout}");
    let failures = common::Broker::metric(mport, "strata_tls_handshake_failures");
    assert!(failures >= 3.0, "{failures} handshake failures counted");
}

/// kafkajs (a JavaScript client over Node's TLS) produces and consumes over mutual TLS on the
/// SSL listener, and is refused without its certificate. (Debian's kcat here is built without
/// OpenSSL, so it cannot take part.)
#[test]
fn kafkajs_over_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (plain, ssl) = (common::free_port(), common::free_port());
    let d = certs.path().display().to_string();
    let _broker = common::Broker::start_on(
        plain,
        &[
            &format!("listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
            &format!("ssl.keystore.location={d}/server.pem"),
            &format!("ssl.truststore.location={d}/ca.pem"),
            "ssl.client.auth=required",
        ],
    );
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/kafkajs_tls.js"
        ))
        .arg(certs.path())
        .arg(format!("127.0.0.1:{ssl}"))
        .output()
        .expect("node runs (scripts/test installs it and kafkajs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafkajs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    for line in [
        "produced 100",
        "consumed 100",
        "refused without a certificate",
        "kafkajs tls: ok",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
}

/// With mutual TLS the client certificate's subject is the principal ACLs name
/// (`User:CN=client-1`, as Kafka's default principal builder gives): client-1, a super user,
/// manages ACLs; client-2 may produce only once an ACL allows it.
#[test]
fn the_client_certificate_is_the_principal_acls_name() {
    mtls_acls(None, "User:CN=client-1", "User:CN=client-2");
}

/// `ssl.principal.mapping.rules` turn the certificate's subject into the principal name.
#[test]
fn principal_mapping_rules_name_the_principal() {
    mtls_acls(
        Some("RULE:^CN=([^,]*)$/$1/U, DEFAULT"),
        "User:CLIENT-1",
        "User:CLIENT-2",
    );
}

fn mtls_acls(rules: Option<&str>, super_user: &str, other: &str) {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (plain, ssl) = (common::free_port(), common::free_port());
    let d = certs.path().display().to_string();
    let mut settings = vec![
        format!("listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
        format!("ssl.keystore.location={d}/server.pem"),
        format!("ssl.truststore.location={d}/ca.pem"),
        "ssl.client.auth=required".to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        format!("super.users={super_user}"),
    ];
    if let Some(rules) = rules {
        settings.push(format!("ssl.principal.mapping.rules={rules}"));
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let _broker = common::Broker::start_on(plain, &settings);
    let script = r#"
import sys
import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ACL, ACLOperation, ACLPermissionType, NewTopic, ResourcePattern, ResourceType
d, bootstrap, other = sys.argv[1], sys.argv[2], sys.argv[3]
def tls(who, **extra):
    c = dict(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=d + "/ca.pem",
             ssl_certfile="%s/%s.crt" % (d, who), ssl_keyfile="%s/%s.key" % (d, who),
             bootstrap_timeout_ms=5000)
    c.update(extra)
    return c
def produce(who):
    p = KafkaProducer(acks="all", retries=0, max_block_ms=5000, **tls(who))
    try:
        p.send("mtls-acl", value=who.encode()).get(timeout=10)
    finally:
        p.close(timeout=2)
admin = KafkaAdminClient(**tls("client"))
admin.create_topics([NewTopic("mtls-acl", 1, 1)])
produce("client")
try:
    produce("client-2")
    raise AssertionError("client-2 produced without an ACL")
except Errors.TopicAuthorizationFailedError:
    print("client-2 refused")
r = admin.create_acls([ACL(other, "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
                           ResourcePattern(ResourceType.TOPIC, "mtls-acl"))])
assert len(r["succeeded"]) == 1, r
produce("client-2")
print("client-2 allowed")
"#;
    let stdout = common::python(&[
        "-c",
        script,
        &certs.path().display().to_string(),
        &format!("127.0.0.1:{ssl}"),
        other,
    ]);
    assert!(
        stdout.contains("client-2 refused") && stdout.contains("client-2 allowed"),
        "{stdout}"
    );
}

/// The subject CN of the broker's certificate, as a Python client that trusts `ca` sees it
/// on a TLS handshake with `port`; `None` if the handshake fails.
fn broker_cn(ca: &Path, port: u16) -> Option<String> {
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            print(dict(x[0] for x in t.getpeercert()["subject"])["commonName"])
except ssl.SSLError as e:
    print("refused", e)
"#;
    let text = common::python(&["-c", script, &ca.display().to_string(), &port.to_string()])
        .trim()
        .to_string();
    (!text.starts_with("refused")).then_some(text)
}

/// A renewed certificate is used by new connections without a restart, once its file
/// changes; a file that does not load is logged and the certificate in use kept.
#[test]
fn a_renewed_certificate_is_used_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (plain, ssl, mport) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let d = certs.path().display().to_string();
    let _broker = common::Broker::start_on(
        plain,
        &[
            &format!("listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
            &format!("ssl.keystore.location={d}/server.pem"),
            "ssl.keystore.reload.interval.ms=200",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    let old_ca = certs.path().join("ca.pem");
    assert_eq!(broker_cn(&old_ca, ssl).as_deref(), Some("broker"));

    // Renewed: another CA, another name; written beside and renamed over, as tools do.
    let ca2 = ca("renewal CA");
    let (crt, key) = leaf(
        &ca2,
        "broker-renewed",
        &["localhost", "127.0.0.1"],
        &[Purpose::ServerAuth],
    );
    let new_ca = certs.path().join("new-ca.pem");
    std::fs::write(&new_ca, ca2.cert.pem()).unwrap();
    let replace = |text: &str| {
        let tmp = certs.path().join("server.pem.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, certs.path().join("server.pem")).unwrap();
    };
    replace(&format!("{key}{crt}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while broker_cn(&new_ca, ssl).as_deref() != Some("broker-renewed") {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        broker_cn(&old_ca, ssl),
        None,
        "the old CA no longer vouches for it"
    );
    assert_eq!(common::Broker::metric(mport, "strata_tls_reloads"), 1.0);

    // A broken file: kept serving the renewed certificate.
    replace("-----BEGIN PRIVATE KEY-----\nnot a key\n");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(broker_cn(&new_ca, ssl).as_deref(), Some("broker-renewed"));
    assert_eq!(common::Broker::metric(mport, "strata_tls_reloads"), 1.0);
}

/// Settings an SSL listener cannot run with are refused at start, naming the setting.
#[test]
fn an_ssl_listener_without_a_usable_keystore_does_not_start() {
    let bin = env!("CARGO_BIN_EXE_strata");
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--set", &format!("listeners=SSL://127.0.0.1:{port}")]);
        for e in extra {
            cmd.args(["--set", e]);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "started with {extra:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&[]).contains("ssl.keystore.location"));
    assert!(run(&["ssl.keystore.type=JKS", "ssl.keystore.location=/x"]).contains("only PEM"));
    assert!(
        run(&["ssl.keystore.location=/nonexistent/server.pem"]).contains("/nonexistent/server.pem")
    );
    let sasl = run(&[
        "listener.security.protocol.map=SSL:SASL_SSL",
        "sasl.enabled.mechanisms=",
    ]);
    assert!(sasl.contains("no mechanism is enabled"), "{sasl}");
    let gssapi = run(&["sasl.enabled.mechanisms=GSSAPI"]);
    assert!(gssapi.contains("OAUTHBEARER are supported"), "{gssapi}");
}

/// librdkafka (built with OpenSSL) over mutual TLS: it produces with acks=all and reads it all
/// back with its client certificate; without a certificate, or with one from another CA, it
/// gets nothing through.
#[test]
fn rdkafka_over_mutual_tls() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (plain, ssl) = (common::free_port(), common::free_port());
    let d = certs.path().display().to_string();
    let _broker = common::Broker::start_on(
        plain,
        &[
            &format!("listeners=PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl}"),
            &format!("ssl.keystore.location={d}/server.pem"),
            &format!("ssl.truststore.location={d}/ca.pem"),
            "ssl.client.auth=required",
        ],
    );
    let config = |cert: Option<&str>| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", format!("127.0.0.1:{ssl}"))
            .set("security.protocol", "SSL")
            .set("ssl.ca.location", format!("{d}/ca.pem"));
        if let Some(name) = cert {
            c.set("ssl.certificate.location", format!("{d}/{name}.crt"))
                .set("ssl.key.location", format!("{d}/{name}.key"));
        }
        c
    };
    let rt = common::kafka::runtime();
    let producer: FutureProducer = config(Some("client"))
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for i in 0..100 {
        let payload = format!("t{i}");
        rt.block_on(producer.send(
            FutureRecord::to("rd-tls").key("k").payload(&payload),
            Duration::from_secs(20),
        ))
        .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
    for cert in [None, Some("rogue")] {
        let intruder: FutureProducer = config(cert)
            .set("message.timeout.ms", "4000")
            .create()
            .unwrap();
        let refused = rt.block_on(intruder.send(
            FutureRecord::to("rd-tls").key("k").payload("must not land"),
            Duration::from_secs(5),
        ));
        let (e, _) = refused.expect_err("a client without a trusted certificate produced");
        println!("certificate {cert:?}: {e}");
    }
    let got =
        common::kafka::read_exactly(&mut config(Some("client-2")), "rd-tls", "rd-tls-group", 100);
    let want: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    assert_eq!(got, want);
}

/// The certificate a node presents on its links to other nodes is renewed without a restart:
/// the same `ReloadingClientConfig` first presents a certificate the peer does not trust and
/// is refused, then, once the file holds a renewed one from the cluster's CA, is let in.
#[test]
fn a_links_renewed_client_certificate_is_presented_without_a_restart() {
    use strata_server::tls::{ClientAuth, ReloadingAcceptor, ReloadingClientConfig, SslSettings};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cluster_ca = ca("cluster CA");
    let other_ca = ca("other CA");
    let names = ["127.0.0.1"];
    let both = [Purpose::ServerAuth, Purpose::ClientAuth];
    let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    w("ca.pem", &cluster_ca.cert.pem());
    w(
        "peer.pem",
        &common::certs::keystore(&leaf(&cluster_ca, "peer", &names, &both)),
    );
    w(
        "node.pem",
        &common::certs::keystore(&leaf(&other_ca, "node", &names, &both)),
    );
    let settings = |keystore: &str| SslSettings {
        keystore_location: Some(d.join(keystore)),
        truststore_location: Some(d.join("ca.pem")),
        client_auth: ClientAuth::Required,
        ..SslSettings::default()
    };
    let acceptor = ReloadingAcceptor::new(settings("peer.pem"))
        .unwrap()
        .acceptor();
    let client = ReloadingClientConfig::new(settings("node.pem")).unwrap();
    let rt = common::kafka::runtime();
    let handshake = |client: &ReloadingClientConfig| {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let acceptor = acceptor.clone();
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                acceptor.accept(tcp).await.is_ok()
            });
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let connected = tokio_rustls::TlsConnector::from(client.config())
                .connect(name, tcp)
                .await;
            // TLS 1.3: the client finishes before the server has checked its certificate.
            let accepted = server.await.unwrap();
            connected.is_ok() && accepted
        })
    };
    assert!(
        !handshake(&client),
        "a certificate from another CA was let in"
    );
    // The renewed certificate, from the cluster's CA, written over the old file.
    std::thread::sleep(Duration::from_millis(20));
    w(
        "node.pem.new",
        &common::certs::keystore(&leaf(&cluster_ca, "node", &names, &both)),
    );
    std::fs::rename(d.join("node.pem.new"), d.join("node.pem")).unwrap();
    assert!(
        handshake(&client),
        "the renewed certificate was not presented"
    );
}
