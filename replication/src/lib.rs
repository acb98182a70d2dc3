//! Strata's replication layer: partition state machines (leader, ISR, high watermark, leader
//! epochs) and the Raft metadata controller, as sans-IO cores driven by the server.
//!
//! This crate is a placeholder until the cluster issue fills it; it exists so that the
//! dependency direction `server -> replication -> engine` is fixed from the start.
#![deny(missing_docs)]

pub use strata_engine as engine;
