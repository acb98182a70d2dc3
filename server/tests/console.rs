//! The web console in a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/deps) loads every page of a 3-node cluster's console and the test reads what it
//! rendered: a healthy cluster, a topic's partitions, a lagging group's lag, and a SIGKILLed
//! broker shown down (with the event) within seconds. Screenshots of every page are saved in
//! `target/tmp/console/`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::{Cluster, Layout, wait_for};
use common::free_port;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

/// Runs headless Chromium on `url` with `args`; its standard output.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("chromium (Debian's package; scripts/deps installs it)");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page at `url` as the browser rendered it.
fn dom(url: &str) -> String {
    chromium(url, &["--dump-dom"])
}

/// Saves a screenshot of `url` to `path` and checks it is a PNG.
fn screenshot(url: &str, path: &Path) {
    chromium(url, &[&format!("--screenshot={}", path.display())]);
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        path.display()
    );
}

/// The element with `id` in `html`, up to its closing tag (`tr`, `table`, `div`, ...).
fn element<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind('<')?;
    let tag: String = html[start + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let end = html[start..].find(&format!("</{tag}>"))?;
    Some(&html[start..start + end])
}

/// A plain HTTP GET: status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn strata(bootstrap: &str, args: &[&str], stdin: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "strata {args:?}");
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_console_shows_health_topics_lag_and_a_killed_broker_in_a_browser() {
    let port = free_port();
    let mut c = Cluster::start(Layout {
        brokers: 3,
        // With STRATA_TEST_SECURE_LINKS (CI runs this test so too), the console reaches the
        // cluster over the mutual-TLS inter-broker listener with its node's certificate.
        first_node: vec![
            format!("console.listen=127.0.0.1:{port}"),
            "console.poll.interval.ms=500".into(),
        ],
        ..Layout::default()
    });
    let bs = c.bootstrap();
    strata(
        &bs,
        &["topic", "create", "orders", "-p", "3", "-r", "3"],
        "",
    );
    let records: String = (0..1000).map(|i| format!("order-{i}\n")).collect();
    strata(&bs, &["topic", "produce", "orders"], &records);
    // A group that read 100 of the 1000 records and stopped: 900 behind.
    {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("group.id", "lagging")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&["orders"]).unwrap();
        let mut n = 0;
        wait_for("100 records", Duration::from_secs(30), || {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m.unwrap();
                n += 1;
            }
            (n >= 100).then_some(())
        });
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let base = format!("http://127.0.0.1:{port}");
    let shots = shots_dir();

    // Overview: healthy, three brokers up.
    let html = wait_for("a healthy overview", Duration::from_secs(30), || {
        let html = dom(&format!("{base}/"));
        (element(&html, "health")?.contains("Healthy.")
            && element(&html, "brokers-up")? == r#"<b id="brokers-up">3/3"#)
            .then_some(html)
    });
    for id in 1..=3 {
        let row = element(&html, &format!("broker-{id}")).unwrap();
        assert!(row.contains(">up<"), "{row}");
    }
    screenshot(&format!("{base}/"), &shots.join("overview.png"));
    assert!(element(&dom(&format!("{base}/partitions")), "no-problems").is_some());

    // Topics, and one topic's partitions with leaders and end offsets summing to 1000.
    let html = dom(&format!("{base}/topics"));
    let row = element(&html, "topic-orders").unwrap();
    assert!(row.contains("1000"), "{row}");
    screenshot(&format!("{base}/topics"), &shots.join("topics.png"));
    let html = dom(&format!("{base}/topics/orders"));
    let table = element(&html, "partitions").unwrap();
    assert_eq!(
        table.matches("<tr").count(),
        4,
        "header and 3 partitions: {table}"
    );
    screenshot(&format!("{base}/topics/orders"), &shots.join("topic.png"));

    // The lagging group shows its lag, on the list and on its page.
    let html = wait_for("the group's lag", Duration::from_secs(20), || {
        let html = dom(&format!("{base}/groups"));
        element(&html, "group-lagging")?
            .contains(">900<")
            .then_some(html)
    });
    assert!(element(&html, "group-lagging").unwrap().contains("Empty"));
    screenshot(&format!("{base}/groups"), &shots.join("groups.png"));
    let html = dom(&format!("{base}/groups/lagging"));
    assert!(element(&html, "total-lag").unwrap().contains("900"));
    screenshot(&format!("{base}/groups/lagging"), &shots.join("group.png"));

    // The JSON API says the same.
    let (status, body) = get(port, "/api/health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(port, "/api/groups/lagging");
    assert_eq!(status, 200);
    let g: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(g["total_lag"], 900);

    // A broker killed: shown down within seconds, with the event, and the API turns 503.
    c.broker(3).kill9();
    let killed = std::time::Instant::now();
    let html = wait_for("broker 3 shown down", Duration::from_secs(15), || {
        let html = dom(&format!("{base}/"));
        element(&html, "broker-3")?.contains("DOWN").then_some(html)
    });
    let seen_after = killed.elapsed();
    assert!(
        element(&html, "health")
            .unwrap()
            .contains("brokers down: 3")
    );
    assert!(element(&html, "brokers-up").unwrap().contains("2/3"));
    assert!(
        element(&html, "groups-count").unwrap().ends_with(">1"),
        "the group is still listed while its coordinator may have moved"
    );
    assert!(
        element(&html, "events")
            .unwrap()
            .contains("broker 3 is down"),
        "the event is listed"
    );
    screenshot(&format!("{base}/"), &shots.join("overview-broker-down.png"));
    // Every affected partition on one page: all three of orders' lost a replica.
    let html = dom(&format!("{base}/partitions"));
    let table = element(&html, "problem-partitions").unwrap();
    assert_eq!(
        table.matches("<a href=\"/topics/orders\">").count(),
        3,
        "{table}"
    );
    assert!(table.contains("3 down"));
    screenshot(&format!("{base}/partitions"), &shots.join("partitions.png"));
    screenshot(&format!("{base}/events"), &shots.join("events.png"));
    let (status, body) = get(port, "/api/health");
    assert_eq!(status, 503, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["brokers_down"], serde_json::json!([3]));
    eprintln!(
        "broker 3 shown down {:.1} s after SIGKILL; screenshots in {}",
        seen_after.as_secs_f64(),
        shots.display()
    );

    // Back: up again, and the events say so.
    c.broker(3).restart();
    wait_for("broker 3 shown up again", Duration::from_secs(30), || {
        let html = dom(&format!("{base}/"));
        (element(&html, "broker-3")?.contains(">up<") && html.contains("broker 3 is back up"))
            .then_some(())
    });
}

#[test]
fn the_console_serves_https_with_the_brokers_certificate() {
    use common::certs;
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::ca("strata console test CA");
    let server = certs::leaf(
        &ca,
        "strata-broker",
        &["127.0.0.1", "localhost"],
        &[certs::Purpose::ServerAuth],
    );
    let keystore = dir.path().join("broker.pem");
    std::fs::write(&keystore, certs::keystore(&server)).unwrap();
    let port = free_port();
    let _b = common::Broker::start(&[
        &format!("console.listen=127.0.0.1:{port}"),
        "console.ssl.enabled=true",
        &format!("ssl.keystore.location={}", keystore.display()),
        "console.poll.interval.ms=500",
    ]);
    // The page comes over TLS (the browser told to accept a certificate it cannot verify)...
    let html = wait_for("the console over HTTPS", Duration::from_secs(20), || {
        let html = chromium(
            &format!("https://127.0.0.1:{port}/"),
            &["--dump-dom", "--ignore-certificate-errors"],
        );
        element(&html, "health")?
            .contains("Healthy.")
            .then_some(html)
    });
    assert!(element(&html, "brokers-up").unwrap().ends_with(">1/1"));
    // ...with the broker's certificate, which a client trusting the CA verifies (Python's ssl).
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let script = format!(
        "import ssl, urllib.request\n\
         ctx = ssl.create_default_context(cafile={:?})\n\
         r = urllib.request.urlopen('https://127.0.0.1:{port}/api/health', context=ctx)\n\
         print(r.status, r.read().decode())",
        ca_file.display().to_string()
    );
    let out = common::python(&["-c".to_string(), script]);
    assert!(
        out.starts_with("200") && out.contains("\"healthy\": true"),
        "{out}"
    );
    // ...and plain HTTP gets no page.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    assert!(!String::from_utf8_lossy(&text).contains("HTTP/1.1 200"));
}
