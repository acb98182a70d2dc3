//! `strata group ...`: list, describe, lag, reset-offsets, delete; through ListGroups,
//! DescribeGroups / ConsumerGroupDescribe (KIP-848 groups), OffsetFetch, ListOffsets,
//! OffsetCommit and DeleteGroups at each group's coordinator.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Buf;
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_describe_response::ConsumerGroupDescribeResponse;
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::DeleteGroupsResponse;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::DescribeGroupsResponse;
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::ListGroupsResponse;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::{ApiKey, GroupId};
use kafka_protocol::protocol::Decodable;
use serde::Serialize;

use super::client::{AdminClient, AdminError, AdminResult, check, topic_name, wire_str};
use super::output::{self, Format, Table};
use super::view::{ClusterView, Detail, EARLIEST, LATEST, list_offsets};

/// Evaluates `$call` again while the group's coordinator is moving or loading
/// (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: a cluster just
/// started, a coordinator just failed over), until the client's timeout.
macro_rules! at_coordinator {
    ($client:expr, $call:expr) => {{
        let deadline = std::time::Instant::now() + $client.timeout();
        loop {
            match $call {
                Err(AdminError::Kafka { code: 14..=16, .. })
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => break other,
            }
        }
    }};
}

fn group_id(g: &str) -> GroupId {
    GroupId(wire_str(g))
}

/// A group as ListGroups names it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedGroup {
    /// The group id.
    pub group: String,
    /// Its state (`Stable`, `Empty`, ...), when the broker says.
    pub state: String,
    /// `consumer` (KIP-848) or `classic`, when the broker says.
    pub group_type: String,
    /// The protocol type (`consumer` for consumer groups, `connect`, ...).
    pub protocol_type: String,
    /// Its coordinator.
    pub coordinator: i32,
}

/// Every group of the cluster: ListGroups to every broker (each lists those it coordinates).
pub async fn list_groups(client: &mut AdminClient) -> AdminResult<Vec<ListedGroup>> {
    Ok(list_groups_from(client).await?.0)
}

/// Every group, and the brokers that listed theirs: the groups of any other broker (down,
/// gone from the metadata, or a coordinator still loading) are missing from the list.
pub async fn list_groups_from(
    client: &mut AdminClient,
) -> AdminResult<(Vec<ListedGroup>, Vec<i32>)> {
    client.metadata(Some(&[])).await?;
    let brokers: Vec<(i32, String)> = client
        .brokers()
        .iter()
        .map(|(id, a)| (*id, a.clone()))
        .collect();
    let mut out = Vec::new();
    let mut answered = Vec::new();
    let mut last_error = None;
    for (id, addr) in brokers {
        // A broker that cannot answer now (just elected coordinator and loading, say) leaves
        // out only its own groups.
        let r = at_coordinator!(client, list_groups_of(client, id, &addr).await);
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(broker = id, error = %e, "its groups are left out");
                last_error = Some(e);
                continue;
            }
        };
        answered.push(id);
        for g in r.groups {
            out.push(ListedGroup {
                group: g.group_id.0.to_string(),
                state: g.group_state.to_string(),
                group_type: g.group_type.to_string(),
                protocol_type: g.protocol_type.to_string(),
                coordinator: id,
            });
        }
    }
    if answered.is_empty()
        && let Some(e) = last_error
    {
        return Err(e);
    }
    out.sort_by(|a, b| a.group.cmp(&b.group));
    Ok((out, answered))
}

async fn list_groups_of(
    client: &mut AdminClient,
    id: i32,
    addr: &str,
) -> AdminResult<ListGroupsResponse> {
    let version = client.version(addr, ApiKey::ListGroups, 0, 5).await?;
    let r: ListGroupsResponse = client
        .send(
            addr,
            ApiKey::ListGroups,
            version,
            &ListGroupsRequest::default(),
        )
        .await?;
    check(
        r.error_code,
        || format!("listing the groups of broker {id}"),
        None,
    )?;
    Ok(r)
}

