//! The web console (`console.listen`): pages for people and a JSON API for scripts, served by
//! the broker over HTTP/1.1 (hyper), or HTTPS with the broker's certificate
//! (`console.ssl.enabled`). Read-only: it shows what the operator commands show and changes
//! nothing.
//!
//! A [`monitor::Monitor`] looks at the cluster every `console.poll.interval.ms` through the
//! Kafka protocol, as any admin client would, from this broker's inter-broker listener with
//! this broker's own credentials (so it sees the whole cluster, every group at its
//! coordinator, whatever the listeners' security); pages and API answers read its last
//! picture and never wait on the cluster.
//!
//! | path | what |
//! | --- | --- |
//! | `/` | health, brokers, total throughput, recent events |
//! | `/topics`, `/topics/<name>` | topics; one topic's partitions and throughput |
//! | `/groups`, `/groups/<id>` | groups; one group's members and lag |
//! | `/partitions` | every partition with a problem, the worst first |
//! | `/events` | the events kept |
//! | `/api/cluster` | [`crate::admin::view::ClusterView`] as JSON |
//! | `/api/health` | the health; 200 when healthy, 503 when not |
//! | `/api/topics`, `/api/topics/<name>` | topics as JSON |
//! | `/api/groups`, `/api/groups/<id>` | groups (listed; described) as JSON |
//! | `/api/throughput` | records/s per topic, recent samples |
//! | `/api/events` | recent events |

pub mod events;
pub mod monitor;
pub mod pages;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;

use monitor::{Monitor, Snapshot};

/// A response body.
type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        r.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
    }
    r
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => respond(status, "application/json", body),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

fn page(markup: maud::Markup) -> Response<Body> {
    respond(
        StatusCode::OK,
        "text/html; charset=utf-8",
        markup.into_string(),
    )
}

fn not_found_json(what: String) -> Response<Body> {
    #[derive(Serialize)]
    struct NotFound {
        error: String,
    }
    json(StatusCode::NOT_FOUND, &NotFound { error: what })
}

/// The answer to one request, from the monitor's picture.
pub fn route(monitor: &Monitor, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "the console is read-only: GET only\n",
        );
    }
    // Split first, then decode each segment: a group id may hold a `/` (`%2F` in its link).
    let path = path.trim_end_matches('/');
    let decoded: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    monitor.with(|snap: &Snapshot| match segments.as_slice() {
        [] | [""] => page(pages::overview(snap)),
        ["topics"] => page(pages::topics(snap)),
        ["topics", name] => pages::topic(snap, name).map_or_else(
            || {
                let mut r = page(pages::not_found(snap, &format!("No topic {name:?}.")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            },
            page,
        ),
        ["groups"] => page(pages::groups(snap)),
        ["groups", id] => pages::group(snap, id).map_or_else(
            || {
                let mut r = page(pages::not_found(snap, &format!("No group {id:?}.")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            },
            page,
        ),
        ["events"] => page(pages::events(snap)),
        ["partitions"] => page(pages::partitions(snap)),
        ["api", "cluster"] => match &snap.cluster {
            Some(c) => json(StatusCode::OK, c),
            None => unavailable(snap),
        },
        ["api", "health"] => match &snap.cluster {
            Some(c) => json(
                if c.health.healthy && snap.error.is_none() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                &c.health,
            ),
            None => unavailable(snap),
        },
        ["api", "topics"] => match &snap.cluster {
            Some(c) => json(StatusCode::OK, &c.topics),
            None => unavailable(snap),
        },
        ["api", "topics", name] => match snap
            .cluster
            .as_ref()
            .and_then(|c| c.topics.iter().find(|t| t.name == *name))
        {
            Some(t) => json(StatusCode::OK, t),
            None => not_found_json(format!("no topic {name:?}")),
        },
        ["api", "groups"] => json(StatusCode::OK, &snap.groups),
        ["api", "groups", id] => match snap.group_details.get(*id) {
            Some(g) => json(StatusCode::OK, g),
            None => not_found_json(format!("no group {id:?}")),
        },
        ["api", "throughput"] => json(StatusCode::OK, &snap.throughput),
        ["api", "events"] => json(StatusCode::OK, &snap.events),
        _ => {
            let mut r = page(pages::not_found(snap, &format!("Nothing at {path:?}.")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    })
}

fn unavailable(snap: &Snapshot) -> Response<Body> {
    #[derive(Serialize)]
    struct Unavailable<'a> {
        error: &'a str,
    }
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        &Unavailable {
            error: snap
                .error
                .as_deref()
                .unwrap_or("no look at the cluster has succeeded yet"),
        },
    )
}

/// Serves the console on `listener` (HTTPS with `tls`) and keeps a monitor looking at the
/// cluster through `client`, until `stop` is set.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<crate::tls::ReloadingAcceptor>>,
    client: crate::admin::client::AdminClient,
    poll: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let monitor = Arc::new(Monitor::default());
    tokio::spawn(monitor.clone().run(client, poll, stop.clone()));
    let mut stop_accepting = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = async { let _ = stop_accepting.wait_for(|s| *s).await; } => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let monitor = monitor.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => http(stream, monitor, stop).await,
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), handshake).await
                    {
                        http(s, monitor, stop).await;
                    }
                }
            }
        });
    }
}

