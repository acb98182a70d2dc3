//! Transactions on a three-broker cluster under SIGKILL: a librdkafka transactional producer
//! writes one record to each of three replicated partitions per transaction while the
//! transaction coordinator, and then the leader of one of the partitions, are killed and
//! restarted. A read_committed consumer must then see every transaction whole or not at all:
//! all three records of each acknowledged commit, none of an aborted one, none twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Layout};
use common::history::{create_topic, wait_isr};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "ledger";
const PARTITIONS: i32 = 3;
const T: Duration = Duration::from_secs(30);

/// What the producer knows of a transaction's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// `commit_transaction` returned Ok.
    Committed,
    /// `abort_transaction` returned Ok.
    Aborted,
    /// Neither is known (an error, a producer replaced): either is allowed.
    Unknown,
}

fn new_producer(bootstrap: &str) -> Option<ThreadedProducer<DefaultProducerContext>> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", "ledger-writer")
        .set("transaction.timeout.ms", "20000")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    p.init_transactions(T).ok().map(|()| p)
}

/// One transaction `n`: a record per partition, then commit (or abort every fifth).
fn run_one(p: &ThreadedProducer<DefaultProducerContext>, n: u64) -> Result<Outcome, KafkaError> {
    p.begin_transaction()?;
    for part in 0..PARTITIONS {
        let value = format!("t{n}-p{part}");
        p.send(
            BaseRecord::<(), str>::to(TOPIC)
                .partition(part)
                .payload(&value),
        )
        .map_err(|(e, _)| e)?;
    }
    if n % 5 == 4 {
        p.abort_transaction(T)?;
        return Ok(Outcome::Aborted);
    }
    p.commit_transaction(T)?;
    Ok(Outcome::Committed)
}

fn writer(bootstrap: String, stop: Arc<AtomicBool>) -> BTreeMap<u64, Outcome> {
    let mut outcomes = BTreeMap::new();
    let mut producer = None;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Some(p) = producer.as_ref() else {
            producer = new_producer(&bootstrap);
            if producer.is_none() {
                std::thread::sleep(Duration::from_millis(200));
            }
            continue;
        };
        let outcome = match run_one(p, n) {
            Ok(o) => o,
            Err(e) => {
                let abortable = matches!(&e, KafkaError::Transaction(t) if t.txn_requires_abort());
                if abortable && p.abort_transaction(T).is_ok() {
                    Outcome::Aborted
                } else {
                    // Fatal, or the abort failed too: a new producer (its InitProducerId
                    // aborts whatever this one left open).
                    producer = None;
                    Outcome::Unknown
                }
            }
        };
        eprintln!(
            "{:?} transaction {n}: {outcome:?}",
            std::time::SystemTime::now()
        );
        outcomes.insert(n, outcome);
        n += 1;
    }
    outcomes
}

fn read_committed(bootstrap: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ledger-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            last = Instant::now();
        }
    }
    out
}