/// `strata group list`.
pub async fn list(client: &mut AdminClient, format: Format) -> AdminResult<()> {
    let groups = list_groups(client).await?;
    output::print(format, &groups, || {
        let mut t = Table::new(&["GROUP", "STATE", "TYPE", "PROTOCOL", "COORDINATOR"]);
        for g in &groups {
            t.row(vec![
                g.group.clone(),
                g.state.clone(),
                g.group_type.clone(),
                g.protocol_type.clone(),
                g.coordinator.to_string(),
            ]);
        }
        if t.is_empty() {
            return "(no groups)\n".to_string();
        }
        t.render()
    });
    Ok(())
}

/// A member and what it is assigned.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` (static membership).
    pub instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Topic → partitions assigned.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// One partition's committed offset and lag.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset, `None` when it has none.
    pub committed: Option<i64>,
    /// The log end offset.
    pub end: Option<i64>,
    /// `end - committed`; from the log start when nothing is committed (as a consumer with
    /// `auto.offset.reset=earliest` would read).
    pub lag: Option<i64>,
    /// The member the partition is assigned to.
    pub member: Option<String>,
}

/// A group: state, members, offsets and lag.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// The group id.
    pub group: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, ...
    pub state: String,
    /// The protocol type (`consumer`), or `consumer (KIP-848)` for the new protocol.
    pub protocol_type: String,
    /// The assignor (`range`, `uniform`, ...).
    pub assignor: String,
    /// Its coordinator's address.
    pub coordinator: String,
    /// Members.
    pub members: Vec<MemberView>,
    /// Committed offsets and lag of every partition of the topics it has offsets in or is
    /// assigned.
    pub partitions: Vec<PartitionLag>,
    /// The sum of the known lags.
    pub total_lag: i64,
}

/// Decodes a classic consumer's assignment (`version: i16` then the assignment).
fn decode_assignment(bytes: &[u8]) -> BTreeMap<String, Vec<i32>> {
    let mut b = bytes::Bytes::copy_from_slice(bytes);
    if b.remaining() < 2 {
        return BTreeMap::new();
    }
    let version = b.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut b, version) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Looks at group `group`; fails (suggesting a close name) when the cluster has no such group.
pub async fn describe_group(client: &mut AdminClient, group: &str) -> AdminResult<GroupView> {
    describe_group_in(client, group, None).await
}

/// [`describe_group`], taking the end and start offsets from `cluster` (a look fetched with
/// offsets, as the console's) instead of asking the leaders again.
pub async fn describe_group_in(
    client: &mut AdminClient,
    group: &str,
    cluster: Option<&ClusterView>,
) -> AdminResult<GroupView> {
    at_coordinator!(client, describe_group_once(client, group, cluster).await)
}

