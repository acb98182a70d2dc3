//! The real `strata` binary driven by librdkafka (the `rdkafka` crate), as applications use it:
//! every acks level and compression codec with keys and headers, fetch from inside a batch, topic
//! administration, a three-member consumer group that rebalances, committed offsets that survive
//! a SIGKILL of the broker, and an idempotent producer whose connection keeps being cut (so it
//! retries) storing every message exactly once; a compacted topic refusing a record without a key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::Broker;
use common::kafka::{admin, runtime};
use rdkafka::admin::{AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

fn create_topic(rt: &tokio::runtime::Runtime, bootstrap: &str, name: &str, partitions: i32) {
    let a = admin(bootstrap);
    let res = rt
        .block_on(a.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

/// (key, value, headers) of a consumed message.
type Got = (Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>, i32, i64);

/// Polls until `n` messages arrived (or panics after `timeout`).
fn consume_n(c: &BaseConsumer, n: usize, timeout: Duration) -> Vec<Got> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "consumed {} of {n}", out.len());
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                    m.partition(),
                    m.offset(),
                ));
            }
            // Connection losses are reported but recovered from by the client.
            Some(Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::AllBrokersDown
                | rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure,
            ))) => {}
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// The bytes of partition 0 of `topic`'s first segment file, as the broker stored them.
fn segment_bytes(broker: &Broker, topic: &str) -> Vec<u8> {
    let path = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    std::fs::read(&path).unwrap()
}

/// Headers of the batches stored in partition 0 of `topic`, read from its first segment file.
fn stored_batches(broker: &Broker, topic: &str) -> Vec<strata_engine::batch::BatchHeader> {
    let bytes = segment_bytes(broker, topic);
    strata_engine::batch::validate_all(
        &bytes,
        strata_engine::batch::Origin::Replication,
        usize::MAX,
    )
    .unwrap()
    .into_iter()
    .map(|(_, h)| h)
    .collect()
}

/// Every acks level and every compression codec: keys, values and headers come back exactly,
/// in order, and compressed batches are stored as sent.
#[test]
fn produce_and_consume_with_each_acks_and_codec() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    let mut case = 0;
    for acks in ["0", "1", "all"] {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            case += 1;
            let topic = format!("codec-{case}");
            create_topic(&rt, &b, &topic, 1);
            let p = producer(
                &b,
                &[
                    ("acks", acks),
                    ("compression.type", codec),
                    ("linger.ms", "5"),
                ],
            );
            let n = 50;
            rt.block_on(async {
                let mut futs = Vec::new();
                for i in 0..n {
                    let key = format!("key-{i}");
                    let value = format!("{codec}-{acks}-value-{i}-{}", "x".repeat(i % 7 * 10));
                    let headers = OwnedHeaders::new().insert(Header {
                        key: "h",
                        value: Some(format!("hv{i}").as_bytes()),
                    });
                    futs.push(
                        p.send_result(
                            FutureRecord::to(&topic)
                                .key(&key)
                                .payload(&value)
                                .headers(headers),
                        )
                        .unwrap(),
                    );
                }
                for f in futs {
                    f.await.unwrap().unwrap();
                }
            });
            let c = consumer(&b, &format!("g-{case}"), &[]);
            c.subscribe(&[&topic]).unwrap();
            let got = consume_n(&c, n, Duration::from_secs(30));
            // Consumed, hence written (also for acks=0). The broker stores the producer's batches untouched, compressed as they were sent.
            let expected = match codec {
                "none" => strata_engine::batch::Compression::None,
                "gzip" => strata_engine::batch::Compression::Gzip,
                "snappy" => strata_engine::batch::Compression::Snappy,
                "lz4" => strata_engine::batch::Compression::Lz4,
                _ => strata_engine::batch::Compression::Zstd,
            };
            let stored = stored_batches(&broker, &topic);
            // (librdkafka sends a batch uncompressed when compressing would not shrink it.)
            use strata_engine::batch::Compression;
            assert!(
                stored
                    .iter()
                    .all(|h| h.compression() == expected || h.compression() == Compression::None),
                "acks={acks} codec={codec}: {stored:?}"
            );
            assert!(
                stored.iter().any(|h| h.compression() == expected),
                "acks={acks} codec={codec}: {stored:?}"
            );
            assert_eq!(
                stored
                    .iter()
                    .map(|h| i64::from(h.records_count))
                    .sum::<i64>(),
                n as i64
            );
            // The engine's record reader decodes librdkafka's compression of each codec.
            let decoded: Vec<strata_engine::StoredRecord> = strata_engine::RecordReader::new(
                segment_bytes(&broker, &topic),
                Default::default(),
            )
            .collect::<Result<_, _>>()
            .unwrap();
            assert_eq!(decoded.len(), n, "acks={acks} codec={codec}");
            for (r, (key, value, headers, _, offset)) in decoded.iter().zip(&got) {
                assert_eq!(r.offset.0, *offset);
                assert_eq!(r.key.as_deref(), key.as_deref());
                assert_eq!(r.value.as_deref(), Some(value.as_slice()));
                let h: Vec<(String, Vec<u8>)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.clone(),
                            h.value.as_deref().unwrap_or_default().to_vec(),
                        )
                    })
                    .collect();
                assert_eq!(&h, headers);
            }
            for (i, (key, value, headers, _, offset)) in got.iter().enumerate() {
                assert_eq!(*offset, i as i64, "acks={acks} codec={codec}");
                assert_eq!(key.as_deref(), Some(format!("key-{i}").as_bytes()));
                assert_eq!(
                    value,
                    format!("{codec}-{acks}-value-{i}-{}", "x".repeat(i % 7 * 10)).as_bytes()
                );
                assert_eq!(
                    headers,
                    &vec![("h".to_string(), format!("hv{i}").into_bytes())]
                );
            }
        }
    }
}

