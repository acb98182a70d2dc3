//! Transactions through the real binary with librdkafka's transactional producer and
//! read_committed consumers: commits and aborts (and what a read_uncommitted consumer sees of
//! them), a transaction left open holding read_committed consumers back, the same after a
//! SIGKILL and restart, consume-transform-produce with `send_offsets_to_transaction` and an
//! aborted round, zombie fencing by a second producer with the same transactional id, and a
//! transaction past its timeout aborted by the coordinator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Broker;
use common::kafka::{create_topic, runtime};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

fn txn_producer(
    bootstrap: &str,
    id: &str,
    extra: &[(&str, &str)],
) -> ThreadedProducer<DefaultProducerContext> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: ThreadedProducer<DefaultProducerContext> = c.create().unwrap();
    p.init_transactions(T).unwrap();
    p
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .map_err(|(e, _)| e)
    .unwrap();
}

fn consumer(bootstrap: &str, group: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()
        .unwrap()
}

/// Reads every partition of `topic` from the start until `quiet` passes with nothing new;
/// returns the values in the order read per partition.
fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    quiet: Duration,
) -> Vec<String> {
    let c = consumer(bootstrap, &format!("reader-{}", rand_suffix()), isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last.elapsed() < quiet && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            last = Instant::now();
        }
    }
    out
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// Committed transactions are seen by read_committed consumers, aborted ones are not (a
/// read_uncommitted consumer sees both); an open transaction holds read_committed consumers
/// back at its first offset, and its records appear once it commits. All of it holds again
/// after a SIGKILL and restart (the aborted transactions and the open one are rebuilt from
/// the log), and a new producer with the open transaction's id aborts it.
#[test]
fn read_committed_sees_commits_and_never_aborts() {
    let rt = runtime();
    let mut b = Broker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&rt, &bs, "orders", 2, 1);
    let p = txn_producer(&bs, "orders-app", &[]);
    let mut committed = Vec::new();
    for (round, commit) in [("c1", true), ("a1", false), ("c2", true), ("a2", false)] {
        p.begin_transaction().unwrap();
        for (i, v) in values(round, 10).iter().enumerate() {
            send(&p, "orders", (i % 2) as i32, v);
        }
        if commit {
            p.commit_transaction(T).unwrap();
            committed.extend(values(round, 10));
        } else {
            p.flush(T).unwrap();
            p.abort_transaction(T).unwrap();
        }
    }
    let quiet = Duration::from_secs(2);
    assert_eq!(
        sorted(read_all(&bs, "orders", 2, "read_committed", quiet)),
        sorted(committed.clone())
    );
    let everything = read_all(&bs, "orders", 2, "read_uncommitted", quiet);
    assert_eq!(
        everything.len(),
        40,
        "read_uncommitted sees aborted records too"
    );

    // An open transaction: its records are written but not visible to read_committed.
    p.begin_transaction().unwrap();
    for v in values("open", 5) {
        send(&p, "orders", 0, &v);
    }
    p.flush(T).unwrap();
    let rc = read_all(&bs, "orders", 2, "read_committed", quiet);
    assert_eq!(
        sorted(rc),
        sorted(committed.clone()),
        "open transaction hidden"
    );
    let ru = read_all(&bs, "orders", 2, "read_uncommitted", quiet);
    assert_eq!(ru.len(), 45);
    drop(p);

    // A SIGKILL with the transaction open: after the restart it is still open (hidden), the
    // aborted ones still aborted.
    b.kill9();
    b.restart();
    let rc = read_all(&bs, "orders", 2, "read_committed", quiet);
    assert_eq!(sorted(rc), sorted(committed.clone()), "after restart");
    // A new producer of the id aborts the open transaction, then commits its own.
    let p2 = txn_producer(&bs, "orders-app", &[]);
    p2.begin_transaction().unwrap();
    for v in values("c3", 5) {
        send(&p2, "orders", 0, &v);
    }
    p2.commit_transaction(T).unwrap();
    committed.extend(values("c3", 5));
    let rc = read_all(&bs, "orders", 2, "read_committed", quiet);
    assert_eq!(sorted(rc), sorted(committed));
}

