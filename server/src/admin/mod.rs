//! The operator's commands (`strata topic|group|cluster ...`) and what the console reads:
//! a Kafka admin client and the views built with it. Everything goes through the Kafka
//! protocol, so the commands work against any broker of a Strata cluster and against Kafka.
//!
//! - `client`: [`client::AdminClient`], one connection per broker, versions negotiated with
//!   ApiVersions; typed errors that name Kafka's error codes.
//! - `settings`: `--command-config` / `-X` client properties → TLS and SASL.
//! - `view`: [`view::ClusterView`], brokers, topics and health in one look.
//! - `topic`, `group`, `cluster`, `security` (ACLs, SCRAM users, quotas), `txn`: the commands.
//! - `output`: tables for people, JSON for scripts, close-name suggestions for typos.

pub mod client;
pub mod cluster;
pub mod group;
pub mod output;
pub mod security;
pub mod settings;
pub mod topic;
pub mod txn;
pub mod view;
