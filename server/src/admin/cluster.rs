//! `strata cluster info|health`: the brokers (racks, states, leaders, replicas, sizes), the
//! controller, and what is wrong: brokers down, offline, under-min-ISR and under-replicated
//! partitions. `health` exits non-zero when anything is wrong, for scripts and probes.

use super::client::{AdminClient, AdminResult};
use super::output::{self, Format, Table};
use super::view::{ClusterView, Detail};

fn brokers_table(view: &ClusterView) -> String {
    let mut t = Table::new(&[
        "BROKER", "ADDRESS", "RACK", "STATE", "LEADERS", "REPLICAS", "SIZE",
    ]);
    for b in &view.brokers {
        t.row(vec![
            if view.controller == Some(b.id) {
                format!("{} (controller)", b.id)
            } else {
                b.id.to_string()
            },
            if b.port > 0 {
                format!("{}:{}", b.host, b.port)
            } else {
                "-".into()
            },
            b.rack.clone().unwrap_or_else(|| "-".into()),
            b.state.label().to_string(),
            b.leaders.to_string(),
            b.replicas.to_string(),
            b.size_bytes.map_or("?".into(), output::bytes),
        ]);
    }
    t.render()
}

/// What `health` found, as lines ("OK" when nothing).
pub fn health_lines(view: &ClusterView) -> Vec<String> {
    let h = &view.health;
    let list = |v: &[String]| {
        let shown: Vec<&str> = v.iter().take(10).map(String::as_str).collect();
        let more = v.len().saturating_sub(shown.len());
        format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    let mut lines = Vec::new();
    if let Some(e) = &h.quorum_error {
        lines.push(format!("the controller quorum cannot be described: {e}"));
    }
    if !h.controllers_unreachable.is_empty() {
        lines.push(format!(
            "controller quorum voters not heard from: {}",
            output::ids(&h.controllers_unreachable)
        ));
    }
    if !h.brokers_down.is_empty() {
        lines.push(format!("brokers down: {}", output::ids(&h.brokers_down)));
    }
    if !h.offline_partitions.is_empty() {
        lines.push(format!(
            "{} offline partitions (no leader: produce and consume fail): {}",
            h.offline_partitions.len(),
            list(&h.offline_partitions)
        ));
    }
    if !h.under_min_isr_partitions.is_empty() {
        lines.push(format!(
            "{} partitions under min.insync.replicas (acks=all produces fail): {}",
            h.under_min_isr_partitions.len(),
            list(&h.under_min_isr_partitions)
        ));
    }
    if !h.under_replicated_partitions.is_empty() {
        lines.push(format!(
            "{} under-replicated partitions: {}",
            h.under_replicated_partitions.len(),
            list(&h.under_replicated_partitions)
        ));
    }
    lines
}

/// `strata cluster info`.
pub async fn info(client: &mut AdminClient, format: Format) -> AdminResult<()> {
    let view = ClusterView::fetch(client, None, Detail::ALL).await?;
    output::print(format, &view, || {
        let partitions: usize = view.topics.iter().map(|t| t.partitions.len()).sum();
        let mut s = format!(
            "Cluster {}  controller {}  {} brokers  {} topics  {} partitions\n\n",
            view.cluster_id.as_deref().unwrap_or("?"),
            view.controller.map_or("none".into(), |c| c.to_string()),
            view.brokers.len(),
            view.topics.len(),
            partitions
        );
        s.push_str(&brokers_table(&view));
        s.push('\n');
        if let Some(q) = &view.quorum {
            s.push_str(&format!(
                "Controller quorum: leader {}  epoch {}  high watermark {}\n",
                q.leader, q.epoch, q.high_watermark
            ));
            let mut t = Table::new(&["VOTER", "LOG END", "LAG", "LAST CONTACT"]);
            for v in &q.voters {
                t.row(vec![
                    if v.id == q.leader {
                        format!("{} (leader)", v.id)
                    } else {
                        v.id.to_string()
                    },
                    v.log_end_offset.to_string(),
                    v.lag.to_string(),
                    match v.last_contact_ms_ago {
                        Some(ms) if v.reachable => format!("{ms} ms ago"),
                        Some(ms) => format!("{ms} ms ago (UNREACHABLE)"),
                        None => "never (UNREACHABLE)".to_string(),
                    },
                ]);
            }
            s.push_str(&t.render());
            s.push('\n');
        }
        let lines = health_lines(&view);
        if lines.is_empty() {
            s.push_str("health: OK\n");
        } else {
            for l in lines {
                s.push_str(&format!("health: {l}\n"));
            }
        }
        s
    });
    Ok(())
}

/// `strata cluster health`: returns whether the cluster is healthy.
pub async fn health(client: &mut AdminClient, format: Format) -> AdminResult<bool> {
    let view = ClusterView::fetch(
        client,
        None,
        Detail {
            sizes: false,
            offsets: false,
            min_isr: true,
        },
    )
    .await?;
    output::print(format, &view.health, || {
        let lines = health_lines(&view);
        if lines.is_empty() {
            format!(
                "OK: {} brokers up, {} partitions fully replicated\n",
                view.brokers.len(),
                view.topics
                    .iter()
                    .map(|t| t.partitions.len())
                    .sum::<usize>()
            )
        } else {
            lines
                .into_iter()
                .map(|l| format!("UNHEALTHY: {l}\n"))
                .collect()
        }
    });
    Ok(view.health.healthy)
}

/// A move under way.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reassignment {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its replicas during the move.
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// The moves under way (ListPartitionReassignments).
pub async fn list_reassignments(client: &mut AdminClient) -> AdminResult<Vec<Reassignment>> {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
    use kafka_protocol::messages::list_partition_reassignments_response::ListPartitionReassignmentsResponse;
    let any = client.any_broker().await?;
    let version = client
        .version(&any, ApiKey::ListPartitionReassignments, 0, 0)
        .await?;
    let mut req = ListPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.topics = None;
    let r: ListPartitionReassignmentsResponse = client
        .send(&any, ApiKey::ListPartitionReassignments, version, &req)
        .await?;
    super::client::check(
        r.error_code,
        || "listing reassignments".into(),
        r.error_message.as_deref(),
    )?;
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut out: Vec<Reassignment> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Reassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// `strata cluster reassignments`: the moves under way.
pub async fn reassignments(
    client: &mut AdminClient,
    format: Format,
) -> AdminResult<Vec<Reassignment>> {
    let out = list_reassignments(client).await?;
    output::print(format, &out, || {
        let mut t = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
        for m in &out {
            t.row(vec![
                m.topic.clone(),
                m.partition.to_string(),
                output::ids(&m.replicas),
                output::ids(&m.adding),
                output::ids(&m.removing),
            ]);
        }
        if t.is_empty() {
            "(no reassignment under way)\n".to_string()
        } else {
            t.render()
        }
    });
    Ok(out)
}