/// Consume-transform-produce: each round reads from `input` with a read_committed consumer,
/// writes the transformed records to `output` and the consumer's positions to the group in
/// one transaction. A round is aborted halfway and redone from the committed offsets. In the
/// end `output` holds each input record exactly once and the group's offsets are at the end.
#[test]
fn consume_transform_produce_is_exactly_once() {
    let rt = runtime();
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&rt, &bs, "input", 1, 1);
    create_topic(&rt, &bs, "output", 1, 1);
    {
        let plain: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .create()
            .unwrap();
        for v in values("in", 100) {
            send(&plain, "input", 0, &v);
        }
        plain.flush(T).unwrap();
    }
    let c = consumer(&bs, "ctp", "read_committed");
    c.subscribe(&["input"]).unwrap();
    let p = txn_producer(&bs, "ctp-app", &[]);
    let mut done = 0usize;
    let mut rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while done < 100 {
        assert!(Instant::now() < deadline, "processed {done} of 100");
        let mut batch = Vec::new();
        let until = Instant::now() + Duration::from_millis(500);
        while batch.len() < 15 && Instant::now() < until {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                batch.push((
                    m.offset(),
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                ));
            }
        }
        if batch.is_empty() {
            continue;
        }
        rounds += 1;
        p.begin_transaction().unwrap();
        for (_, v) in &batch {
            send(&p, "output", 0, &v.replace("in-", "out-"));
        }
        let next = batch.last().unwrap().0 + 1;
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("input", 0, Offset::Offset(next))
            .unwrap();
        p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap(), T)
            .unwrap();
        if rounds == 3 {
            // A failure halfway: abort, and go back to the group's committed offset. (Flushed
            // first, so the aborted records are in the log: librdkafka purges queued ones.)
            p.flush(T).unwrap();
            p.abort_transaction(T).unwrap();
            let committed = c.committed(T).unwrap();
            let at = committed
                .find_partition("input", 0)
                .map(|e| e.offset())
                .unwrap_or(Offset::Beginning);
            let at = if let Offset::Offset(o) = at {
                Offset::Offset(o)
            } else {
                Offset::Beginning
            };
            c.seek("input", 0, at, T).unwrap();
            continue;
        }
        p.commit_transaction(T).unwrap();
        done += batch.len();
    }
    let out = read_all(&bs, "output", 1, "read_committed", Duration::from_secs(2));
    assert_eq!(out, values("out", 100), "every input record once, in order");
    let all = read_all(&bs, "output", 1, "read_uncommitted", Duration::from_secs(2));
    assert!(
        all.len() > 100,
        "the aborted round's records are in the log: {}",
        all.len()
    );
    // The group's committed offset is the end of the input.
    let fresh = consumer(&bs, "ctp", "read_committed");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("input", 0);
    let committed = fresh.committed_offsets(tpl, T).unwrap();
    assert_eq!(
        committed.find_partition("input", 0).unwrap().offset(),
        Offset::Offset(100)
    );
}

/// A second producer with the same transactional id fences the first: the first's open
/// transaction is aborted, its commit fails as fenced, and nothing it wrote is seen by
/// read_committed consumers.
#[test]
fn a_new_producer_fences_the_zombie() {
    let rt = runtime();
    let b = Broker::start(&[]);
    let bs = b.bootstrap();
    create_topic(&rt, &bs, "payments", 1, 1);
    let zombie = txn_producer(&bs, "payments-app", &[]);
    zombie.begin_transaction().unwrap();
    for v in values("zombie", 5) {
        send(&zombie, "payments", 0, &v);
    }
    zombie.flush(T).unwrap();
    let fresh = txn_producer(&bs, "payments-app", &[]);
    fresh.begin_transaction().unwrap();
    for v in values("fresh", 5) {
        send(&fresh, "payments", 0, &v);
    }
    fresh.commit_transaction(T).unwrap();
    let err = zombie
        .commit_transaction(T)
        .expect_err("the zombie's commit must fail");
    let fatal = matches!(&err, KafkaError::Transaction(e) if e.is_fatal());
    assert!(fatal, "fenced is fatal: {err:?}");
    let rc = read_all(&bs, "payments", 1, "read_committed", Duration::from_secs(2));
    assert_eq!(rc, values("fresh", 5));
}