/// Batches built by the engine's `BatchBuilder` with each codec, sent as a producer's raw
/// Produce request, are read by librdkafka with the same keys, values and headers: the
/// builder's gzip, snappy (Xerial framing), lz4 (frame) and zstd are Kafka's.
#[test]
fn engine_built_batches_of_each_codec_are_read_by_librdkafka() {
    use strata_engine::{BatchBuilder, Compression, Record};
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    for codec in Compression::ALL {
        let topic = format!("built-{codec}");
        create_topic(&rt, &b, &topic, 1);
        let value = |i: usize| format!("{codec} value {i} {}", "z".repeat(i * 37));
        let mut conn = common::wire::connect(&broker);
        for round in 0..2 {
            let batch = BatchBuilder::new()
                .compression(codec)
                .records((round * 10..round * 10 + 10).map(|i| {
                    Record::new(value(i))
                        .key(format!("key-{i}"))
                        .header("n", i.to_string())
                }))
                .build()
                .unwrap();
            let req = common::wire::produce(&topic, vec![(0, batch.freeze())]);
            let resp = common::wire::call(
                &mut conn,
                kafka_protocol::messages::ApiKey::Produce,
                7,
                &req,
            );
            let kafka_protocol::messages::ResponseKind::Produce(p) = resp else {
                panic!("{resp:?}")
            };
            let part = &p.responses[0].partition_responses[0];
            assert_eq!(
                (part.error_code, part.base_offset),
                (0, round as i64 * 10),
                "{codec}"
            );
        }
        assert!(
            stored_batches(&broker, &topic)
                .iter()
                .all(|h| h.compression() == codec)
        );
        let c = consumer(&b, &format!("g-{topic}"), &[]);
        c.subscribe(&[&topic]).unwrap();
        let got = consume_n(&c, 20, Duration::from_secs(30));
        for (i, (key, v, headers, _, offset)) in got.iter().enumerate() {
            assert_eq!(*offset, i as i64, "{codec}");
            assert_eq!(
                key.as_deref(),
                Some(format!("key-{i}").as_bytes()),
                "{codec}"
            );
            assert_eq!(v, value(i).as_bytes(), "{codec}");
            assert_eq!(
                headers,
                &vec![("n".to_string(), i.to_string().into_bytes())]
            );
        }
    }
}

/// A consumer assigned an offset in the middle of a batch starts exactly there.
#[test]
fn fetch_from_an_offset_inside_a_batch() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    create_topic(&rt, &b, "inside", 1);
    // One batch of 10 records: a long linger and one flush.
    let p = producer(&b, &[("linger.ms", "200"), ("batch.num.messages", "1000")]);
    rt.block_on(async {
        let futs: Vec<_> = (0..10)
            .map(|i| {
                p.send_result(FutureRecord::<(), _>::to("inside").payload(&format!("m{i}")))
                    .unwrap()
            })
            .collect();
        for f in futs {
            f.await.unwrap().unwrap();
        }
    });
    // The ten records really form one batch on disk, so offset 6 lies inside it.
    let stored = stored_batches(&broker, "inside");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].records_count, 10);
    let c = consumer(&b, "inside-g", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("inside", 0, Offset::Offset(6))
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = consume_n(&c, 4, Duration::from_secs(20));
    let offsets: Vec<i64> = got.iter().map(|g| g.4).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    assert_eq!(got[0].1, b"m6");
}