/// HTTP/1.1 on one connection until it closes or the console stops.
async fn http<S>(stream: S, monitor: Arc<Monitor>, mut stop: tokio::sync::watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = route(&monitor, req.method(), req.uri().path());
        async move { Ok::<_, Infallible>(r) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::view::{BrokerState, BrokerView, ClusterView, Health};

    fn cluster(down: bool) -> ClusterView {
        ClusterView {
            cluster_id: Some("c1".into()),
            controller: Some(1),
            quorum: None,
            brokers: vec![BrokerView {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: Some("r1".into()),
                state: if down {
                    BrokerState::Fenced
                } else {
                    BrokerState::Up
                },
                leaders: 0,
                replicas: 0,
                size_bytes: Some(0),
            }],
            topics: vec![],
            health: Health {
                healthy: !down,
                brokers_down: if down { vec![1] } else { vec![] },
                ..Health::default()
            },
        }
    }

    fn body(r: Response<Body>) -> String {
        use http_body_util::BodyExt;
        let bytes = block_on(r.into_body().collect()).unwrap();
        String::from_utf8(bytes.to_bytes().to_vec()).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn pages_and_api_answer_from_the_picture() {
        let m = Monitor::default();
        // Before any look: the API says so, the overview says it is waiting.
        let r = route(&m, &Method::GET, "/api/cluster");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(route(&m, &Method::GET, "/")).contains("No look at the cluster"));
        m.update(cluster(false), vec![], Default::default(), 1_000);
        let r = route(&m, &Method::GET, "/api/health");
        assert_eq!(r.status(), StatusCode::OK);
        let html = body(route(&m, &Method::GET, "/"));
        assert!(html.contains("Healthy."), "{html}");
        m.update(cluster(true), vec![], Default::default(), 3_000);
        assert_eq!(
            route(&m, &Method::GET, "/api/health").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let html = body(route(&m, &Method::GET, "/"));
        assert!(
            html.contains("DOWN (fenced)") && html.contains("broker 1 is down"),
            "{html}"
        );
        assert_eq!(
            route(&m, &Method::GET, "/topics/nope").status(),
            StatusCode::NOT_FOUND
        );
        // A group id with a slash, as its link encodes it.
        let mut details = std::collections::BTreeMap::new();
        let group = crate::admin::group::GroupView {
            group: "team/a".into(),
            state: "Empty".into(),
            protocol_type: "consumer".into(),
            assignor: String::new(),
            coordinator: String::new(),
            members: vec![],
            partitions: vec![],
            total_lag: 7,
        };
        details.insert("team/a".to_string(), group);
        m.update_groups(vec![], details);
        let r = route(&m, &Method::GET, "/api/groups/team%2Fa");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body(r).contains("\"total_lag\": 7"));
        assert_eq!(
            route(&m, &Method::GET, "/groups/team%2Fa").status(),
            StatusCode::OK
        );
        assert_eq!(
            route(&m, &Method::POST, "/api/cluster").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn names_are_escaped() {
        let m = Monitor::default();
        let mut c = cluster(false);
        c.brokers[0].rack = Some("<script>alert(1)</script>".into());
        m.update(c, vec![], Default::default(), 1);
        let html = body(route(&m, &Method::GET, "/"));
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