async fn describe_group_once(
    client: &mut AdminClient,
    group: &str,
    cluster: Option<&ClusterView>,
) -> AdminResult<GroupView> {
    let coordinator = client.coordinator(group, 0).await?;
    let mut view = GroupView {
        group: group.to_string(),
        state: String::new(),
        protocol_type: String::new(),
        assignor: String::new(),
        coordinator: coordinator.clone(),
        members: Vec::new(),
        partitions: Vec::new(),
        total_lag: 0,
    };
    let mut described = false;
    if let Ok(version) = client
        .version(&coordinator, ApiKey::ConsumerGroupDescribe, 0, 1)
        .await
    {
        let mut req = ConsumerGroupDescribeRequest::default();
        req.group_ids = vec![group_id(group)];
        let r: ConsumerGroupDescribeResponse = client
            .send(&coordinator, ApiKey::ConsumerGroupDescribe, version, &req)
            .await?;
        if let Some(g) = r.groups.into_iter().find(|g| g.error_code == 0) {
            described = true;
            view.state = g.group_state.to_string();
            view.protocol_type = "consumer (KIP-848)".into();
            view.assignor = g.assignor_name.to_string();
            view.members = g
                .members
                .into_iter()
                .map(|m| MemberView {
                    member_id: m.member_id.to_string(),
                    instance_id: m.instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: m
                        .assignment
                        .topic_partitions
                        .into_iter()
                        .map(|tp| (tp.topic_name.0.to_string(), tp.partitions))
                        .collect(),
                })
                .collect();
        }
    }
    if !described {
        let version = client
            .version(&coordinator, ApiKey::DescribeGroups, 0, 5)
            .await?;
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![group_id(group)];
        let r: DescribeGroupsResponse = client
            .send(&coordinator, ApiKey::DescribeGroups, version, &req)
            .await?;
        let g = r
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| AdminError::Usage(format!("no answer for group {group:?}")))?;
        check(
            g.error_code,
            || format!("describing group {group:?}"),
            g.error_message.as_deref(),
        )?;
        view.state = g.group_state.to_string();
        view.protocol_type = g.protocol_type.to_string();
        view.assignor = g.protocol_data.to_string();
        view.members = g
            .members
            .into_iter()
            .map(|m| MemberView {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if g.protocol_type.as_str() == "consumer" {
                    decode_assignment(&m.member_assignment)
                } else {
                    BTreeMap::new()
                },
            })
            .collect();
    }
    let committed = committed_offsets(client, group).await?;
    if view.state == "Dead" && committed.is_empty() {
        let known = list_groups(client).await.unwrap_or_default();
        return Err(AdminError::Usage(format!(
            "group {group:?} does not exist{}",
            output::suggestion(group, known.iter().map(|g| g.group.as_str()))
        )));
    }
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &view.members {
        for (t, ps) in &m.assignment {
            for p in ps {
                owner.insert((t.clone(), *p), m.member_id.clone());
            }
        }
    }
    let mut keys: BTreeSet<(String, i32)> = committed
        .keys()
        .cloned()
        .chain(owner.keys().cloned())
        .collect();
    let topics: Vec<String> = keys
        .iter()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let with_offsets = cluster.filter(|c| {
        c.topics
            .iter()
            .filter(|t| topics.contains(&t.name))
            .all(|t| t.partitions.iter().all(|p| p.end_offset.is_some()))
    });
    let (ends, starts) = if topics.is_empty() {
        (BTreeMap::new(), BTreeMap::new())
    } else if let Some(cluster) = with_offsets {
        let mut ends = BTreeMap::new();
        let mut starts = BTreeMap::new();
        for t in cluster.topics.iter().filter(|t| topics.contains(&t.name)) {
            for p in &t.partitions {
                let key = (t.name.clone(), p.partition);
                keys.insert(key.clone());
                if let Some(e) = p.end_offset {
                    ends.insert(key.clone(), e);
                }
                if let Some(s) = p.start_offset {
                    starts.insert(key, s);
                }
            }
        }
        (ends, starts)
    } else {
        let cluster = ClusterView::fetch(client, None, Detail::default()).await?;
        let located: Vec<(String, i32, i32)> = cluster
            .topics
            .iter()
            .filter(|t| topics.contains(&t.name))
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|p| Some((t.name.clone(), p.partition, p.leader?)))
            })
            .collect();
        // Every partition of the group's topics: one it has never committed in is behind by
        // all of its records (what auto.offset.reset=earliest would read).
        for t in cluster.topics.iter().filter(|t| topics.contains(&t.name)) {
            keys.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
        }
        (
            list_offsets(client, &located, LATEST).await?,
            list_offsets(client, &located, EARLIEST).await?,
        )
    };
    for key in keys {
        let c = committed.get(&key).copied();
        let end = ends.get(&key).copied();
        let lag = end.map(|e| (e - c.or(starts.get(&key).copied()).unwrap_or(0)).max(0));
        view.total_lag += lag.unwrap_or(0);
        view.partitions.push(PartitionLag {
            member: owner.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
            committed: c,
            end,
            lag,
        });
    }
    Ok(view)
}