/// Create, describe (configs) and delete topics through the admin API.
#[test]
fn admin_create_describe_delete() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let b = broker.bootstrap();
    let rt = runtime();
    let a = admin(&b);
    let opts = AdminOptions::new();
    let topic =
        NewTopic::new("admin-t", 4, TopicReplication::Fixed(1)).set("retention.ms", "123456");
    let res = rt.block_on(a.create_topics(&[topic], &opts)).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    // Creating it again fails with TOPIC_ALREADY_EXISTS.
    let again = rt
        .block_on(a.create_topics(
            &[NewTopic::new("admin-t", 4, TopicReplication::Fixed(1))],
            &opts,
        ))
        .unwrap();
    assert!(again[0].is_err());
    let md = a
        .inner()
        .fetch_metadata(Some("admin-t"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);
    let configs = rt
        .block_on(a.describe_configs(&[ResourceSpecifier::Topic("admin-t")], &opts))
        .unwrap();
    let resource = configs[0].as_ref().unwrap();
    let retention = resource
        .entries
        .iter()
        .find(|e| e.name == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("123456"));
    let del = rt.block_on(a.delete_topics(&["admin-t"], &opts)).unwrap();
    assert!(del[0].is_ok(), "{del:?}");
    let md = a
        .inner()
        .fetch_metadata(Some("admin-t"), Duration::from_secs(5))
        .unwrap();
    assert!(md.topics()[0].error().is_some(), "deleted topic is unknown");

    // Manual replica assignments: this broker (node 1) only.
    let on_me: &[&[i32]] = &[&[1], &[1]];
    let res = rt
        .block_on(a.create_topics(
            &[NewTopic::new(
                "admin-placed",
                2,
                TopicReplication::Variable(on_me),
            )],
            &opts,
        ))
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let elsewhere: &[&[i32]] = &[&[2]];
    let res = rt
        .block_on(a.create_topics(
            &[NewTopic::new(
                "admin-misplaced",
                1,
                TopicReplication::Variable(elsewhere),
            )],
            &opts,
        ))
        .unwrap();
    assert!(
        matches!(
            &res[0],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicaAssignment
            ))
        ),
        "{res:?}"
    );
    let grow: &[&[i32]] = &[&[1]];
    let res = rt
        .block_on(a.create_partitions(
            &[rdkafka::admin::NewPartitions::new("admin-placed", 3).assign(grow)],
            &opts,
        ))
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let md = a
        .inner()
        .fetch_metadata(Some("admin-placed"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
}

fn assignment_sizes(cs: &[&BaseConsumer]) -> Vec<usize> {
    cs.iter()
        .map(|c| c.assignment().map(|a| a.count()).unwrap_or(0))
        .collect()
}

/// Three consumers in one group split six partitions; when one leaves, the other two take over
/// all six.
#[test]
fn consumer_group_rebalances_when_a_member_leaves() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    create_topic(&rt, &b, "grp", 6);
    let c1 = consumer(&b, "three", &[]);
    let c2 = consumer(&b, "three", &[]);
    let c3 = consumer(&b, "three", &[]);
    for c in [&c1, &c2, &c3] {
        c.subscribe(&["grp"]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in [&c1, &c2, &c3] {
            let _ = c.poll(Duration::from_millis(50));
        }
        let sizes = assignment_sizes(&[&c1, &c2, &c3]);
        if sizes.iter().sum::<usize>() == 6 && sizes.iter().all(|s| *s == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three members never got two partitions each: {sizes:?}"
        );
    }
    c3.unsubscribe();
    drop(c3);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in [&c1, &c2] {
            let _ = c.poll(Duration::from_millis(50));
        }
        let sizes = assignment_sizes(&[&c1, &c2]);
        if sizes.iter().sum::<usize>() == 6 && sizes.iter().all(|s| *s == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "two members never took over: {sizes:?}"
        );
    }
}

/// Commit, SIGKILL the broker, restart it: a new consumer of the group resumes exactly at the
/// committed offset, and the commit's metadata survives too.
#[test]
fn committed_offsets_survive_sigkill() {
    let mut broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    create_topic(&rt, &b, "commits", 1);
    let p = producer(&b, &[("acks", "all")]);
    rt.block_on(async {
        for i in 0..20 {
            p.send(
                FutureRecord::<(), _>::to("commits").payload(&format!("c{i}")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        }
    });
    drop(p);
    {
        let c = consumer(&b, "durable-group", &[]);
        c.subscribe(&["commits"]).unwrap();
        let got = consume_n(&c, 12, Duration::from_secs(30));
        assert_eq!(got[11].4, 11);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("commits", 0, Offset::Offset(12))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    broker.kill9();
    broker.restart();
    let c = consumer(&b, "durable-group", &[]);
    c.subscribe(&["commits"]).unwrap();
    let got = consume_n(&c, 8, Duration::from_secs(30));
    let offsets: Vec<i64> = got.iter().map(|g| g.4).collect();
    assert_eq!(offsets, (12..20).collect::<Vec<_>>());
    assert_eq!(got[0].1, b"c12");
}

/// A TCP proxy that loses responses: on every `every`-th Produce request it stops forwarding responses, forwards the request, waits until the broker has
/// handled it, and closes both sides. The producer never hears back and must retry a batch that
/// is already stored.
fn response_dropping_proxy(rt: &tokio::runtime::Runtime, target: String, every: u32) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let produce_requests = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    rt.spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            let produce_requests = produce_requests.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut client_rx, mut client_tx) = inbound.into_split();
                let (mut broker_rx, mut broker_tx) = outbound.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut broker_rx, &mut client_tx).await;
                });
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = match client_rx.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    // A chunk that starts a Produce request (API key 0 after the size).
                    let produce = n > 300 && buf[4..6] == [0, 0];
                    if produce
                        && (produce_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
                            .is_multiple_of(every)
                    {
                        back.abort();
                        let _ = broker_tx.write_all(&buf[..n]).await;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                    if broker_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                back.abort();
            });
        }
    });
    port
}