/// A transaction open longer than `transaction.timeout.ms` is aborted by the coordinator:
/// its records are never seen by read_committed consumers, its producer cannot commit it,
/// and the partition's last stable offset moves on (later commits are read).
#[test]
fn a_transaction_past_its_timeout_is_aborted() {
    let rt = runtime();
    let mport = common::free_port();
    let b = Broker::start(&[
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
        &format!("metrics.listen=127.0.0.1:{mport}"),
    ]);
    let bs = b.bootstrap();
    create_topic(&rt, &bs, "slow", 1, 1);
    let slow = txn_producer(
        &bs,
        "slow-app",
        &[
            ("transaction.timeout.ms", "2000"),
            ("message.timeout.ms", "2000"),
        ],
    );
    slow.begin_transaction().unwrap();
    for v in values("late", 3) {
        send(&slow, "slow", 0, &v);
    }
    slow.flush(T).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        slow.commit_transaction(T).is_err(),
        "the timed-out transaction cannot commit"
    );
    let other = txn_producer(&bs, "other-app", &[]);
    other.begin_transaction().unwrap();
    for v in values("ok", 3) {
        send(&other, "slow", 0, &v);
    }
    other.commit_transaction(T).unwrap();
    let rc = read_all(&bs, "slow", 1, "read_committed", Duration::from_secs(2));
    assert_eq!(rc, values("ok", 3));
    // Operators see it: one timed out (and aborted), one committed.
    let metric = |name| Broker::metric(mport, name);
    assert_eq!(metric("strata_transactions_timed_out_total"), 1.0);
    assert!(metric("strata_transactions_aborted_total") >= 1.0);
    assert!(metric("strata_transactions_committed_total") >= 1.0);
    // The broker refuses a timeout above transaction.max.timeout.ms.
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &bs)
        .set("transactional.id", "too-long")
        .set("transaction.timeout.ms", "2000000");
    let p: ThreadedProducer<DefaultProducerContext> = c.create().unwrap();
    assert!(p.init_transactions(Duration::from_secs(10)).is_err());
}

/// Produce v9 of `records` to `topic`-0 with `transactional_id`; the partition's error code
/// and base offset.
fn produce_raw(
    conn: &mut std::net::TcpStream,
    topic: &str,
    transactional_id: Option<&str>,
    records: bytes::Bytes,
) -> (i16, i64) {
    common::wire::txn::produce(conn, 9, topic, 0, transactional_id, records)
}

