//! What Strata's process tests (`server/tests`), `strata-bench` and `strata-chaos` share when
//! they drive real `strata` processes: a fault-injecting TCP proxy for the links between
//! nodes, where to find the `strata` binary, one value of a broker's Prometheus endpoint, and
//! topic creation that waits for a cluster still forming.

pub mod admin;
pub mod process;
pub mod proxy;

pub use admin::{create_topic, delete_topic};
pub use process::{free_port, metric, strata_bin};
pub use proxy::Proxy;

/// Errors of this crate's helpers: they only ever end a test or a tool run.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