/// An idempotent producer whose responses keep getting lost retries batches the broker already
/// stored; the broker's sequence checks store each message exactly once, in order.
#[test]
fn idempotent_producer_retries_store_no_duplicates() {
    let rt = runtime();
    let broker_port = common::free_port();
    let proxy_port = response_dropping_proxy(&rt, format!("127.0.0.1:{broker_port}"), 4);
    // Clients learn the proxy's address from Metadata, so every connection goes through it.
    let advertised = format!("advertised.listeners=PLAINTEXT://127.0.0.1:{proxy_port}");
    let metrics_port = common::free_port();
    let metrics = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let _broker = Broker::start_on(broker_port, &[&advertised, &metrics]);
    let bootstrap = format!("127.0.0.1:{proxy_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = admin(&bootstrap);
        let res = rt.block_on(a.create_topics(
            &[NewTopic::new("idem", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ));
        if matches!(&res, Ok(r) if r[0].is_ok() || matches!(&r[0], Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "could not create the topic: {res:?}"
        );
    }
    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "2"),
            ("message.timeout.ms", "120000"),
        ],
    );
    let n = 3000;
    let started = Instant::now();
    rt.block_on(async {
        let mut futs = Vec::new();
        for i in 0..n {
            futs.push(
                p.send_result(FutureRecord::<(), _>::to("idem").payload(&i.to_string()))
                    .unwrap(),
            );
            if i % 100 == 99 {
                // Spread the sends over several connection lifetimes.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
        for f in futs {
            f.await.unwrap().expect("delivered");
        }
    });
    let _ = started;
    let c = consumer(&bootstrap, "idem-check", &[]);
    c.subscribe(&["idem"]).unwrap();
    let got = consume_n(&c, n, Duration::from_secs(60));
    let values: Vec<String> = got
        .iter()
        .map(|g| String::from_utf8(g.1.clone()).unwrap())
        .collect();
    let unique: HashSet<&String> = values.iter().collect();
    assert_eq!(unique.len(), n, "no duplicates");
    assert_eq!(
        values,
        (0..n).map(|i| i.to_string()).collect::<Vec<_>>(),
        "in order"
    );
    // And nothing beyond: the partition ends at n.
    let (_, high) = c
        .fetch_watermarks("idem", 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!(high, n as i64);
    // The cuts really made the producer resend batches the broker already had.
    let duplicates = Broker::metric(metrics_port, "strata_duplicate_batches_total");
    assert!(
        duplicates >= 1.0,
        "no retried batch reached the broker ({duplicates}); the test proved nothing"
    );
}

/// A compacted topic refuses a record without a key (it could never be compacted): the send
/// fails with INVALID_RECORD (KIP-467's record errors name it), keyed records go on, and
/// nothing of the refused batch is stored.
#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    let broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    let a = admin(&b);
    let topic =
        NewTopic::new("compacted", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let res = rt
        .block_on(a.create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    let p = producer(&b, &[("acks", "all"), ("linger.ms", "0")]);
    rt.block_on(async {
        p.send(
            FutureRecord::to("compacted").key("k1").payload("v1"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let refused = p
            .send(
                FutureRecord::<(), _>::to("compacted").payload("no key"),
                Duration::from_secs(10),
            )
            .await
            .unwrap_err();
        assert_eq!(
            refused.0.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::InvalidRecord),
            "{refused:?}"
        );
        p.send(
            FutureRecord::to("compacted").key("k2").payload("v2"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    });
    let c = consumer(&b, "compacted-reader", &[]);
    c.subscribe(&["compacted"]).unwrap();
    let got = consume_n(&c, 2, Duration::from_secs(30));
    let values: Vec<&[u8]> = got.iter().map(|g| g.1.as_slice()).collect();
    assert_eq!(values, vec![&b"v1"[..], &b"v2"[..]]);
    assert_eq!(
        (got[0].4, got[1].4),
        (0, 1),
        "nothing of the refused batch was stored"
    );
}