/// KIP-890 and the other guards of a partition, over the raw protocol: a transactional batch
/// is appended only inside a transaction its coordinator knows holds the partition (a late
/// batch of an ended transaction, which would hang the last stable offset, is refused with
/// INVALID_TXN_STATE), only with a transactional id, never as a control batch from a client;
/// DescribeProducers shows an open transaction's first offset; read_committed ListOffsets
/// answers the last stable offset.
#[test]
fn a_late_batch_of_an_ended_transaction_is_refused() {
    use kafka_protocol::messages::*;
    let rt = runtime();
    let b = Broker::start(&[]);
    create_topic(&rt, &b.bootstrap(), "guarded", 1, 1);
    let mut conn = common::wire::connect(&b);
    let id = "late-writer";
    let (pid, epoch) = common::wire::txn::init(&mut conn, id);
    // Not added to a transaction: refused.
    let (code, _) = produce_raw(
        &mut conn,
        "guarded",
        Some(id),
        common::wire::txn::batch(pid, epoch, 0, "x"),
    );
    assert_eq!(code, 48, "INVALID_TXN_STATE before AddPartitionsToTxn");
    let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    t.name = TopicName("guarded".to_string().into());
    t.partitions = vec![0];
    let mut add = add_partitions_to_txn_request::AddPartitionsToTxnRequest::default();
    add.v3_and_below_transactional_id = TransactionalId(id.to_string().into());
    add.v3_and_below_producer_id = ProducerId(pid);
    add.v3_and_below_producer_epoch = epoch;
    add.v3_and_below_topics = vec![t];
    let ResponseKind::AddPartitionsToTxn(added) =
        common::wire::call(&mut conn, ApiKey::AddPartitionsToTxn, 3, &add)
    else {
        panic!()
    };
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let (code, base) = produce_raw(
        &mut conn,
        "guarded",
        Some(id),
        common::wire::txn::batch(pid, epoch, 0, "in"),
    );
    assert_eq!(code, 0, "inside the transaction");
    // The open transaction: DescribeProducers shows where it starts; read_committed's latest
    // offset stops there while read_uncommitted's is past it.
    let mut dp_t = describe_producers_request::TopicRequest::default();
    dp_t.name = TopicName("guarded".to_string().into());
    dp_t.partition_indexes = vec![0];
    let mut dp = describe_producers_request::DescribeProducersRequest::default();
    dp.topics = vec![dp_t];
    let ResponseKind::DescribeProducers(d) =
        common::wire::call(&mut conn, ApiKey::DescribeProducers, 0, &dp)
    else {
        panic!()
    };
    let p = &d.topics[0].partitions[0].active_producers[0];
    assert_eq!((p.producer_id.0, p.current_txn_start_offset), (pid, base));
    let latest = |conn: &mut std::net::TcpStream, isolation: i8| {
        let mut lp = list_offsets_request::ListOffsetsPartition::default();
        lp.partition_index = 0;
        lp.timestamp = -1;
        let mut lt = list_offsets_request::ListOffsetsTopic::default();
        lt.name = TopicName("guarded".to_string().into());
        lt.partitions = vec![lp];
        let mut r = list_offsets_request::ListOffsetsRequest::default();
        r.replica_id = BrokerId(-1);
        r.isolation_level = isolation;
        r.topics = vec![lt];
        let ResponseKind::ListOffsets(resp) = common::wire::call(conn, ApiKey::ListOffsets, 7, &r)
        else {
            panic!()
        };
        resp.topics[0].partitions[0].offset
    };
    assert_eq!(
        latest(&mut conn, 1),
        base,
        "read_committed: the last stable offset"
    );
    assert_eq!(
        latest(&mut conn, 0),
        base + 1,
        "read_uncommitted: the high watermark"
    );
    let mut end = end_txn_request::EndTxnRequest::default();
    end.transactional_id = TransactionalId(id.to_string().into());
    end.producer_id = ProducerId(pid);
    end.producer_epoch = epoch;
    end.committed = true;
    let ResponseKind::EndTxn(ended) = common::wire::call(&mut conn, ApiKey::EndTxn, 3, &end) else {
        panic!()
    };
    assert_eq!(ended.error_code, 0);
    // The marker follows in the background; then the partition is stable again.
    // The record and the marker after it: both ends there (two calls, so both must be).
    let end = base + 2;
    common::cluster::wait_for("the commit marker", T, || {
        (latest(&mut conn, 1) == end && latest(&mut conn, 0) == end).then_some(())
    });
    // A late batch of the ended transaction (a retry that lost its way, a zombie thread).
    let (code, _) = produce_raw(
        &mut conn,
        "guarded",
        Some(id),
        common::wire::txn::batch(pid, epoch, 1, "late"),
    );
    assert_eq!(
        code, 48,
        "a late batch is refused, not opening a hanging transaction"
    );
    assert_eq!(
        (latest(&mut conn, 1), latest(&mut conn, 0)),
        (end, end),
        "nothing hangs"
    );
    // A transactional batch without a transactional id, and a marker from a client.
    let (code, _) = produce_raw(
        &mut conn,
        "guarded",
        None,
        common::wire::txn::batch(pid, epoch, 1, "anon"),
    );
    assert_eq!(code, 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
    let marker = {
        use strata_engine::{Offset as O, batch};
        let mut m = batch::build(
            O(0),
            1,
            &[(Some(&[0u8, 0, 0, 1][..]), Some(&[0u8, 0, 0, 0, 0, 0][..]))],
        );
        batch::stamp_producer(&mut m, pid, epoch, -1);
        batch::stamp_transactional(&mut m, true);
        bytes::Bytes::from(m)
    };
    let (code, _) = produce_raw(&mut conn, "guarded", Some(id), marker);
    assert_eq!(
        code, 87,
        "INVALID_RECORD: markers come from coordinators only"
    );

    // An operator aborts a transaction by hand (KIP-664's `kafka-transactions.sh abort`:
    // WriteTxnMarkers to the partition's leader with the producer DescribeProducers shows).
    let ResponseKind::AddPartitionsToTxn(added) =
        common::wire::call(&mut conn, ApiKey::AddPartitionsToTxn, 3, &add)
    else {
        panic!()
    };
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let (code, open_at) = produce_raw(
        &mut conn,
        "guarded",
        Some(id),
        common::wire::txn::batch(pid, epoch, 1, "stuck"),
    );
    assert_eq!(code, 0);
    assert_eq!(
        latest(&mut conn, 1),
        open_at,
        "held at the open transaction"
    );
    let mut t = write_txn_markers_request::WritableTxnMarkerTopic::default();
    t.name = TopicName("guarded".to_string().into());
    t.partition_indexes = vec![0];
    let mut m = write_txn_markers_request::WritableTxnMarker::default();
    m.producer_id = ProducerId(pid);
    m.producer_epoch = epoch;
    m.transaction_result = false;
    m.topics = vec![t];
    let mut abort = write_txn_markers_request::WriteTxnMarkersRequest::default();
    abort.markers = vec![m];
    let ResponseKind::WriteTxnMarkers(aborted) =
        common::wire::call(&mut conn, ApiKey::WriteTxnMarkers, 1, &abort)
    else {
        panic!()
    };
    assert_eq!(aborted.markers[0].topics[0].partitions[0].error_code, 0);
    // Answered once durable: the record and the abort marker are below the end now.
    let end = open_at + 2;
    assert_eq!(
        (latest(&mut conn, 1), latest(&mut conn, 0)),
        (end, end),
        "no longer held"
    );
    let ResponseKind::DescribeProducers(d) =
        common::wire::call(&mut conn, ApiKey::DescribeProducers, 0, &dp)
    else {
        panic!()
    };
    assert_eq!(
        d.topics[0].partitions[0].active_producers[0].current_txn_start_offset,
        -1
    );
    let rc = read_all(
        &b.bootstrap(),
        "guarded",
        1,
        "read_committed",
        Duration::from_secs(2),
    );
    assert_eq!(rc, ["in"], "the aborted record is not read");
}

/// KIP-890 part 2, transaction version 2 as Java's 4.x producer runs it, over the raw
/// protocol: no AddPartitionsToTxn or AddOffsetsToTxn (Produce v12 and TxnOffsetCommit v5 add
/// the partitions), EndTxn v5 bumps the epoch and answers it, a retry of that EndTxn gets
/// the same answer, and a late batch of an ended transaction is fenced even once the next
/// transaction has opened in its partition (which transaction version 1 cannot tell).
#[test]
fn transaction_version_2_bumps_the_epoch_per_transaction() {
    use common::wire::txn;
    let rt = runtime();
    let b = Broker::start(&[]);
    create_topic(&rt, &b.bootstrap(), "tv2", 1, 1);
    let mut conn = common::wire::connect(&b);
    let (id, group) = ("tv2-writer", "tv2-group");
    let (pid, e0) = txn::init(&mut conn, id);

    // Transaction 1: a record and the group's offset, committed.
    let (code, base) = txn::produce(
        &mut conn,
        12,
        "tv2",
        0,
        Some(id),
        txn::batch(pid, e0, 0, "one"),
    );
    assert_eq!(code, 0, "Produce v12 adds the partition itself");
    let code = txn::offset_commit(&mut conn, 5, id, group, (pid, e0), "tv2", 42);
    assert_eq!(
        code, 0,
        "TxnOffsetCommit v5 adds the group's partition itself"
    );
    assert_eq!(
        txn::committed(&mut conn, group, "tv2").0,
        88,
        "UNSTABLE_OFFSET_COMMIT while the transaction is open"
    );
    let (code, next) = txn::end(&mut conn, 5, id, (pid, e0), true);
    assert_eq!(
        (code, next),
        (0, (pid, e0 + 1)),
        "EndTxn v5 bumps the epoch"
    );
    let (code, again) = common::cluster::wait_for("the retried EndTxn", T, || {
        let (code, again) = txn::end(&mut conn, 5, id, (pid, e0), true);
        (code != 51).then_some((code, again))
    });
    assert_eq!((code, again), (0, next), "a retry is answered as the first");
    let (code, _) = txn::end(&mut conn, 5, id, (pid, e0), false);
    assert_eq!(
        code, 48,
        "INVALID_TXN_STATE: the other outcome for the same transaction"
    );
    common::cluster::wait_for("the committed offset", T, || {
        (txn::committed(&mut conn, group, "tv2") == (0, 42)).then_some(())
    });

    // Transaction 2 at the bumped epoch opens in the same partition; a late batch of
    // transaction 1 (old epoch) now finds the producer's transaction open there, and the
    // partition fences it by its epoch instead of taking it into transaction 2.
    let e1 = next.1;
    let (code, _) = txn::produce(
        &mut conn,
        12,
        "tv2",
        0,
        Some(id),
        txn::batch(pid, e1, 0, "two"),
    );
    assert_eq!(code, 0);
    let (code, _) = txn::produce(
        &mut conn,
        12,
        "tv2",
        0,
        Some(id),
        txn::batch(pid, e0, 1, "late"),
    );
    assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH for the late batch");
    let (code, next) = txn::end(&mut conn, 5, id, (pid, e1), false);
    assert_eq!((code, next), (0, (pid, e1 + 1)), "an abort bumps it too");
    // With nothing open, an abort only fences (a client does so after an error); while the
    // last abort's markers are written it is CONCURRENT_TRANSACTIONS, which clients retry.
    let after = next;
    let (code, next) = common::cluster::wait_for("the fencing abort", T, || {
        let (code, next) = txn::end(&mut conn, 5, id, after, false);
        (code != 51).then_some((code, next))
    });
    assert_eq!((code, next), (0, (pid, e1 + 2)));
    // The older epochs are fenced at the coordinator as well.
    let (code, _) = txn::produce(
        &mut conn,
        12,
        "tv2",
        0,
        Some(id),
        txn::batch(pid, e1, 1, "old"),
    );
    assert_eq!(code, 47);

    let rc = read_all(
        &b.bootstrap(),
        "tv2",
        1,
        "read_committed",
        Duration::from_secs(2),
    );
    assert_eq!(
        rc,
        ["one"],
        "transaction 1 whole, nothing of the aborted one or the late batch"
    );
    let ru = read_all(
        &b.bootstrap(),
        "tv2",
        1,
        "read_uncommitted",
        Duration::from_secs(2),
    );
    assert_eq!(ru, ["one", "two"], "the late batches never reached the log");
    // The records and markers are all below the last stable offset: nothing hangs.
    let (_, _, end) = common::wire::list_offsets(&b, "tv2", [0], -1)[0];
    assert_eq!(end, base + 4, "one, its marker, two, its abort marker");
}
