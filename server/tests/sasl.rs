//! SASL listeners from the outside (KIP-152 over Kafka's wire): kafka-python authenticating
//! with PLAIN (users from the listener's JAAS text) on a SASL_PLAINTEXT listener, and with
//! SCRAM-SHA-512 and SCRAM-SHA-256 on a SASL_SSL listener (users stored salted and hashed by
//! `strata scram add` while the broker is stopped); wrong passwords, unknown users, disabled
//! mechanisms and clients that skip SASL are refused and counted; on the wire, a failed
//! exchange answers SASL_AUTHENTICATION_FAILED and closes the connection, and a request other
//! than ApiVersions before authentication closes it without an answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    username=\"admin\" password=\"admin-secret\" \
                    user_alice=\"alice-secret\";";

fn write_certs(dir: &Path) {
    let ca = common::certs::ca("strata sasl test CA");
    let server = common::certs::leaf(
        &ca,
        "broker",
        &["localhost", "127.0.0.1"],
        &[common::certs::Purpose::ServerAuth],
    );
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), common::certs::keystore(&server)).unwrap();
}

/// `strata scram <args>`: (success, stdout + stderr).
fn scram(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("scram")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A broker with a SASL_PLAINTEXT and a SASL_SSL listener, bob (SCRAM-SHA-512) and carol
/// (SCRAM-SHA-256) stored before its (second) start; returns it with the two ports.
fn sasl_broker(certs: &Path, mport: u16) -> (common::Broker, u16, u16) {
    let (sasl_plain, sasl_ssl) = (common::free_port(), common::free_port());
    let d = certs.display();
    let settings = [
        format!(
            "listeners=SASL_PLAINTEXT://127.0.0.1:{sasl_plain},SASL_SSL://127.0.0.1:{sasl_ssl}"
        ),
        format!("ssl.keystore.location={d}/server.pem"),
        format!("ssl.truststore.location={d}/ca.pem"),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
        format!("metrics.listen=127.0.0.1:{mport}"),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let mut broker = common::Broker::start_on(sasl_plain, &settings);
    let data = broker.data_dir().display().to_string();
    // Credentials change only while no broker owns the directory.
    let (ok, text) = scram(&[
        "add",
        "--data-dir",
        &data,
        "SCRAM-SHA-512=[name=bob,password=bob-secret]",
    ]);
    assert!(!ok && text.contains("stop the broker"), "{text}");
    assert!(broker.terminate().success());
    for cred in [
        "SCRAM-SHA-512=[name=bob,password=bob-secret]",
        "SCRAM-SHA-256=[name=carol,iterations=8192,password=carol-secret]",
        "SCRAM-SHA-256=[name=dave,password=dave-secret]",
    ] {
        let (ok, text) = scram(&["add", "--data-dir", &data, cred]);
        assert!(ok, "{text}");
    }
    let (ok, text) = scram(&[
        "delete",
        "--data-dir",
        &data,
        "--mechanism",
        "SCRAM-SHA-256",
        "--user",
        "dave",
    ]);
    assert!(ok, "{text}");
    // The store holds salted keys, never a password.
    let stored = std::fs::read_to_string(broker.data_dir().join("scram-credentials.json")).unwrap();
    assert!(
        stored.contains("bob") && stored.contains("carol"),
        "{stored}"
    );
    assert!(!stored.contains("dave"), "deleted: {stored}");
    assert!(
        !stored.contains("bob-secret") && !stored.contains("carol-secret"),
        "{stored}"
    );
    broker.restart();
    (broker, sasl_plain, sasl_ssl)
}

#[test]
fn kafka_python_with_plain_and_scram_and_what_a_sasl_listener_refuses() {
    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let mport = common::free_port();
    let (_broker, sasl_plain, sasl_ssl) = sasl_broker(certs.path(), mport);
    let stdout = common::python(&[
        common::python_script("kafka_python_sasl.py"),
        certs.path().display().to_string(),
        format!("127.0.0.1:{sasl_plain}"),
        format!("127.0.0.1:{sasl_ssl}"),
    ]);
    println!("{stdout}");
    for line in [
        "sasl: PLAIN ok 200 records",
        "sasl: SCRAM-SHA-512 ok 200 records",
        "sasl: SCRAM-SHA-256 ok 200 records",
        "sasl: KIP-554 ok",
        "sasl: ok",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    assert_eq!(stdout.matches("sasl: refused").count(), 7, "{stdout}");
    let failures = common::Broker::metric(mport, "strata_sasl_authentication_failures");
    assert!(
        failures >= 4.0,
        "{failures} authentication failures counted"
    );
}

/// A minimal client on Kafka's wire, to see exactly what the broker answers and when it closes.
struct Wire {
    stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    fn open(port: u16) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, req: &R) {
        self.correlation_id += 1;
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = version;
        h.correlation_id = self.correlation_id;
        h.client_id = Some(StrBytes::from_static_str("sasl-wire"));
        let mut frame = BytesMut::new();
        h.encode(&mut frame, api.request_header_version(version))
            .unwrap();
        req.encode(&mut frame, version).unwrap();
        let mut out = (frame.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&frame);
        self.stream.write_all(&out).unwrap();
    }

    /// The next response, or `None` once the broker has closed the connection.
    fn receive(&mut self, api: ApiKey, version: i16) -> Option<ResponseKind> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("{api:?}: {e}"),
        }
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut b = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
        assert_eq!(h.correlation_id, self.correlation_id);
        Some(ResponseKind::decode(api, &mut b, version).unwrap())
    }

    fn call<R: Encodable>(&mut self, api: ApiKey, version: i16, req: &R) -> Option<ResponseKind> {
        self.send(api, version, req);
        self.receive(api, version)
    }

    fn handshake(&mut self, mechanism: &str) -> SaslHandshakeResponse {
        let mut r = SaslHandshakeRequest::default();
        r.mechanism = StrBytes::from_string(mechanism.into());
        match self.call(ApiKey::SaslHandshake, 1, &r) {
            Some(ResponseKind::SaslHandshake(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn authenticate(&mut self, bytes: &[u8]) -> Option<SaslAuthenticateResponse> {
        self.authenticate_at(2, bytes)
    }

    fn authenticate_at(&mut self, version: i16, bytes: &[u8]) -> Option<SaslAuthenticateResponse> {
        let mut r = SaslAuthenticateRequest::default();
        r.auth_bytes = Bytes::copy_from_slice(bytes);
        match self.call(ApiKey::SaslAuthenticate, version, &r) {
            Some(ResponseKind::SaslAuthenticate(r)) => Some(r),
            None => None,
            other => panic!("{other:?}"),
        }
    }

    fn metadata(&mut self) -> Option<MetadataResponse> {
        match self.call(ApiKey::Metadata, 12, &MetadataRequest::default()) {
            Some(ResponseKind::Metadata(r)) => Some(r),
            None => None,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn on_the_wire_nothing_but_the_exchange_before_authentication() {
    let jaas = format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}");
    let port = common::free_port();
    let mport = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &jaas,
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );

    // ApiVersions is answered before SASL (clients ask it first), Metadata closes the
    // connection unanswered.
    let mut w = Wire::open(port);
    let Some(ResponseKind::ApiVersions(v)) =
        w.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
    else {
        panic!("ApiVersions unanswered")
    };
    assert_eq!(v.error_code, 0);
    assert!(w.metadata().is_none(), "Metadata served before SASL");

    // A mechanism that is not enabled: UNSUPPORTED_SASL_MECHANISM with the enabled list.
    let mut w = Wire::open(port);
    let r = w.handshake("SCRAM-SHA-512");
    assert_eq!(r.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let enabled: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(enabled, ["PLAIN", "SCRAM-SHA-256"]);

    // SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then closed.
    let mut w = Wire::open(port);
    let r = w.authenticate(b"\0alice\0alice-secret").unwrap();
    assert_eq!(r.error_code, 34, "ILLEGAL_SASL_STATE");
    assert!(w.metadata().is_none());

    // A wrong password: SASL_AUTHENTICATION_FAILED, then nothing else on that connection.
    let mut w = Wire::open(port);
    assert_eq!(w.handshake("PLAIN").error_code, 0);
    let r = w.authenticate(b"\0alice\0not-her-password").unwrap();
    assert_eq!(r.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(
        !r.error_message
            .as_deref()
            .unwrap_or("")
            .contains("alice-secret"),
        "{r:?}"
    );
    assert!(
        w.metadata().is_none(),
        "served after a failed authentication"
    );

    // Every version clients send (v0: librdkafka before KIP-368 support, older Java
    // clients) authenticates, and the connection is then served.
    for v in [0, 1] {
        let mut w = Wire::open(port);
        assert_eq!(w.handshake("PLAIN").error_code, 0);
        let r = w.authenticate_at(v, b"\0alice\0alice-secret").unwrap();
        assert_eq!(r.error_code, 0, "SaslAuthenticate v{v}: {r:?}");
        assert!(w.metadata().is_some(), "served after SaslAuthenticate v{v}");
    }

    // The right password: authenticated, then everything as usual.
    let mut w = Wire::open(port);
    assert_eq!(w.handshake("PLAIN").error_code, 0);
    let r = w.authenticate(b"\0alice\0alice-secret").unwrap();
    assert_eq!(r.error_code, 0, "{r:?}");
    let m = w.metadata().expect("Metadata after authenticating");
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].port, i32::from(port));
    // A second handshake re-authenticates (KIP-368): as the same user it works, and the
    // connection goes on; as another user it fails and the connection closes.
    assert_eq!(w.handshake("PLAIN").error_code, 0);
    let r = w.authenticate(b"\0alice\0alice-secret").unwrap();
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(
        r.session_lifetime_ms, 0,
        "no connections.max.reauth.ms: no expiry"
    );
    assert!(w.metadata().is_some());
    assert_eq!(w.handshake("PLAIN").error_code, 0);
    let r = w.authenticate(b"\0admin\0admin-secret").unwrap();
    assert_eq!(r.error_code, 58, "another principal on re-authentication");
    assert!(
        w.metadata().is_none(),
        "closed after a failed re-authentication"
    );

    // A client that connects and says nothing is closed once the SASL deadline passes.
    let mut silent = Wire::open(port);
    silent
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let n = silent.stream.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "a silent connection was answered");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a silent connection was kept {:?}",
        started.elapsed()
    );

    let failures = common::Broker::metric(mport, "strata_sasl_authentication_failures");
    assert!(failures >= 2.0, "{failures}");
}

/// librdkafka (the `rdkafka` crate, built without OpenSSL, so PLAIN only: its SCRAM needs
/// OpenSSL) produces with acks=all and consumes over SASL_PLAINTEXT; with a wrong password its
/// produce fails with an authentication error and nothing lands.
#[test]
fn rdkafka_with_plain() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let port = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
            "auto.create.topics.enable=true",
        ],
    );
    let config = |password: &str| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", format!("127.0.0.1:{port}"))
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanisms", "PLAIN")
            .set("sasl.username", "alice")
            .set("sasl.password", password);
        c
    };
    let rt = common::kafka::runtime();
    let producer: FutureProducer = config("alice-secret")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for i in 0..100 {
        let payload = format!("r{i}");
        rt.block_on(producer.send(
            FutureRecord::to("rd-sasl").key("k").payload(&payload),
            Duration::from_secs(20),
        ))
        .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }

    let intruder: FutureProducer = config("wrong")
        .set("message.timeout.ms", "4000")
        .create()
        .unwrap();
    let refused = rt.block_on(
        intruder.send(
            FutureRecord::to("rd-sasl")
                .key("k")
                .payload("must not land"),
            Duration::from_secs(5),
        ),
    );
    let (e, _) = refused.expect_err("a wrong password produced");
    println!("wrong password: {e}");

    // Anything past the 100 would be the intruder's record.
    let got =
        common::kafka::read_exactly(&mut config("alice-secret"), "rd-sasl", "rd-sasl-group", 100);
    let want: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    assert_eq!(got, want);
}

