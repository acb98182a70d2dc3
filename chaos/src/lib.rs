//! `strata-chaos`: Strata's Jepsen-style verifier. It starts a real cluster (separate
//! `strata` processes on 127.0.0.1, a fault-injecting proxy on every link between nodes),
//! runs real librdkafka producers (acks=all, idempotent and not) and group consumers,
//! injects faults from a seeded schedule (SIGKILL of a broker, of the active controller, of
//! all brokers; SIGSTOP pauses; isolation, leader cut from its followers, majority/minority
//! splits, one-way cuts; slow links; a byte flipped in a segment; a full disk; the unsynced
//! tail of a killed broker dropped), records every operation, heals, reads every partition
//! back, and checks the history (see [`checker`]). With `--transactions` a transactional
//! writer, a consume-transform-produce worker and a read_committed observer run beside them
//! ([`transactions`]), and the checker looks for Jepsen's transactional anomalies too.
//!
//! A run directory holds `options.json` (everything needed to replay the run, seed included),
//! `schedule.txt`, `history.jsonl`, `findings.json`, `anomalies.txt`, `summary.txt`, and the
//! brokers' logs and data.

pub mod checker;
pub mod clients;
pub mod cluster;
pub mod history;
pub mod run;
pub mod schedule;
pub mod secure;
pub mod transactions;