/// The group's committed offsets (OffsetFetch of every partition).
async fn committed_offsets(
    client: &mut AdminClient,
    group: &str,
) -> AdminResult<BTreeMap<(String, i32), i64>> {
    at_coordinator!(client, committed_offsets_once(client, group).await)
}

async fn committed_offsets_once(
    client: &mut AdminClient,
    group: &str,
) -> AdminResult<BTreeMap<(String, i32), i64>> {
    let coordinator = client.coordinator(group, 0).await?;
    let version = client
        .version(&coordinator, ApiKey::OffsetFetch, 2, 7)
        .await?;
    let mut req = OffsetFetchRequest::default();
    req.group_id = group_id(group);
    req.topics = None; // every partition (v2+)
    let r: OffsetFetchResponse = client
        .send(&coordinator, ApiKey::OffsetFetch, version, &req)
        .await?;
    check(
        r.error_code,
        || format!("fetching the offsets of group {group:?}"),
        None,
    )?;
    let mut out = BTreeMap::new();
    for t in r.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

fn lag_table(view: &GroupView) -> String {
    let mut t = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"]);
    for p in &view.partitions {
        t.row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            p.committed.map_or("-".into(), |o| o.to_string()),
            p.end.map_or("?".into(), |o| o.to_string()),
            p.lag.map_or("?".into(), |o| o.to_string()),
            p.member.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.render()
}

/// `strata group describe`: state, members and lag.
pub async fn describe(client: &mut AdminClient, group: &str, format: Format) -> AdminResult<()> {
    let view = describe_group(client, group).await?;
    output::print(format, &view, || {
        let mut s = format!(
            "Group {}  state {}  protocol {} {}  coordinator {}  total lag {}\n\n",
            view.group,
            view.state,
            view.protocol_type,
            view.assignor,
            view.coordinator,
            view.total_lag
        );
        let mut t = Table::new(&["MEMBER", "INSTANCE", "CLIENT", "HOST", "ASSIGNMENT"]);
        for m in &view.members {
            t.row(vec![
                m.member_id.clone(),
                m.instance_id.clone().unwrap_or_else(|| "-".into()),
                m.client_id.clone(),
                m.host.clone(),
                m.assignment
                    .iter()
                    .map(|(t, ps)| format!("{t}:{}", output::ids(ps)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
        if t.is_empty() {
            s.push_str("(no members)\n");
        } else {
            s.push_str(&t.render());
        }
        s.push('\n');
        s.push_str(&lag_table(&view));
        s
    });
    Ok(())
}

/// `strata group lag`: per partition, then the total.
pub async fn lag(client: &mut AdminClient, group: &str, format: Format) -> AdminResult<()> {
    let view = describe_group(client, group).await?;
    #[derive(Serialize)]
    struct Lag<'a> {
        group: &'a str,
        total_lag: i64,
        partitions: &'a [PartitionLag],
    }
    output::print(
        format,
        &Lag {
            group,
            total_lag: view.total_lag,
            partitions: &view.partitions,
        },
        || format!("{}\ntotal lag {}\n", lag_table(&view), view.total_lag),
    );
    Ok(())
}

/// Where `reset-offsets` moves a group's offsets.
#[derive(Debug, Clone, PartialEq)]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// The first offset at or after this time (ms since the epoch); the end when none.
    Datetime(i64),
    /// The current committed offset plus this (negative goes back), within the log.
    ShiftBy(i64),
    /// This offset, within the log.
    Offset(i64),
}

/// One partition's move, as `reset-offsets` plans and prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Reset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset before.
    pub from: Option<i64>,
    /// The new committed offset.
    pub to: i64,
}

/// Plans (and with `execute` commits) new offsets for `group` on `topics` (every topic it has
/// offsets for when empty). The group must have no members (as Kafka's tool requires).
pub async fn reset_offsets(
    client: &mut AdminClient,
    group: &str,
    topics: &[String],
    to: &ResetTo,
    execute: bool,
    format: Format,
) -> AdminResult<Vec<Reset>> {
    let view = describe_group(client, group).await;
    let view = match view {
        Ok(v) => Some(v),
        // A group that has never committed: offsets can still be set for it.
        Err(AdminError::Usage(m)) if m.contains("does not exist") && !topics.is_empty() => None,
        Err(e) => return Err(e),
    };
    if let Some(v) = &view
        && !v.members.is_empty()
    {
        return Err(AdminError::Usage(format!(
            "group {group:?} is {} with {} members: stop its consumers first (offsets can only be reset while it is empty)",
            v.state,
            v.members.len()
        )));
    }
    let cluster = ClusterView::fetch(client, None, Detail::default()).await?;
    let wanted: BTreeSet<String> = if topics.is_empty() {
        view.iter()
            .flat_map(|v| v.partitions.iter().map(|p| p.topic.clone()))
            .collect()
    } else {
        for t in topics {
            cluster.topic(t)?;
        }
        topics.iter().cloned().collect()
    };
    if wanted.is_empty() {
        return Err(AdminError::Usage(format!(
            "group {group:?} has no committed offsets: name the topics with --topic"
        )));
    }
    let located: Vec<(String, i32, i32)> = cluster
        .topics
        .iter()
        .filter(|t| wanted.contains(&t.name))
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|p| Some((t.name.clone(), p.partition, p.leader?)))
        })
        .collect();
    let starts = list_offsets(client, &located, EARLIEST).await?;
    let ends = list_offsets(client, &located, LATEST).await?;
    let at_time = match to {
        ResetTo::Datetime(ms) => Some(list_offsets(client, &located, *ms).await?),
        _ => None,
    };
    let committed: BTreeMap<(String, i32), i64> = view
        .iter()
        .flat_map(|v| v.partitions.iter())
        .filter_map(|p| Some(((p.topic.clone(), p.partition), p.committed?)))
        .collect();
    let mut plan = Vec::new();
    for (t, p, _) in &located {
        let key = (t.clone(), *p);
        let (Some(start), Some(end)) = (starts.get(&key).copied(), ends.get(&key).copied()) else {
            return Err(AdminError::Usage(format!(
                "{t}-{p}: its leader did not answer ListOffsets; try again"
            )));
        };
        let from = committed.get(&key).copied();
        let target = match to {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Datetime(_) => at_time
                .as_ref()
                .and_then(|m| m.get(&key).copied())
                .unwrap_or(end),
            ResetTo::ShiftBy(n) => from.unwrap_or(start).saturating_add(*n),
            ResetTo::Offset(o) => *o,
        }
        .clamp(start, end);
        plan.push(Reset {
            topic: t.clone(),
            partition: *p,
            from,
            to: target,
        });
    }
    if execute {
        at_coordinator!(client, commit(client, group, &plan).await)?;
    }
    output::print(format, &plan, || {
        let mut t = Table::new(&["TOPIC", "PARTITION", "FROM", "TO"]);
        for r in &plan {
            t.row(vec![
                r.topic.clone(),
                r.partition.to_string(),
                r.from.map_or("-".into(), |o| o.to_string()),
                r.to.to_string(),
            ]);
        }
        let mut s = t.render();
        if !execute {
            s.push_str("\n(dry run: nothing changed; add --execute to commit these offsets)\n");
        }
        s
    });
    Ok(plan)
}

async fn commit(client: &mut AdminClient, group: &str, plan: &[Reset]) -> AdminResult<()> {
    let coordinator = client.coordinator(group, 0).await?;
    let version = client
        .version(&coordinator, ApiKey::OffsetCommit, 2, 8)
        .await?;
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for r in plan {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = r.partition;
        p.committed_offset = r.to;
        p.committed_leader_epoch = -1;
        p.committed_metadata = Some(wire_str(""));
        by_topic.entry(&r.topic).or_default().push(p);
    }
    let mut req = OffsetCommitRequest::default();
    req.group_id = group_id(group);
    req.generation_id_or_member_epoch = -1;
    req.member_id = wire_str("");
    req.retention_time_ms = -1;
    req.topics = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            let mut ct = OffsetCommitRequestTopic::default();
            ct.name = topic_name(t);
            ct.partitions = partitions;
            ct
        })
        .collect();
    let r: OffsetCommitResponse = client
        .send(&coordinator, ApiKey::OffsetCommit, version, &req)
        .await?;
    for t in r.topics {
        for p in t.partitions {
            check(
                p.error_code,
                || {
                    format!(
                        "committing group {group:?}'s offset of {}-{}",
                        t.name.0.as_str(),
                        p.partition_index
                    )
                },
                None,
            )?;
        }
    }
    Ok(())
}

