//! KIP-951 leader discovery: a produce or fetch refused with NOT_LEADER_OR_FOLLOWER or
//! FENCED_LEADER_EPOCH names the partition's current leader and leader epoch, and the response
//! lists that leader's endpoint, so a client (librdkafka 2.4+, the Java client 3.7+) goes to it
//! at once instead of waiting for its next metadata refresh. This is what makes a leadership
//! that moves while the old leader is alive (a reassignment completing, a preferred leader
//! taking over, a controlled shutdown) cost the client no metadata round.
//!
//! `wire::fit` drops the fields for versions that lack them (Produce below v10, Fetch below
//! v12 for the leader and v16 for the endpoints).

use std::collections::BTreeSet;

use kafka_protocol::messages::{BrokerId, fetch_response, produce_response};
use strata_replication::controller::MetadataImage;

use super::{Context, s};
use crate::error_code::ErrorCode;

fn wants_hint(code: i16) -> bool {
    code == ErrorCode::NotLeaderOrFollower.code() || code == ErrorCode::FencedLeaderEpoch.code()
}

/// The leader and epoch of `topic` (by name, or by id when the name is empty) `partition`.
fn leader(image: &MetadataImage, name: &str, id: uuid::Uuid, partition: i32) -> Option<(i32, i32)> {
    let t = if name.is_empty() {
        image.topics.values().find(|t| t.id == id.as_u128())?
    } else {
        image.topics.get(name)?
    };
    let p = t.partitions.get(usize::try_from(partition).ok()?)?;
    Some((p.leader?.0, p.leader_epoch.0))
}

/// `(id, host, port, rack)` of each broker in `ids` the image knows.
fn endpoints(
    ctx: &Context,
    image: &MetadataImage,
    ids: &BTreeSet<i32>,
) -> Vec<(i32, String, i32, Option<String>)> {
    let listener = crate::connection::listener_name(ctx);
    ids.iter()
        .filter_map(|id| {
            let b = image.brokers.get(&strata_replication::BrokerId(*id))?;
            let (host, port) = b.endpoint_on(&listener)?.rsplit_once(':')?;
            Some((*id, host.to_string(), port.parse().ok()?, b.rack.clone()))
        })
        .collect()
}

/// Fills the leader hints of a produce response.
pub fn produce(ctx: &Context, r: &mut produce_response::ProduceResponse) {
    let Some(cluster) = &ctx.broker.cluster else {
        return;
    };
    let image = cluster.image();
    let mut named = BTreeSet::new();
    for t in &mut r.responses {
        for p in &mut t.partition_responses {
            if !wants_hint(p.error_code) {
                continue;
            }
            if let Some((id, epoch)) = leader(&image, t.name.0.as_str(), t.topic_id, p.index) {
                let mut l = produce_response::LeaderIdAndEpoch::default();
                l.leader_id = BrokerId(id);
                l.leader_epoch = epoch;
                p.current_leader = l;
                named.insert(id);
            }
        }
    }
    r.node_endpoints = endpoints(ctx, &image, &named)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut e = produce_response::NodeEndpoint::default();
            e.node_id = BrokerId(id);
            e.host = s(&host);
            e.port = port;
            e.rack = rack.as_deref().map(s);
            e
        })
        .collect();
}

/// Fills the leader hints of a fetch response.
pub fn fetch(ctx: &Context, r: &mut fetch_response::FetchResponse) {
    let Some(cluster) = &ctx.broker.cluster else {
        return;
    };
    let image = cluster.image();
    let mut named = BTreeSet::new();
    for t in &mut r.responses {
        for p in &mut t.partitions {
            if !wants_hint(p.error_code) {
                continue;
            }
            if let Some((id, epoch)) =
                leader(&image, t.topic.0.as_str(), t.topic_id, p.partition_index)
            {
                let mut l = fetch_response::LeaderIdAndEpoch::default();
                l.leader_id = BrokerId(id);
                l.leader_epoch = epoch;
                p.current_leader = l;
                named.insert(id);
            }
        }
    }
    r.node_endpoints = endpoints(ctx, &image, &named)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut e = fetch_response::NodeEndpoint::default();
            e.node_id = BrokerId(id);
            e.host = s(&host);
            e.port = port;
            e.rack = rack.as_deref().map(s);
            e
        })
        .collect();
}
