//! The Kafka wire format beyond what the codec crate (`kafka-protocol`) does by itself: making
//! each response valid for the version it is sent at, versions below the crate's floor, the
//! error response of an API, and response framing. Pure: no I/O.
//!
//! - [`fit`]: fields a version lacks are reset in one place before encoding;
//! - [`legacy`]: old versions (ListOffsets v0, OffsetCommit v0-1, ...) decoded to and encoded
//!   from their modern equivalents;
//! - [`error_response`]: `UNKNOWN_SERVER_ERROR` in the shape of the API's response, sent when a
//!   response does not encode, instead of closing the connection;
//! - [`frame`]: a response to a length-prefixed frame (fitted, legacy-aware, with the fallback);
//! - [`topic_ids`]: OffsetCommit and OffsetFetch v10 requests (topics by id), which the crate
//!   does not decode.

pub mod error_response;
pub mod fit;
pub mod frame;
pub mod legacy;
mod reader;
pub mod topic_ids;
