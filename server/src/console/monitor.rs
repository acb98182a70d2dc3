//! The console's picture of the cluster: a task looks at it every poll interval through the
//! Kafka protocol ([`ClusterView`], every group's [`GroupView`]), derives throughput per topic
//! from end offsets and events from the differences, and keeps the result for the pages and
//! the JSON API to read without asking the cluster anything themselves.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::admin::client::AdminClient;
use crate::admin::group::{GroupView, ListedGroup, describe_group_in, list_groups_from};
use crate::admin::view::{ClusterView, Detail};

use super::events::{Event, diff};
use crate::clock::now_ms;

/// Events kept.
const EVENTS_KEPT: usize = 500;
/// Throughput samples kept per topic.
const SAMPLES_KEPT: usize = 150;
/// Groups described per poll (the rest are listed only).
const GROUPS_DESCRIBED: usize = 100;

/// One throughput sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// Records appended per second since the previous sample.
    pub records_per_sec: f64,
}

/// What the console knows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The last look at the cluster, if one succeeded.
    pub cluster: Option<ClusterView>,
    /// Every group the cluster listed.
    pub groups: Vec<ListedGroup>,
    /// The groups described (members, lag), by id.
    pub group_details: BTreeMap<String, GroupView>,
    /// Why the last look failed, if it did.
    pub error: Option<String>,
    /// When the last look succeeded (ms since the Unix epoch).
    pub updated_ms: i64,
    /// Records per second per topic, oldest first.
    pub throughput: BTreeMap<String, VecDeque<Sample>>,
    /// Recent events, oldest first.
    pub events: VecDeque<Event>,
}

/// The shared picture, updated by [`Monitor::run`].
#[derive(Debug, Default)]
pub struct Monitor {
    snapshot: RwLock<Snapshot>,
}

impl Monitor {
    /// Reads `f` of the current picture without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.snapshot.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Looks at the cluster every `every` until `stop` is set.
    pub async fn run(
        self: Arc<Self>,
        mut client: AdminClient,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
            // One look may not take longer than the interval times a few: a hung broker must
            // not freeze the console's picture.
            let look = tokio::time::timeout(
                every.saturating_mul(4).max(Duration::from_secs(5)),
                self.look(&mut client),
            )
            .await;
            if look.is_err() {
                self.failed("the cluster did not answer in time".to_string());
            }
        }
    }

    async fn look(&self, client: &mut AdminClient) {
        let cluster = match ClusterView::fetch(client, None, Detail::ALL).await {
            Ok(c) => c,
            Err(e) => {
                self.failed(e.to_string());
                return;
            }
        };
        // Brokers, partitions and events are shown at once: describing the groups (each at
        // its coordinator, which may be moving) must not hold them back.
        self.update_cluster(cluster.clone(), now_ms());
        // A group whose coordinator cannot list it this time (down, or a new one still
        // loading it) keeps the last look's entry instead of vanishing from the console.
        let (mut groups, answered) = list_groups_from(client).await.unwrap_or_default();
        let (old_groups, old_details) = self.with(|s| (s.groups.clone(), s.group_details.clone()));
        for g in old_groups {
            if !answered.contains(&g.coordinator) && !groups.iter().any(|n| n.group == g.group) {
                groups.push(g);
            }
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        let mut details = BTreeMap::new();
        for g in groups.iter().take(GROUPS_DESCRIBED) {
            match describe_group_in(client, &g.group, Some(&cluster)).await {
                Ok(d) => {
                    details.insert(g.group.clone(), d);
                }
                Err(_) => {
                    if let Some(d) = old_details.get(&g.group) {
                        details.insert(g.group.clone(), d.clone());
                    }
                }
            }
        }
        self.update_groups(groups, details);
    }

    fn failed(&self, error: String) {
        let mut s = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        s.error = Some(error);
    }

    /// Takes a new look at the cluster and its groups (what one poll does).
    pub fn update(
        &self,
        cluster: ClusterView,
        groups: Vec<ListedGroup>,
        group_details: BTreeMap<String, GroupView>,
        at_ms: i64,
    ) {
        self.update_cluster(cluster, at_ms);
        self.update_groups(groups, group_details);
    }

    /// Takes a new look at the cluster: events from the difference with the last, throughput
    /// from the end offsets' growth.
    pub fn update_cluster(&self, cluster: ClusterView, at_ms: i64) {
        let mut s = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = &s.cluster {
            let events = diff(before, &cluster, at_ms);
            let elapsed = (at_ms - s.updated_ms).max(1) as f64 / 1000.0;
            let old_ends: BTreeMap<&str, i64> = before
                .topics
                .iter()
                .filter_map(|t| Some((t.name.as_str(), end_sum(t)?)))
                .collect();
            let mut rates = Vec::new();
            for t in &cluster.topics {
                if let (Some(now), Some(then)) = (end_sum(t), old_ends.get(t.name.as_str())) {
                    rates.push((t.name.clone(), (now - then).max(0) as f64 / elapsed));
                }
            }
            s.events.extend(events);
            while s.events.len() > EVENTS_KEPT {
                s.events.pop_front();
            }
            for (topic, rate) in rates {
                let series = s.throughput.entry(topic).or_default();
                series.push_back(Sample {
                    at_ms,
                    records_per_sec: rate,
                });
                while series.len() > SAMPLES_KEPT {
                    series.pop_front();
                }
            }
        }
        s.throughput
            .retain(|t, _| cluster.topics.iter().any(|c| &c.name == t));
        s.cluster = Some(cluster);
        s.error = None;
        s.updated_ms = at_ms;
    }

    /// Takes a new look at the groups.
    pub fn update_groups(
        &self,
        groups: Vec<ListedGroup>,
        group_details: BTreeMap<String, GroupView>,
    ) {
        let mut s = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        s.groups = groups;
        s.group_details = group_details;
    }
}

/// The sum of a topic's end offsets, when every partition's is known.
fn end_sum(t: &crate::admin::view::TopicView) -> Option<i64> {
    t.partitions.iter().map(|p| p.end_offset).sum()
}
