//! The console's pages, rendered on the server from the monitor's snapshot (maud escapes every
//! value): overview, topics, one topic, groups, one group, events. Each reloads itself every
//! few seconds; charts are inline SVG, so the pages need no script at all.

use std::collections::{BTreeMap, VecDeque};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::admin::cluster::health_lines;
use crate::admin::output::bytes;
use crate::admin::view::{BrokerState, TopicView};

use super::events::{Event, Severity};
use super::monitor::{Sample, Snapshot};
use crate::clock::now_ms;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
nav{background:#1d2330;padding:10px 24px;display:flex;gap:22px;align-items:center}
nav a{color:#c9d1e0;text-decoration:none;font-weight:600}nav a.on{color:#fff}
nav .brand{color:#fff;font-weight:800;letter-spacing:.5px;margin-right:12px}
main{padding:18px 24px;max-width:1300px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0001}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e6e8ec;white-space:nowrap}
th{background:#eef0f4;font-size:12px;text-transform:uppercase;color:#566}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700}
.ok{background:#dcf5e3;color:#11652f}.warn{background:#fff1cc;color:#7a5200}.crit{background:#fde0e0;color:#a11}
tr.down td{background:#fff5f5}
.box{background:#fff;padding:12px 16px;box-shadow:0 1px 2px #0001;margin:8px 0}
.box.crit{border-left:5px solid #c33}.box.ok{border-left:5px solid #2a7}
.muted{color:#778}.small{font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px;margin:8px 0}
.stat{background:#fff;padding:10px 14px;box-shadow:0 1px 2px #0001}.stat b{display:block;font-size:22px}
a{color:#2456c7}
"#;

/// Seconds between a page's reloads.
const REFRESH_S: u32 = 5;

fn layout(title: &str, current: &str, snap: &Snapshot, body: Markup) -> Markup {
    let tab = |href: &str, name: &str| {
        html! { a href=(href) class=@if name == current { "on" } { (name) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_S);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Strata console" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    span.brand { "STRATA" }
                    (tab("/", "Overview"))
                    (tab("/topics", "Topics"))
                    (tab("/groups", "Groups"))
                    (tab("/events", "Events"))
                    span.muted.small style="margin-left:auto" {
                        @if snap.updated_ms > 0 {
                            "updated " (((now_ms() - snap.updated_ms).max(0) as f64 / 1000.0).round()) " s ago"
                        } @else { "waiting for the first look at the cluster" }
                    }
                }
                main {
                    @if let Some(e) = &snap.error {
                        div.box.crit id="poll-error" {
                            b { "The console cannot see the cluster: " } (e)
                            @if snap.updated_ms > 0 { span.muted { " (what follows is the last picture)" } }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn state_pill(state: BrokerState) -> Markup {
    let class = match state {
        BrokerState::Up => "pill ok",
        _ => "pill crit",
    };
    html! { span class=(class) { (state.label()) } }
}

fn severity_pill(s: Severity) -> Markup {
    let (class, label) = match s {
        Severity::Info => ("pill ok", "info"),
        Severity::Warning => ("pill warn", "warning"),
        Severity::Critical => ("pill crit", "critical"),
    };
    html! { span class=(class) { (label) } }
}

fn time_of(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.replace('T', " ").trim_end_matches('Z').to_string() + " UTC"
}

fn events_table(events: impl Iterator<Item = Event>) -> Markup {
    html! {
        table #events {
            tr { th { "Time" } th { "Severity" } th { "Kind" } th { "Event" } }
            @for e in events {
                tr { td.small { (time_of(e.at_ms)) } td { (severity_pill(e.severity)) } td { (e.kind) } td { (e.message) } }
            }
        }
    }
}

/// A line chart of records per second, as inline SVG.
fn chart(samples: &[Sample], width: u32, height: u32, id: &str) -> Markup {
    let max = samples
        .iter()
        .map(|s| s.records_per_sec)
        .fold(0.0f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max * 1.15 };
    let n = samples.len().max(2) - 1;
    let (w, h) = (f64::from(width), f64::from(height));
    let points: Vec<String> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let x = 40.0 + (w - 48.0) * i as f64 / n as f64;
            let y = 6.0 + (h - 24.0) * (1.0 - s.records_per_sec / top);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let last = samples.last().map_or(0.0, |s| s.records_per_sec);
    html! {
        svg id=(id) width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) role="img"
            aria-label=(format!("records per second, now {last:.0}")) style="background:#fff;box-shadow:0 1px 2px #0001" {
            line x1="40" y1=(h - 18.0) x2=(w - 8.0) y2=(h - 18.0) stroke="#ccd" {}
            text x="4" y="14" font-size="10" fill="#778" { (format!("{top:.0}")) }
            text x="4" y=(h - 18.0) font-size="10" fill="#778" { "0" }
            text x="40" y=(h - 4.0) font-size="10" fill="#778" {
                @if samples.len() >= 2 {
                    (format!("last {} s, records/s (now {last:.0})", (samples[samples.len()-1].at_ms - samples[0].at_ms) / 1000))
                } @else { "collecting samples" }
            }
            @if points.len() >= 2 {
                polyline points=(points.join(" ")) fill="none" stroke="#2456c7" stroke-width="2" {}
            }
        }
    }
}

/// The sum of every topic's series, by sample time.
fn total_series(throughput: &BTreeMap<String, VecDeque<Sample>>) -> Vec<Sample> {
    let mut by_time: BTreeMap<i64, f64> = BTreeMap::new();
    for series in throughput.values() {
        for s in series {
            *by_time.entry(s.at_ms).or_default() += s.records_per_sec;
        }
    }
    by_time
        .into_iter()
        .map(|(at_ms, records_per_sec)| Sample {
            at_ms,
            records_per_sec,
        })
        .collect()
}

fn no_picture(snap: &Snapshot, current: &str) -> Markup {
    layout(
        current,
        current,
        snap,
        html! { p.muted { "No look at the cluster has succeeded yet." } },
    )
}

/// `/`: health, brokers, total throughput, recent events.
pub fn overview(snap: &Snapshot) -> Markup {
    let Some(c) = &snap.cluster else {
        return no_picture(snap, "Overview");
    };
    let problems = health_lines(c);
    let partitions: usize = c.topics.iter().map(|t| t.partitions.len()).sum();
    let up = c
        .brokers
        .iter()
        .filter(|b| b.state == BrokerState::Up)
        .count();
    let total = total_series(&snap.throughput);
    layout(
        "Overview",
        "Overview",
        snap,
        html! {
            h1 { "Cluster " (c.cluster_id.as_deref().unwrap_or("?")) }
            @if problems.is_empty() {
                div.box.ok #health { b { "Healthy. " } "Every broker is up and every partition fully replicated." }
            } @else {
                div.box.crit #health {
                    b { "Unhealthy" }
                    ul { @for p in &problems { li { (p) } } }
                    @if !c.health.under_replicated_partitions.is_empty() || !c.health.offline_partitions.is_empty() {
                        a href="/partitions" { "every affected partition" }
                    }
                }
            }
            div.grid {
                div.stat { b #brokers-up { (up) "/" (c.brokers.len()) } "brokers up" }
                div.stat { b #controller { (c.controller.map_or("none".to_string(), |id| id.to_string())) } "active controller" }
                div.stat { b { (c.topics.len()) } "topics" }
                div.stat { b { (partitions) } "partitions" }
                div.stat { b { (c.health.under_replicated_partitions.len()) } "under-replicated" }
                div.stat { b { (c.health.offline_partitions.len()) } "offline" }
                div.stat { b #groups-count { (snap.groups.len()) } "consumer groups" }
            }
            h2 { "Brokers" }
            table #brokers {
                tr { th { "Broker" } th { "Address" } th { "Rack" } th { "State" } th.num { "Leaders" } th.num { "Replicas" } th.num { "Size" } }
                @for b in &c.brokers {
                    tr id=(format!("broker-{}", b.id)) class=@if b.state != BrokerState::Up { "down" } {
                        td { (b.id) @if c.controller == Some(b.id) { " " span.muted.small { "(controller)" } } }
                        td { @if b.port > 0 { (b.host) ":" (b.port) } @else { "-" } }
                        td { (b.rack.as_deref().unwrap_or("-")) }
                        td { (state_pill(b.state)) }
                        td.num { (b.leaders) } td.num { (b.replicas) }
                        td.num { (b.size_bytes.map_or("?".to_string(), bytes)) }
                    }
                }
            }
            @if let Some(q) = &c.quorum {
                h2 { "Controller quorum" }
                p.muted { "leader " (q.leader) " · epoch " (q.epoch) " · high watermark " (q.high_watermark) }
                table #quorum {
                    tr { th { "Voter" } th.num { "Log end" } th.num { "Lag" } th { "Last contact" } }
                    @for v in &q.voters {
                        tr id=(format!("voter-{}", v.id)) class=@if !v.reachable { "down" } {
                            td { (v.id) @if v.id == q.leader { " " span.muted.small { "(leader)" } } }
                            td.num { (v.log_end_offset) } td.num { (v.lag) }
                            td { @match v.last_contact_ms_ago {
                                Some(ms) if v.reachable => { (ms) " ms ago" }
                                Some(ms) => { span.pill.crit { "unreachable" } " " (ms / 1000) " s ago" }
                                None => { span.pill.crit { "never heard from" } }
                            } }
                        }
                    }
                }
            }
            h2 { "Throughput, all topics" }
            (chart(&total, 900, 160, "throughput-total"))
            h2 { "Recent events " a.small href="/events" { "all" } }
            @if snap.events.is_empty() {
                p.muted { "No change seen since the console started." }
            } @else {
                (events_table(snap.events.iter().rev().take(15).cloned()))
            }
        },
    )
}

fn topic_status(t: &TopicView) -> Markup {
    html! {
        @if t.offline() > 0 { span.pill.crit { (t.offline()) " offline" } " " }
        @if t.partitions.iter().any(|p| p.under_min_isr) { span.pill.crit { "under min ISR" } " " }
        @if t.under_replicated() > 0 { span.pill.warn { (t.under_replicated()) " under-replicated" } }
        @if t.offline() == 0 && t.under_replicated() == 0 { span.pill.ok { "ok" } }
    }
}

fn topic_href(name: &str) -> String {
    format!(
        "/topics/{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    )
}

fn group_href(name: &str) -> String {
    format!(
        "/groups/{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// `/topics`: every topic with its state, size and throughput.
pub fn topics(snap: &Snapshot) -> Markup {
    let Some(c) = &snap.cluster else {
        return no_picture(snap, "Topics");
    };
    layout(
        "Topics",
        "Topics",
        snap,
        html! {
            h1 { "Topics" }
            table #topics {
                tr { th { "Topic" } th.num { "Partitions" } th.num { "Replicas" } th { "Status" } th.num { "Records" } th.num { "Size" } th.num { "Records/s" } th { "Last minutes" } }
                @for t in &c.topics {
                    @let series: Vec<Sample> = snap.throughput.get(&t.name).map(|s| s.iter().copied().collect()).unwrap_or_default();
                    tr id=(format!("topic-{}", t.name)) {
                        td { a href=(topic_href(&t.name)) { (t.name) } @if t.internal { " " span.muted.small { "internal" } } }
                        td.num { (t.partitions.len()) } td.num { (t.replication_factor) }
                        td { (topic_status(t)) }
                        td.num { (t.records().map_or("?".to_string(), |r| r.to_string())) }
                        td.num { (t.size_bytes.map_or("?".to_string(), bytes)) }
                        td.num { (series.last().map_or("-".to_string(), |s| format!("{:.0}", s.records_per_sec))) }
                        td { (chart(&series, 220, 44, &format!("spark-{}", t.name))) }
                    }
                }
            }
        },
    )
}

/// `/topics/<name>`: one topic's partitions and throughput; `None` when there is no such topic.
pub fn topic(snap: &Snapshot, name: &str) -> Option<Markup> {
    let c = snap.cluster.as_ref()?;
    let t = c.topics.iter().find(|t| t.name == name)?;
    let down = &c.health.brokers_down;
    let series: Vec<Sample> = snap
        .throughput
        .get(name)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    Some(layout(
        name,
        "Topics",
        snap,
        html! {
            h1 { "Topic " (t.name) " " (topic_status(t)) }
            p.muted { "id " (t.topic_id) " · " (t.partitions.len()) " partitions · replication factor " (t.replication_factor)
                " · min.insync.replicas " (t.min_insync_replicas.map_or("?".to_string(), |m| m.to_string()))
                " · " (t.size_bytes.map_or("?".to_string(), bytes)) }
            (chart(&series, 900, 160, "throughput-topic"))
            h2 { "Partitions" }
            table #partitions {
                tr { th.num { "Partition" } th { "Leader" } th.num { "Epoch" } th { "Replicas" } th { "ISR" } th.num { "Start" } th.num { "End" } th.num { "Size" } th { "Status" } }
                @for p in &t.partitions {
                    tr class=@if p.offline { "down" } {
                        td.num { (p.partition) }
                        td { (p.leader.map_or("none".to_string(), |l| l.to_string())) }
                        td.num { (p.leader_epoch) }
                        td { @for (i, r) in p.replicas.iter().enumerate() {
                            @if i > 0 { "," }
                            @if down.contains(r) { span.pill.crit { (r) " down" } } @else { (r) }
                        } }
                        td { (crate::admin::output::ids(&p.isr)) }
                        td.num { (p.start_offset.map_or("?".to_string(), |o| o.to_string())) }
                        td.num { (p.end_offset.map_or("?".to_string(), |o| o.to_string())) }
                        td.num { (p.size_bytes.map_or("?".to_string(), bytes)) }
                        td {
                            @if p.offline { span.pill.crit { "offline" } }
                            @else if p.under_min_isr { span.pill.crit { "under min ISR" } }
                            @else if p.under_replicated { span.pill.warn { "under-replicated" } }
                            @else { span.pill.ok { "ok" } }
                        }
                    }
                }
            }
        },
    ))
}

/// `/partitions`: every partition with a problem (offline, under min ISR, under-replicated),
/// across topics, the worst first.
pub fn partitions(snap: &Snapshot) -> Markup {
    let Some(c) = &snap.cluster else {
        return no_picture(snap, "Partitions");
    };
    let down = &c.health.brokers_down;
    let mut rows: Vec<(&str, &crate::admin::view::PartitionView)> = c
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.offline || p.under_min_isr || p.under_replicated)
                .map(move |p| (t.name.as_str(), p))
        })
        .collect();
    rows.sort_by_key(|(t, p)| (!p.offline, !p.under_min_isr, *t, p.partition));
    layout(
        "Partitions",
        "",
        snap,
        html! {
            h1 { "Partitions with a problem" }
            @if rows.is_empty() {
                p #no-problems { "None: every partition has a leader and its full ISR." }
            } @else {
                table #problem-partitions {
                    tr { th { "Topic" } th.num { "Partition" } th { "Leader" } th { "Replicas" } th { "ISR" } th { "Problem" } }
                    @for (t, p) in &rows {
                        tr class=@if p.offline { "down" } {
                            td { a href=(topic_href(t)) { (t) } }
                            td.num { (p.partition) }
                            td { (p.leader.map_or("none".to_string(), |l| l.to_string())) }
                            td { @for (i, r) in p.replicas.iter().enumerate() {
                                @if i > 0 { "," }
                                @if down.contains(r) { span.pill.crit { (r) " down" } } @else { (r) }
                            } }
                            td { (crate::admin::output::ids(&p.isr)) }
                            td {
                                @if p.offline { span.pill.crit { "offline" } }
                                @else if p.under_min_isr { span.pill.crit { "under min ISR" } }
                                @else { span.pill.warn { "under-replicated" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `/groups`: every group with state, members and lag.
pub fn groups(snap: &Snapshot) -> Markup {
    layout(
        "Groups",
        "Groups",
        snap,
        html! {
            h1 { "Consumer groups" }
            @if snap.groups.is_empty() {
                p.muted { "No groups." }
            } @else {
                table #groups {
                    tr { th { "Group" } th { "State" } th { "Type" } th.num { "Members" } th.num { "Lag" } th.num { "Coordinator" } }
                    @for g in &snap.groups {
                        @let d = snap.group_details.get(&g.group);
                        tr id=(format!("group-{}", g.group)) {
                            td { a href=(group_href(&g.group)) { (g.group) } }
                            td { (g.state) }
                            td { (g.group_type) " " span.muted { (g.protocol_type) } }
                            td.num { (d.map_or("?".to_string(), |d| d.members.len().to_string())) }
                            td.num.lag { (d.map_or("?".to_string(), |d| d.total_lag.to_string())) }
                            td.num { (g.coordinator) }
                        }
                    }
                }
            }
        },
    )
}

/// `/groups/<id>`: members and lag per partition; `None` when the group is not known.
pub fn group(snap: &Snapshot, id: &str) -> Option<Markup> {
    let g = snap.group_details.get(id)?;
    Some(layout(
        id,
        "Groups",
        snap,
        html! {
            h1 { "Group " (g.group) }
            p.muted { "state " (g.state) " · " (g.protocol_type) " " (g.assignor) " · coordinator " (g.coordinator) }
            div.grid { div.stat { b #total-lag { (g.total_lag) } "records of lag" } div.stat { b { (g.members.len()) } "members" } }
            h2 { "Members" }
            @if g.members.is_empty() { p.muted { "No members: nothing consumes for this group now." } }
            @else {
                table #members {
                    tr { th { "Member" } th { "Client" } th { "Host" } th { "Assignment" } }
                    @for m in &g.members {
                        tr { td.small { (m.member_id) } td { (m.client_id) } td { (m.host) }
                            td { @for (t, ps) in &m.assignment { (t) ":" (crate::admin::output::ids(ps)) " " } } }
                    }
                }
            }
            h2 { "Lag per partition" }
            table #lag {
                tr { th { "Topic" } th.num { "Partition" } th.num { "Committed" } th.num { "End" } th.num { "Lag" } th { "Member" } }
                @for p in &g.partitions {
                    tr { td { (p.topic) } td.num { (p.partition) }
                        td.num { (p.committed.map_or("-".to_string(), |o| o.to_string())) }
                        td.num { (p.end.map_or("?".to_string(), |o| o.to_string())) }
                        td.num { (p.lag.map_or("?".to_string(), |o| o.to_string())) }
                        td.small { (p.member.as_deref().unwrap_or("-")) } }
                }
            }
        },
    ))
}

/// `/events`: every event kept, newest first.
pub fn events(snap: &Snapshot) -> Markup {
    layout(
        "Events",
        "Events",
        snap,
        html! {
            h1 { "Cluster events" }
            p.muted { "Changes seen between the console's looks at the cluster (every few seconds), newest first." }
            @if snap.events.is_empty() { p.muted { "No change seen since the console started." } }
            @else { (events_table(snap.events.iter().rev().cloned())) }
        },
    )
}

/// A 404 page.
pub fn not_found(snap: &Snapshot, what: &str) -> Markup {
    layout(
        "Not found",
        "",
        snap,
        html! { h1 { "Not found" } p { (what) } },
    )
}