#[test]
fn transactions_stay_whole_when_the_coordinator_and_a_leader_are_killed() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["transaction.state.log.num.partitions=1".into()],
        ..Default::default()
    });
    c.wait_live(3);
    let bs = c.bootstrap();
    create_topic(&bs, TOPIC, PARTITIONS, 3);
    for p in 0..PARTITIONS {
        wait_isr(&bs, TOPIC, p, 3);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (bs, stop) = (bs.clone(), stop.clone());
        std::thread::spawn(move || writer(bs, stop))
    };
    std::thread::sleep(Duration::from_secs(4));
    // The coordinator: the leader of the one __transaction_state partition.
    let coordinator = wait_isr(&bs, "__transaction_state", 0, 3) as usize;
    c.broker(coordinator).kill9();
    std::thread::sleep(Duration::from_secs(4));
    c.broker(coordinator).restart();
    wait_isr(&bs, TOPIC, 1, 3);
    std::thread::sleep(Duration::from_secs(3));
    // A partition leader, between the markers of whatever transaction is ending.
    let leader = wait_isr(&bs, TOPIC, 1, 3) as usize;
    c.broker(leader).kill9();
    std::thread::sleep(Duration::from_secs(4));
    c.broker(leader).restart();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let outcomes = w.join().unwrap();
    for p in 0..PARTITIONS {
        wait_isr(&bs, TOPIC, p, 3);
    }
    let committed: Vec<u64> = outcomes
        .iter()
        .filter(|(_, o)| **o == Outcome::Committed)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        committed.len() >= 10,
        "too few commits to judge: {outcomes:?}"
    );

    let values = read_committed(&bs);
    let unique: BTreeSet<&String> = values.iter().collect();
    assert_eq!(unique.len(), values.len(), "a record seen twice");
    let mut per_txn: BTreeMap<u64, usize> = BTreeMap::new();
    for v in &values {
        let n: u64 = v[1..v.find('-').unwrap()].parse().unwrap();
        *per_txn.entry(n).or_default() += 1;
    }
    for (n, count) in &per_txn {
        assert_eq!(
            *count,
            PARTITIONS as usize,
            "transaction {n} partly visible ({:?})",
            outcomes.get(n)
        );
        assert_ne!(
            outcomes.get(n),
            Some(&Outcome::Aborted),
            "aborted transaction {n} visible"
        );
    }
    for n in &committed {
        assert!(per_txn.contains_key(n), "committed transaction {n} lost");
    }
    println!(
        "{} transactions: {} committed, {} aborted, {} unknown; {} visible",
        outcomes.len(),
        committed.len(),
        outcomes
            .values()
            .filter(|o| **o == Outcome::Aborted)
            .count(),
        outcomes
            .values()
            .filter(|o| **o == Outcome::Unknown)
            .count(),
        per_txn.len()
    );
}