/// ACLs (Kafka's model) from the outside: kafka-python as a super user creates, describes and
/// deletes ACLs; users authenticated with PLAIN may produce, consume, see topics and join
/// groups exactly as their ACLs say (LITERAL and PREFIXED, DENY over ALLOW) and get Kafka's
/// authorization errors otherwise; the ACLs survive a restart.
#[test]
fn kafka_python_with_acls() {
    let port = common::free_port();
    let mport = common::free_port();
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                user_admin=\"admin-secret\" user_alice=\"alice-secret\" user_bob=\"bob-secret\";";
    let mut broker = common::Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}"),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
            "auto.create.topics.enable=false",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    let run = |phase: &str| {
        let stdout = common::python(&[
            common::python_script("kafka_python_acls.py"),
            format!("127.0.0.1:{port}"),
            phase.to_string(),
        ]);
        println!("{stdout}");
        stdout
    };
    let stdout = run("setup");
    assert!(stdout.contains("acls: setup ok"), "{stdout}");
    assert_eq!(stdout.matches("refused").count(), 6, "{stdout}");
    let denials = common::Broker::metric(mport, "strata_authorization_denials");
    assert!(denials >= 6.0, "{denials} denials counted");
    assert!(broker.terminate().success());
    broker.restart();
    let stdout = run("after-restart");
    assert!(stdout.contains("acls: after restart ok"), "{stdout}");
}

