//! The metadata controller's logic, without consensus: the replicated state
//! ([`image::MetadataImage`]), the records that change it ([`records::MetadataRecord`]), and the
//! decisions that produce records ([`decisions::ControllerLogic`]: broker registration and
//! fencing, rack-aware topic placement, leader election from the ISR, ISR rulings, preferred
//! leader rebalancing, reassignment and re-replication), and the balance planner
//! ([`balance::plan`]: which replicas to move onto new brokers or off drained ones).
//!
//! The Raft quorum ([`quorum::QuorumNode`]: raft-rs over raft-engine) orders these records;
//! every controller and broker applies them to its own image in that order, so they all agree.
//! Decisions are made only on the active controller, from its image, and take effect only once
//! their records are committed.

pub mod balance;
pub mod decisions;
pub mod image;
pub mod quorum;
pub mod raft_log;
pub mod records;

pub use decisions::{ControllerConfig, ControllerError, ControllerLogic, Election};
pub use image::{
    BrokerRegistration, MetadataImage, PartitionRegistration, QuotaEntity, TopicImage,
};
pub use quorum::{QuorumError, QuorumNode};
pub use records::{AclEntry, MetadataRecord, QuotaValue, ScramEntry};
