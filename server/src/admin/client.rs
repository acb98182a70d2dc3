//! `AdminClient`: the operator commands' and the console's Kafka client. It bootstraps from
//! any of the brokers given, learns the cluster's brokers from Metadata, keeps one connection
//! per broker, and asks each broker with ApiVersions which versions it serves, so every request
//! goes out at the newest version both sides know (the commands work against Strata and against
//! any Kafka cluster).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponse;
use kafka_protocol::messages::{ApiKey, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::cluster::kafka_client::{KafkaClientError, KafkaConnection};
use crate::cluster::link::LinkSecurity;

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No bootstrap server could be reached.
    #[error("no broker of {bootstrap} answers ({detail})")]
    Unreachable {
        /// The servers tried.
        bootstrap: String,
        /// The last failure.
        detail: String,
    },
    /// A connection or a response failed.
    #[error("{broker}: {source}")]
    Client {
        /// The broker asked (`host:port`).
        broker: String,
        /// What failed.
        #[source]
        source: KafkaClientError,
    },
    /// The cluster answered with a Kafka error code.
    #[error("{what}: {name}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// What was asked.
        what: String,
        /// The error's name (`UNKNOWN_TOPIC_OR_PARTITION`).
        name: String,
        /// The wire code.
        code: i16,
        /// The broker's message, if it sent one.
        message: Option<String>,
    },
    /// The broker does not serve any version of an API this tool can speak.
    #[error("{broker} does not serve {api:?} at version {min} or later (it serves {served})")]
    Version {
        /// The broker.
        broker: String,
        /// The API.
        api: ApiKey,
        /// The oldest version this tool speaks.
        min: i16,
        /// What the broker serves.
        served: String,
    },
    /// The operator asked for something that does not exist or cannot be done.
    #[error("{0}")]
    Usage(String),
}

/// The result of an admin operation.
pub type AdminResult<T> = Result<T, AdminError>;

impl AdminError {
    /// The error for a non-zero Kafka error code about `what`.
    pub fn kafka(what: impl Into<String>, code: i16, message: Option<&str>) -> AdminError {
        AdminError::Kafka {
            what: what.into(),
            name: error_name(code),
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }
    }
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`), as its tools print it.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(kafka_protocol::error::ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_{c}"),
        Some(e) => {
            // `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
            let debug = format!("{e:?}");
            let mut out = String::with_capacity(debug.len() + 8);
            for (i, c) in debug.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Fails with the Kafka error of `code` about `what`, unless it is 0.
pub fn check(code: i16, what: impl FnOnce() -> String, message: Option<&str>) -> AdminResult<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(AdminError::kafka(what(), code, message))
    }
}

/// A topic name on the wire.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A string on the wire.
pub fn wire_str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

struct Connection {
    conn: KafkaConnection,
    /// API key → (oldest, newest) version the broker serves.
    versions: HashMap<i16, (i16, i16)>,
}