/// `strata group delete`: removes groups (they must have no members) and their offsets.
pub async fn delete(client: &mut AdminClient, groups: &[String]) -> AdminResult<()> {
    for group in groups {
        at_coordinator!(client, delete_one(client, group).await)?;
    }
    Ok(())
}

async fn delete_one(client: &mut AdminClient, group: &str) -> AdminResult<()> {
    {
        let coordinator = client.coordinator(group, 0).await?;
        let version = client
            .version(&coordinator, ApiKey::DeleteGroups, 0, 2)
            .await?;
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![group_id(group)];
        let r: DeleteGroupsResponse = client
            .send(&coordinator, ApiKey::DeleteGroups, version, &req)
            .await?;
        for res in r.results {
            if res.error_code == 69 {
                let known = list_groups(client).await.unwrap_or_default();
                return Err(AdminError::Usage(format!(
                    "group {group:?} does not exist{}",
                    output::suggestion(group, known.iter().map(|g| g.group.as_str()))
                )));
            }
            check(res.error_code, || format!("deleting group {group:?}"), None)?;
        }
    }
    Ok(())
}

/// Parses `--to-datetime`, in UTC: `2026-12-06T07:00:00`, `2026-12-06 07:00:00.000`,
/// `2026-12-06T07:00:00Z` or a date alone (its midnight).
pub fn parse_datetime(s: &str) -> AdminResult<i64> {
    let parsed = humantime::parse_rfc3339_weak(s)
        .or_else(|_| humantime::parse_rfc3339(s))
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s}T00:00:00")))
        .map_err(|e| {
            AdminError::Usage(format!(
                "--to-datetime {s:?}: {e} (expected a UTC time such as 2026-12-06T07:00:00)"
            ))
        })?;
    let ms = parsed
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| AdminError::Usage(format!("--to-datetime {s:?} is before 1970")))?
        .as_millis();
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_kafkas_tool_takes_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01").unwrap(), 1000);
        assert_eq!(parse_datetime("1970-01-01T00:00:01.500").unwrap(), 1500);
        assert_eq!(parse_datetime("1970-01-01").unwrap(), 0);
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn a_classic_assignment_decodes() {
        use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
        use kafka_protocol::protocol::Encodable;
        let mut a = ConsumerProtocolAssignment::default();
        let mut tp = TopicPartition::default();
        tp.topic = topic_name("orders");
        tp.partitions = vec![0, 2];
        a.assigned_partitions = vec![tp];
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        a.encode(&mut buf, 1).unwrap();
        let decoded = decode_assignment(&buf);
        assert_eq!(decoded.get("orders"), Some(&vec![0, 2]));
        assert!(decode_assignment(&[1]).is_empty());
    }
}