/// KIP-368 on the wire: with `connections.max.reauth.ms` the session lifetime is told to the
/// client (SaslAuthenticate v1+); a connection that re-authenticates in time goes on past it,
/// one that does not is closed at its next request.
#[test]
fn sessions_expire_unless_the_client_re_authenticates() {
    let port = common::free_port();
    let mport = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
            "connections.max.reauth.ms=1500",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    let login = |w: &mut Wire| {
        assert_eq!(w.handshake("PLAIN").error_code, 0);
        let r = w.authenticate(b"\0alice\0alice-secret").unwrap();
        assert_eq!(r.error_code, 0);
        r.session_lifetime_ms
    };
    let mut lapsing = Wire::open(port);
    let mut renewing = Wire::open(port);
    assert_eq!(login(&mut lapsing), 1500);
    assert_eq!(login(&mut renewing), 1500);
    assert!(lapsing.metadata().is_some() && renewing.metadata().is_some());
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        login(&mut renewing),
        1500,
        "re-authenticated before the end"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert!(renewing.metadata().is_some(), "a renewed session goes on");
    assert!(lapsing.metadata().is_none(), "an expired session is closed");
    assert_eq!(
        common::Broker::metric(mport, "strata_sasl_reauthentications"),
        1.0
    );
    assert_eq!(
        common::Broker::metric(mport, "strata_sasl_sessions_expired"),
        1.0
    );
}