/// KIP-890 across brokers: a partition leader that is not the transaction's coordinator asks
/// the coordinator (AddPartitionsToTxn v4, verify_only) before a producer's first batch of a
/// transaction opens it there: refused before AddPartitionsToTxn and after EndTxn (a late
/// batch that would hang the partition), appended in between.
#[test]
fn a_leader_checks_transactional_batches_with_a_remote_coordinator() {
    use kafka_protocol::messages::*;
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["transaction.state.log.num.partitions=1".into()],
        ..Default::default()
    });
    c.wait_live(3);
    let bs = c.bootstrap();
    create_topic(&bs, "checked", 3, 3);
    let id = "remote-checked";
    let mut conn = common::wire::connect(c.broker(1));
    let mut find = find_coordinator_request::FindCoordinatorRequest::default();
    find.key = id.to_string().into();
    find.key_type = 1;
    let coordinator = common::cluster::wait_for("the transaction coordinator", T, || {
        let ResponseKind::FindCoordinator(f) =
            common::wire::call(&mut conn, ApiKey::FindCoordinator, 3, &find)
        else {
            panic!()
        };
        (f.error_code == 0).then_some(f.node_id.0 as usize)
    });
    let mut to_coordinator = common::wire::connect(c.broker(coordinator));
    let mut init = init_producer_id_request::InitProducerIdRequest::default();
    init.transactional_id = Some(TransactionalId(id.to_string().into()));
    init.transaction_timeout_ms = 60_000;
    let (pid, epoch) = common::cluster::wait_for("a producer id", T, || {
        let ResponseKind::InitProducerId(r) =
            common::wire::call(&mut to_coordinator, ApiKey::InitProducerId, 4, &init)
        else {
            panic!()
        };
        (r.error_code == 0).then_some((r.producer_id.0, r.producer_epoch))
    });
    let (partition, leader) = (0..3)
        .map(|p| (p, wait_isr(&bs, "checked", p, 3) as usize))
        .find(|(_, l)| *l != coordinator)
        .expect("a partition led by another broker than the coordinator");
    let mut to_leader = common::wire::connect(c.broker(leader));
    let batch = |seq: i32| {
        use strata_engine::{Offset as O, batch};
        let mut b = batch::build(O(0), 1_700_000_000_000, &[(None, Some(&b"v"[..]))]);
        batch::stamp_producer(&mut b, pid, epoch, seq);
        batch::stamp_transactional(&mut b, false);
        bytes::Bytes::from(b)
    };
    let produce = |conn: &mut std::net::TcpStream, seq: i32| {
        let mut r = common::wire::produce("checked", vec![(partition, batch(seq))]);
        r.transactional_id = Some(TransactionalId(id.to_string().into()));
        let ResponseKind::Produce(resp) = common::wire::call(conn, ApiKey::Produce, 9, &r) else {
            panic!()
        };
        resp.responses[0].partition_responses[0].error_code
    };
    assert_eq!(produce(&mut to_leader, 0), 48, "not in the transaction yet");
    let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    t.name = TopicName("checked".to_string().into());
    t.partitions = vec![partition];
    let mut add = add_partitions_to_txn_request::AddPartitionsToTxnRequest::default();
    add.v3_and_below_transactional_id = TransactionalId(id.to_string().into());
    add.v3_and_below_producer_id = ProducerId(pid);
    add.v3_and_below_producer_epoch = epoch;
    add.v3_and_below_topics = vec![t];
    let ResponseKind::AddPartitionsToTxn(added) =
        common::wire::call(&mut to_coordinator, ApiKey::AddPartitionsToTxn, 3, &add)
    else {
        panic!()
    };
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(produce(&mut to_leader, 0), 0, "inside the transaction");
    let mut end = end_txn_request::EndTxnRequest::default();
    end.transactional_id = TransactionalId(id.to_string().into());
    end.producer_id = ProducerId(pid);
    end.producer_epoch = epoch;
    end.committed = true;
    let ResponseKind::EndTxn(ended) =
        common::wire::call(&mut to_coordinator, ApiKey::EndTxn, 3, &end)
    else {
        panic!()
    };
    assert_eq!(ended.error_code, 0);
    let mut describe = describe_transactions_request::DescribeTransactionsRequest::default();
    describe.transactional_ids = vec![TransactionalId(id.to_string().into())];
    let complete = |conn: &mut std::net::TcpStream| {
        common::cluster::wait_for("the transaction complete", T, || {
            let ResponseKind::DescribeTransactions(d) =
                common::wire::call(conn, ApiKey::DescribeTransactions, 0, &describe)
            else {
                panic!()
            };
            (d.transaction_states[0].transaction_state.as_str() == "CompleteCommit").then_some(())
        })
    };
    complete(&mut to_coordinator);
    assert_eq!(
        produce(&mut to_leader, 1),
        48,
        "a late batch of the ended transaction"
    );

    // Transaction version 2 (KIP-890 part 2): Produce v12 has the leader add the partition at
    // the remote coordinator (AddPartitionsToTxn v4, not verify_only); EndTxn v5 bumps the
    // epoch, which fences a late batch of the ended transaction there too.
    use common::wire::txn;
    let produce_v12 = |conn: &mut std::net::TcpStream, epoch: i16, seq: i32, value: &str| {
        let batch = txn::batch(pid, epoch, seq, value);
        txn::produce(conn, 12, "checked", partition, Some(id), batch).0
    };
    let code = produce_v12(&mut to_leader, epoch, 1, "tv2");
    assert_eq!(code, 0, "the leader added the partition at the coordinator");
    let (code, next) = txn::end(&mut to_coordinator, 5, id, (pid, epoch), true);
    assert_eq!((code, next), (0, (pid, epoch + 1)));
    // Until its marker lands the ended transaction is still open in the partition (a batch of
    // it arriving then joins it, as in Kafka); after, its epoch is over there.
    complete(&mut to_coordinator);
    let code = produce_v12(&mut to_leader, epoch, 2, "late");
    assert_eq!(code, 47, "INVALID_PRODUCER_EPOCH: fenced by the bump");
    let code = produce_v12(&mut to_leader, next.1, 0, "next");
    assert_eq!(code, 0, "the next transaction at the bumped epoch");
    let (code, _) = txn::end(&mut to_coordinator, 5, id, next, false);
    assert_eq!(code, 0);
}