/// A Kafka admin client over one connection per broker.
pub struct AdminClient {
    bootstrap: String,
    link: LinkSecurity,
    client_id: String,
    timeout: Duration,
    connections: HashMap<String, Connection>,
    /// Broker id → `host:port`, from the last Metadata answer.
    brokers: BTreeMap<i32, String>,
    /// The bootstrap broker that answered first: where cluster-wide requests go.
    any: Option<String>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("bootstrap", &self.bootstrap)
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl AdminClient {
    /// A client of the cluster that `bootstrap` (`host:port[,host:port...]`) belongs to; it
    /// connects on first use.
    pub fn new(bootstrap: &str, link: LinkSecurity, client_id: &str) -> AdminClient {
        AdminClient {
            bootstrap: bootstrap.to_string(),
            link,
            client_id: client_id.to_string(),
            timeout: Duration::from_secs(15),
            connections: HashMap::new(),
            brokers: BTreeMap::new(),
            any: None,
        }
    }

    /// How long one request may take (15 s unless set).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Broker id → `host:port`, as the last Metadata answer listed them.
    pub fn brokers(&self) -> &BTreeMap<i32, String> {
        &self.brokers
    }

    async fn open(&mut self, addr: &str) -> AdminResult<()> {
        if self.connections.contains_key(addr) {
            return Ok(());
        }
        let client = |source| AdminError::Client {
            broker: addr.to_string(),
            source,
        };
        let mut conn = KafkaConnection::connect(addr, &self.client_id, &self.link)
            .await
            .map_err(client)?;
        // v0 is served by every broker since Kafka 0.10 and needs no client software name.
        let r: ApiVersionsResponse = conn
            .request(
                ApiKey::ApiVersions,
                0,
                &ApiVersionsRequest::default(),
                self.timeout,
            )
            .await
            .map_err(client)?;
        check(r.error_code, || format!("ApiVersions of {addr}"), None)?;
        let versions = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        self.connections
            .insert(addr.to_string(), Connection { conn, versions });
        Ok(())
    }

    /// The address of a bootstrap broker that answers.
    pub async fn any_broker(&mut self) -> AdminResult<String> {
        if let Some(a) = &self.any
            && self.connections.contains_key(a)
        {
            return Ok(a.clone());
        }
        let mut last = String::from("no address given");
        let candidates: Vec<String> = self
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .chain(self.brokers.values().cloned())
            .collect();
        for addr in candidates {
            match self.open(&addr).await {
                Ok(()) => {
                    self.any = Some(addr.clone());
                    return Ok(addr);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(AdminError::Unreachable {
            bootstrap: self.bootstrap.clone(),
            detail: last,
        })
    }

    /// The address of broker `id`.
    pub async fn broker_addr(&mut self, id: i32) -> AdminResult<String> {
        if !self.brokers.contains_key(&id) {
            self.metadata(Some(&[])).await?;
        }
        self.brokers
            .get(&id)
            .cloned()
            .ok_or_else(|| AdminError::Usage(format!("broker {id} is not in the cluster")))
    }

    /// The version of `key` to use with `addr`: the newest both serve, at least `min`.
    pub async fn version(
        &mut self,
        addr: &str,
        key: ApiKey,
        min: i16,
        max: i16,
    ) -> AdminResult<i16> {
        self.open(addr).await?;
        let served = self
            .connections
            .get(addr)
            .and_then(|c| c.versions.get(&(key as i16)).copied());
        match served {
            Some((lo, hi)) if hi >= min && lo <= max => Ok(hi.min(max)),
            other => Err(AdminError::Version {
                broker: addr.to_string(),
                api: key,
                min,
                served: other.map_or("none".to_string(), |(lo, hi)| format!("{lo}-{hi}")),
            }),
        }
    }

    /// Sends `req` to `addr` at `version`. A failed connection is dropped (the next request
    /// reconnects).
    pub async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        addr: &str,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> AdminResult<Resp> {
        self.open(addr).await?;
        let timeout = self.timeout;
        let Some(c) = self.connections.get_mut(addr) else {
            return Err(AdminError::Usage(format!("{addr}: not connected")));
        };
        match c.conn.request(key, version, req, timeout).await {
            Ok(r) => Ok(r),
            Err(source) => {
                self.connections.remove(addr);
                if self.any.as_deref() == Some(addr) {
                    self.any = None;
                }
                Err(AdminError::Client {
                    broker: addr.to_string(),
                    source,
                })
            }
        }
    }

    /// Metadata of `topics` (`None`: every topic; `Some(&[])`: brokers only); remembers the
    /// brokers.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> AdminResult<MetadataResponse> {
        let addr = self.any_broker().await?;
        let version = self.version(&addr, ApiKey::Metadata, 1, 12).await?;
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut m = MetadataRequestTopic::default();
                    m.name = Some(topic_name(t));
                    m
                })
                .collect()
        });
        req.allow_auto_topic_creation = false;
        let md: MetadataResponse = self.send(&addr, ApiKey::Metadata, version, &req).await?;
        self.brokers = md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        Ok(md)
    }

    /// The coordinator of group `group` (`key_type` 0) or transactional id (1): its address.
    pub async fn coordinator(&mut self, key: &str, key_type: i8) -> AdminResult<String> {
        let addr = self.any_broker().await?;
        let version = self.version(&addr, ApiKey::FindCoordinator, 1, 3).await?;
        let mut req = FindCoordinatorRequest::default();
        req.key = wire_str(key);
        req.key_type = key_type;
        let mut last = None;
        // A coordinator just elected answers COORDINATOR_NOT_AVAILABLE for a moment.
        for _ in 0..20 {
            let r: FindCoordinatorResponse = self
                .send(&addr, ApiKey::FindCoordinator, version, &req)
                .await?;
            if r.error_code == 0 {
                let at = format!("{}:{}", r.host.as_str(), r.port);
                self.brokers.insert(r.node_id.0, at.clone());
                return Ok(at);
            }
            last = Some(AdminError::kafka(
                format!("finding the coordinator of {key:?}"),
                r.error_code,
                r.error_message.as_deref(),
            ));
            if r.error_code != 15 && r.error_code != 14 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(last.unwrap_or_else(|| AdminError::Usage(format!("no coordinator for {key:?}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_read_as_kafkas_tools_print_them() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30000), "UNKNOWN_ERROR_30000");
    }
}