/// librdkafka re-authenticates by itself (KIP-368) when the broker gives sessions a lifetime:
/// a producer that runs across several lifetimes loses nothing and is never cut off.
#[test]
fn rdkafka_re_authenticates_across_session_lifetimes() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let port = common::free_port();
    let mport = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
            "connections.max.reauth.ms=2000",
            "auto.create.topics.enable=true",
            &format!("metrics.listen=127.0.0.1:{mport}"),
        ],
    );
    let rt = common::kafka::runtime();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let started = std::time::Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(7) {
        rt.block_on(producer.send(
            FutureRecord::to("reauth").key("k").payload("v"),
            Duration::from_secs(20),
        ))
        .unwrap_or_else(|(e, _)| panic!("produce {sent}: {e}"));
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let reauths = common::Broker::metric(mport, "strata_sasl_reauthentications");
    assert!(
        reauths >= 2.0,
        "{reauths} re-authentications over 7 s of 2 s sessions"
    );
    println!("{sent} records, {reauths} re-authentications");
}

/// librdkafka (built with OpenSSL) over SASL_SSL with SCRAM: bob (SCRAM-SHA-512) produces with
/// acks=all, carol (SCRAM-SHA-256) consumes it all back, a wrong password and a mechanism the
/// user has no credential for are refused and produce nothing.
#[test]
fn rdkafka_with_scram_over_sasl_ssl() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let certs = tempfile::tempdir().unwrap();
    write_certs(certs.path());
    let (_broker, _, sasl_ssl) = sasl_broker(certs.path(), common::free_port());
    let ca = certs.path().join("ca.pem");
    let config = |mechanism: &str, user: &str, password: &str| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", format!("127.0.0.1:{sasl_ssl}"))
            .set("security.protocol", "SASL_SSL")
            .set("ssl.ca.location", ca.display().to_string())
            .set("sasl.mechanisms", mechanism)
            .set("sasl.username", user)
            .set("sasl.password", password);
        c
    };
    let rt = common::kafka::runtime();
    let producer: FutureProducer = config("SCRAM-SHA-512", "bob", "bob-secret")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    for i in 0..100 {
        let payload = format!("s{i}");
        rt.block_on(producer.send(
            FutureRecord::to("rd-scram").key("k").payload(&payload),
            Duration::from_secs(20),
        ))
        .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
    for (mechanism, user, password) in [
        ("SCRAM-SHA-512", "bob", "wrong"),
        ("SCRAM-SHA-256", "bob", "bob-secret"),
    ] {
        let intruder: FutureProducer = config(mechanism, user, password)
            .set("message.timeout.ms", "4000")
            .create()
            .unwrap();
        let refused = rt.block_on(
            intruder.send(
                FutureRecord::to("rd-scram")
                    .key("k")
                    .payload("must not land"),
                Duration::from_secs(5),
            ),
        );
        let (e, _) = refused.expect_err("a refused login produced");
        println!("{mechanism} {user}/{password}: {e}");
    }
    let got = common::kafka::read_exactly(
        &mut config("SCRAM-SHA-256", "carol", "carol-secret"),
        "rd-scram",
        "rd-scram-group",
        100,
    );
    let want: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    assert_eq!(got, want);
}
