//! Strata's replication layer: sans-IO state machines for partitions (leader, ISR, high
//! watermark, leader epochs) and the metadata controller (its decisions, and the Raft quorum
//! that orders them), which the server drives (`strata-server`'s `cluster` module).
//!
//! Nothing here does I/O or reads a clock: the driver feeds events (`become_leader`, `on_fetch`,
//! `tick(now_ms)`, ...) and acts on what comes back (`Ready`: a high watermark that advanced, an
//! ISR change to propose to the controller). `tests/simulator.rs` drives several replicas
//! through a seeded, lossy network with crashes and checks Kafka's replication invariants.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod broker_id;
pub mod controller;
pub mod partition;

pub use broker_id::BrokerId;
pub use partition::{AlterIsr, Partition, PartitionConfig, Ready, ReplicationError, Role};
pub use strata_engine as engine;
