//! # strata-server
//!
//! The `strata` broker: the Kafka wire protocol over Tokio, request handlers that drive the
//! storage engine, the group coordinator with offsets in `__consumer_offsets`, configuration with
//! Kafka's property names, and a Prometheus metrics endpoint.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

/// Builds a protocol message (the crate's structs are `#[non_exhaustive]`): starts from
/// `Default` and sets the named fields. `msg!(Type { a: 1, b })`.
#[macro_export]
macro_rules! msg {
    ($t:path { $($f:ident $(: $v:expr)?),* $(,)? }) => {{
        let mut m = <$t>::default();
        $( $crate::msg!(@set m $f $(: $v)?); )*
        m
    }};
    (@set $m:ident $f:ident : $v:expr) => { $m.$f = $v; };
    (@set $m:ident $f:ident) => { $m.$f = $f; };
}

pub mod acl;
pub mod admin;
pub mod alloc;
pub mod blocking;
pub mod broker;
pub mod client_stream;
pub mod clock;
pub mod cluster;
pub mod cluster_tool;
pub mod config;
pub mod connection;
pub mod connection_limits;
pub mod console;
pub mod disk_parallel;
pub mod dynamic_config;
pub mod error_backoff;
pub mod error_code;
pub mod fetch_session;
pub mod group;
pub mod handler;
pub mod listener;
pub mod meta_properties;
pub mod metrics;
pub mod oauth;
pub mod open_files;
pub mod quota;
pub mod sasl;
pub mod server;
pub mod tls;
pub mod topic;
pub mod topic_config;
pub mod txn;
pub mod wire;
pub mod wire_out;
