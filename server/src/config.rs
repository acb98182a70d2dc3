//! Broker configuration with Kafka's property names, from a TOML file (`--config`) and
//! `--set key=value` overrides. Unknown or invalid settings are an error at start.
//!
//! In the TOML file a property may be written quoted (`"log.dirs" = "./data"`) or as nested
//! tables (`[log] dirs = "./data"`); both flatten to the dotted name.

use std::net::SocketAddr;
use std::path::PathBuf;

use strata_engine::{CleanupPolicy, FlushPolicy, LogConfig};

/// `replica.selector.class` for rack-aware reads (KIP-392).
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
/// `replica.selector.class` for reads from the leader only (Kafka's default behaviour).
pub const LEADER_SELECTOR: &str = "org.apache.kafka.common.replica.LeaderSelector";

/// A configuration error, naming the property.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The property does not exist.
    #[error("unknown property `{0}`")]
    Unknown(String),
    /// The value does not parse or is out of bounds.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    Invalid {
        /// Property name.
        key: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The file could not be read or parsed.
    #[error("config file {path:?}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The broker's configuration. Field comments give the property name and default.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`. Default: 1.
    pub node_id: i32,
    /// `process.roles`. Default: `broker,controller`.
    pub process_roles: String,
    /// `log.dirs`: the data directory. Default: `./data`.
    pub log_dir: PathBuf,
    /// `listeners`: where the Kafka listeners bind (`NAME://host:port,...`). Default:
    /// `PLAINTEXT://127.0.0.1:9092`. See `listener.rs`.
    pub listeners: Vec<crate::listener::Endpoint>,
    /// The first listener's address (the one a cluster registers and peers replicate from).
    pub listener: SocketAddr,
    /// `advertised.listeners`, by listener name. Default: each listener's own address.
    pub advertised_listeners: Vec<crate::listener::Endpoint>,
    /// The first listener's advertised address.
    pub advertised: (String, u16),
    /// `listener.security.protocol.map`. Default: a listener named after a protocol uses it.
    pub listener_protocols: std::collections::BTreeMap<String, crate::listener::SecurityProtocol>,
    /// `ssl.*`: TLS of SSL listeners (`tls.rs`).
    pub ssl: crate::tls::SslSettings,
    /// `listener.name.<listener>.ssl.client.auth`, by listener name.
    pub listener_client_auth: std::collections::BTreeMap<String, crate::tls::ClientAuth>,
    /// `sasl.enabled.mechanisms`. Default: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512.
    pub sasl_mechanisms: Vec<crate::sasl::Mechanism>,
    /// `connections.max.idle.ms`: a connection without a request for this long is closed
    /// (`None`: never, Kafka's -1). Default: 10 minutes, as Kafka.
    pub connections_max_idle: Option<std::time::Duration>,
    /// `connections.max.reauth.ms` (KIP-368): a SASL session lasts this long; the client must
    /// re-authenticate on the connection before it ends. Default: 0 (`None`, for as long as
    /// the connection), as Kafka.
    pub connections_max_reauth: Option<std::time::Duration>,
    /// `quota.window.num`: windows a client quota's rate is measured over. Default: 11.
    pub quota_window_num: u32,
    /// `quota.window.size.seconds`: the length of each. Default: 1 s.
    pub quota_window: std::time::Duration,
    /// `request.read.timeout.ms` (Strata's): a request frame must arrive whole within this long
    /// of its first byte. Default: 30 s.
    pub request_read_timeout: std::time::Duration,
    /// `ssl.keystore.reload.interval.ms` (Strata's): how often the keystore and truststore files
    /// are checked for a change (a renewed certificate). Default: 30 s.
    pub ssl_reload_interval: std::time::Duration,
    /// `ssl.principal.mapping.rules`: a client certificate's DN to a principal name. Default:
    /// none (`DEFAULT`: the DN).
    pub ssl_principal_rules: Vec<crate::tls::PrincipalRule>,
    /// `max.connection.creation.rate` (KIP-612): new connections per second, broker-wide;
    /// faster ones wait before they are served. Default: unlimited.
    pub max_connection_creation_rate: u64,
    /// `max.connections`: client connections at most, over all listeners. Default: unlimited.
    pub max_connections: usize,
    /// `max.connections.per.ip`. Default: unlimited.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: `host:count,...` (addresses).
    pub max_connections_per_ip_overrides: std::collections::HashMap<std::net::IpAddr, usize>,
    /// `authorizer.class.name`: requests are authorized by ACLs when set (`acl.rs`).
    pub authorizer: bool,
    /// `super.users`: `User:admin;User:ops`.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`. Default: false.
    pub allow_everyone_if_no_acl_found: bool,
    /// PLAIN users by listener name, from `listener.name.<listener>.plain.sasl.jaas.config`.
    pub plain_users: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// This broker's own SASL logins, by listener name and mechanism: the `username` and
    /// `password` of `listener.name.<listener>.<mechanism>.sasl.jaas.config`, used to log in
    /// to other brokers' inter-broker listener.
    pub sasl_logins: std::collections::BTreeMap<(String, crate::sasl::Mechanism), (String, String)>,
    /// `inter.broker.listener.name` (or the listener named by `security.inter.broker.protocol`):
    /// the listener brokers replicate over, and the address a broker registers. Default: the
    /// first listener.
    pub inter_broker_listener: Option<String>,
    /// `sasl.oauthbearer.*`: how OAUTHBEARER tokens are validated (`oauth.rs`).
    pub oauth: crate::oauth::OAuthSettings,
    /// `sasl.mechanism.inter.broker.protocol`. Default: PLAIN.
    pub sasl_mechanism_inter_broker: crate::sasl::Mechanism,
    /// `controller.listener.names`: the first names the controller listener, whose security
    /// protocol (from `listener.security.protocol.map`) secures every link to a controller;
    /// it binds at this node's address in `controller.quorum.voters`, and is not a Kafka
    /// listener even when `listeners` names it. Default: none (PLAINTEXT).
    pub controller_listener_names: Vec<String>,
    /// `cluster.id`. Default: `strata-cluster`.
    pub cluster_id: String,
    /// `broker.rack`. Default: none.
    pub rack: Option<String>,
    /// `replica.selector.class` is Kafka's `RackAwareReplicaSelector` (KIP-392): a consumer
    /// that names its rack is sent to an in-sync replica in that rack. Default: off (the leader
    /// serves every consumer; followers still serve consumers sent to them).
    pub rack_aware_reads: bool,
    /// `num.partitions` of auto-created topics. Default: 1.
    pub num_partitions: i32,
    /// `default.replication.factor`. Default: 1.
    pub default_replication_factor: i16,
    /// `min.insync.replicas`. Default: 1.
    pub min_insync_replicas: i32,
    /// `auto.create.topics.enable`. Default: true.
    pub auto_create_topics: bool,
    /// `socket.request.max.bytes`: the largest request frame accepted. Default: 100 MiB.
    pub socket_request_max_bytes: usize,
    /// `offsets.topic.num.partitions`. Default: 16.
    pub offsets_topic_partitions: i32,
    /// `group.initial.rebalance.delay.ms`. Default: 3000.
    pub group_initial_rebalance_delay_ms: u64,
    /// `transaction.state.log.num.partitions`. Default: 16 (Kafka: 50).
    pub transaction_state_partitions: i32,
    /// `transaction.state.log.replication.factor` (cluster mode). Default: 3.
    pub transaction_state_replication_factor: i16,
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask
    /// for. Default: 900000.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often the
    /// coordinator looks for transactions past their timeout. Default: 10000.
    pub transaction_abort_interval_ms: u64,
    /// `group.min.session.timeout.ms`. Default: 6000.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`. Default: 1800000.
    pub group_max_session_timeout_ms: i32,
    /// `group.consumer.session.timeout.ms`: how long a consumer group member (KIP-848) may go
    /// without a heartbeat before it is fenced. Default: 45000.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: the heartbeat interval consumer group members
    /// are told to keep. Default: 5000.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `console.listen`: address of the web console and its JSON API; unset or empty
    /// disables it.
    pub console_listen: Option<SocketAddr>,
    /// `console.ssl.enabled`: the console serves HTTPS with the broker's `ssl.keystore.*`
    /// (no client certificate asked for). Default: false.
    pub console_ssl: bool,
    /// `console.poll.interval.ms`: how often the console looks at the cluster. Default: 2000.
    pub console_poll_interval_ms: u64,
    /// `metrics.listen`: address of the Prometheus endpoint; empty disables it.
    /// Default: `127.0.0.1:9644`... unless the port is taken: then the error says so.
    pub metrics_listen: Option<SocketAddr>,
    /// `log.retention.check.interval.ms`. Default: 300000.
    pub retention_check_interval_ms: u64,
    /// `controller.quorum.voters`: `id@host:port,...`. Empty (the default): a standalone broker
    /// that is its own controller, with topics kept in `topics.toml`. Set: a cluster member.
    pub controller_quorum_voters: Vec<(i32, SocketAddr)>,
    /// `broker.session.timeout.ms`: the controller fences a broker silent this long.
    /// Default: 600 (Kafka: 9000).
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`. Default: 100 (Kafka: 2000).
    pub broker_heartbeat_interval_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up this long leaves the ISR.
    /// Default: 10000.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits for data. Default: 500.
    pub replica_fetch_wait_max_ms: u64,
    /// `unclean.leader.election.enable`. Default: false.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`: preferred leaders take their partitions back.
    /// Default: true.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`. Default: 5 (Kafka: 300).
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.return.delay.ms` (Strata's): a returning broker gets its preferred
    /// leaderships back only after being live this long, so that clients' reconnect backoff to
    /// it has run out. Default: 15000.
    pub leader_return_delay_ms: u64,
    /// `broker.replacement.delay.ms` (Strata's): a broker fenced this long is taken as gone,
    /// and the controller re-creates its replicas on live brokers; -1 never. Default: 600000.
    pub broker_replacement_delay_ms: Option<u64>,
    /// `leader.replication.throttled.rate`: bytes per second this broker sends, as leader, to
    /// the out-of-sync followers of throttled replicas (KIP-73). Default: unlimited.
    pub leader_replication_throttled_rate: u64,
    /// `follower.replication.throttled.rate`: bytes per second this broker fetches for its
    /// out-of-sync throttled replicas (KIP-73). Default: unlimited.
    pub follower_replication_throttled_rate: u64,
    /// `offsets.topic.replication.factor` (cluster mode). Default: 3.
    pub offsets_topic_replication_factor: i16,
    /// `controlled.shutdown.timeout.ms`: how long SIGTERM waits for leaderships to move away.
    /// Default: 5000.
    pub controlled_shutdown_timeout_ms: u64,
    /// `inter.broker.address.overrides`: `id@host:port,...`: where this node reaches other
    /// brokers' Kafka listeners to replicate, instead of their advertised address (NAT, or a
    /// fault-injecting proxy in tests). Default: none.
    pub inter_broker_address_overrides: Vec<(i32, SocketAddr)>,
    /// Topic defaults: `log.segment.bytes`, `log.roll.ms`, `log.retention.ms`,
    /// `log.retention.bytes`, `log.index.interval.bytes`, `log.index.size.max.bytes`,
    /// `message.max.bytes`, `log.flush.policy` (`always`|`interval`|`os`),
    /// `log.flush.interval.ms`, `log.cleanup.policy`.
    pub log_defaults: LogConfig,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        let listener: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9092));
        BrokerConfig {
            node_id: 1,
            process_roles: "broker,controller".into(),
            log_dir: PathBuf::from("./data"),
            listeners: vec![crate::listener::Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            listener,
            advertised_listeners: Vec::new(),
            advertised: ("127.0.0.1".into(), 9092),
            listener_protocols: Default::default(),
            ssl: Default::default(),
            sasl_mechanisms: vec![
                crate::sasl::Mechanism::Plain,
                crate::sasl::Mechanism::ScramSha256,
                crate::sasl::Mechanism::ScramSha512,
            ],
            plain_users: Default::default(),
            sasl_logins: Default::default(),
            listener_client_auth: Default::default(),
            quota_window_num: 11,
            quota_window: std::time::Duration::from_secs(1),
            inter_broker_listener: None,
            oauth: Default::default(),
            sasl_mechanism_inter_broker: crate::sasl::Mechanism::Plain,
            controller_listener_names: Vec::new(),
            connections_max_idle: Some(std::time::Duration::from_secs(600)),
            request_read_timeout: std::time::Duration::from_secs(30),
            connections_max_reauth: None,
            ssl_principal_rules: Vec::new(),
            ssl_reload_interval: std::time::Duration::from_secs(30),
            max_connection_creation_rate: crate::cluster::throttle::UNLIMITED,
            max_connections: usize::MAX,
            max_connections_per_ip: usize::MAX,
            max_connections_per_ip_overrides: Default::default(),
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            cluster_id: "strata-cluster".into(),
            rack: None,
            rack_aware_reads: false,
            num_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            auto_create_topics: true,
            socket_request_max_bytes: 100 << 20,
            offsets_topic_partitions: 16,
            group_initial_rebalance_delay_ms: 3000,
            transaction_state_partitions: 16,
            transaction_state_replication_factor: 3,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_interval_ms: 10_000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            metrics_listen: None,
            console_listen: None,
            console_poll_interval_ms: 2000,
            console_ssl: false,
            retention_check_interval_ms: 300_000,
            controller_quorum_voters: Vec::new(),
            broker_session_timeout_ms: 600,
            broker_heartbeat_interval_ms: 100,
            replica_lag_time_max_ms: 10_000,
            replica_fetch_wait_max_ms: 500,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 5_000,
            leader_return_delay_ms: 15_000,
            broker_replacement_delay_ms: Some(600_000),
            leader_replication_throttled_rate: u64::MAX >> 1,
            follower_replication_throttled_rate: u64::MAX >> 1,
            offsets_topic_replication_factor: 3,
            controlled_shutdown_timeout_ms: 5_000,
            inter_broker_address_overrides: Vec::new(),
            log_defaults: LogConfig {
                max_message_bytes: 1_048_588,
                ..LogConfig::default()
            },
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| invalid(key, value, e.to_string()))
}

fn positive<T: PartialOrd + Default + std::str::FromStr>(
    key: &str,
    value: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let v: T = parse(key, value)?;
    if v <= T::default() {
        return Err(invalid(key, value, "must be positive"));
    }
    Ok(v)
}

/// Parses `ssl.client.auth`.
fn client_auth(key: &str, v: &str) -> Result<crate::tls::ClientAuth, ConfigError> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "none" => crate::tls::ClientAuth::None,
        "requested" => crate::tls::ClientAuth::Requested,
        "required" => crate::tls::ClientAuth::Required,
        _ => return Err(invalid(key, v, "expected none, requested or required")),
    })
}

/// Parses `controller.quorum.voters`: `1@127.0.0.1:19093,2@127.0.0.1:19094`.
fn parse_voters(key: &str, value: &str) -> Result<Vec<(i32, SocketAddr)>, ConfigError> {
    let mut voters = Vec::new();
    for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (id, addr) = v
            .split_once('@')
            .ok_or_else(|| invalid(key, value, "expected id@host:port"))?;
        let id: i32 = id
            .parse()
            .map_err(|_| invalid(key, value, format!("bad voter id {id:?}")))?;
        if id < 0 {
            return Err(invalid(key, value, "voter ids are not negative"));
        }
        let addr = addr.replace("localhost", "127.0.0.1");
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| invalid(key, value, format!("bad voter address {addr:?}")))?;
        if voters.iter().any(|(i, _)| *i == id) {
            return Err(invalid(key, value, format!("voter {id} is listed twice")));
        }
        voters.push((id, addr));
    }
    Ok(voters)
}

impl BrokerConfig {
    /// Sets one property from its string form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let v = value;
        match key {
            "node.id" | "broker.id" => self.node_id = parse(key, v)?,
            "process.roles" => {
                for role in v.split(',') {
                    if !matches!(role.trim(), "broker" | "controller") {
                        return Err(invalid(key, v, "roles are `broker` and `controller`"));
                    }
                }
                self.process_roles = v.into();
            }
            "log.dirs" | "log.dir" => {
                let first = v.split(',').next().unwrap_or_default().trim();
                if first.is_empty() {
                    return Err(invalid(key, v, "empty path"));
                }
                self.log_dir = PathBuf::from(first);
            }
            "listeners" => {
                let endpoints =
                    crate::listener::parse_endpoints(v).map_err(|e| invalid(key, v, e.0))?;
                let first = endpoints
                    .first()
                    .ok_or_else(|| invalid(key, v, "no listener given"))?;
                let ip: std::net::IpAddr = match first.host.as_str() {
                    "localhost" => [127, 0, 0, 1].into(),
                    "" => [0, 0, 0, 0].into(),
                    h => h
                        .parse()
                        .map_err(|_| invalid(key, v, "the listener host must be an IP address"))?,
                };
                let advertised_default =
                    self.advertised == (self.listener.ip().to_string(), self.listener.port());
                self.listener = SocketAddr::new(ip, first.port);
                if advertised_default {
                    self.advertised = (ip.to_string(), first.port);
                }
                self.listeners = endpoints;
            }
            "advertised.listeners" => {
                let endpoints =
                    crate::listener::parse_endpoints(v).map_err(|e| invalid(key, v, e.0))?;
                let first_name = self.listeners.first().map(|l| l.name.clone());
                let first = endpoints
                    .iter()
                    .find(|e| Some(&e.name) == first_name.as_ref())
                    .or(endpoints.first())
                    .ok_or_else(|| invalid(key, v, "no listener given"))?;
                self.advertised = (first.host.clone(), first.port);
                self.advertised_listeners = endpoints;
            }
            "listener.security.protocol.map" => {
                self.listener_protocols =
                    crate::listener::parse_protocol_map(v).map_err(|e| invalid(key, v, e.0))?;
            }
            "inter.broker.listener.name" | "security.inter.broker.protocol" => {
                self.inter_broker_listener = Some(v.trim().to_ascii_uppercase());
            }
            "sasl.mechanism.inter.broker.protocol" => {
                self.sasl_mechanism_inter_broker = crate::sasl::Mechanism::parse(v.trim())
                    .filter(|m| *m != crate::sasl::Mechanism::OAuthBearer)
                    .ok_or_else(|| {
                        invalid(key, v, "supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
                    })?;
            }
            "sasl.oauthbearer.jwks.endpoint.url" => {
                self.oauth.jwks =
                    Some(crate::oauth::jwks_path(v.trim()).map_err(|e| invalid(key, v, e))?)
            }
            "sasl.oauthbearer.expected.audience" => {
                self.oauth.audience = v
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "sasl.oauthbearer.expected.issuer" => {
                self.oauth.issuer = (!v.trim().is_empty()).then(|| v.trim().to_string())
            }
            "sasl.oauthbearer.sub.claim.name" => self.oauth.sub_claim = v.trim().to_string(),
            "sasl.oauthbearer.clock.skew.seconds" => self.oauth.clock_skew_s = parse(key, v)?,
            k if k.starts_with("listener.name.")
                && k.ends_with(".sasl.server.callback.handler.class") =>
            {
                // Kafka's validating handler is what Strata does; its unsecured one (unsigned
                // tokens) is refused.
                if v.contains("Unsecured") {
                    return Err(invalid(
                        key,
                        v,
                        "unsigned OAUTHBEARER tokens are never accepted: set sasl.oauthbearer.jwks.endpoint.url",
                    ));
                }
            }
            "ssl.keystore.type" => self.ssl.keystore_type = Some(v.into()),
            "ssl.keystore.location" => self.ssl.keystore_location = Some(PathBuf::from(v)),
            "ssl.keystore.certificate.chain" => {
                self.ssl.keystore_certificate_chain = Some(v.into())
            }
            "ssl.keystore.key" => self.ssl.keystore_key = Some(v.into()),
            "ssl.key.password" | "ssl.keystore.password" => {
                if key == "ssl.key.password" {
                    self.ssl.key_password = Some(v.into());
                }
            }
            "ssl.truststore.type" => self.ssl.truststore_type = Some(v.into()),
            "ssl.truststore.location" => self.ssl.truststore_location = Some(PathBuf::from(v)),
            "ssl.truststore.certificates" => self.ssl.truststore_certificates = Some(v.into()),
            "ssl.truststore.password" => {}
            "ssl.client.auth" => self.ssl.client_auth = client_auth(key, v)?,
            k if k.starts_with("listener.name.") && k.ends_with(".ssl.client.auth") => {
                let listener = &k["listener.name.".len()..k.len() - ".ssl.client.auth".len()];
                self.listener_client_auth
                    .insert(listener.to_ascii_uppercase(), client_auth(key, v)?);
            }
            "ssl.enabled.protocols" => self.ssl.enabled_protocols = Some(v.into()),
            "ssl.keystore.reload.interval.ms" => {
                self.ssl_reload_interval =
                    std::time::Duration::from_millis(positive::<u64>(key, v)?)
            }
            "ssl.principal.mapping.rules" => {
                self.ssl_principal_rules =
                    crate::tls::parse_principal_rules(v).map_err(|e| invalid(key, v, e))?
            }
            "connections.max.idle.ms" => {
                let ms: i64 = parse(key, v)?;
                self.connections_max_idle =
                    (ms >= 0).then(|| std::time::Duration::from_millis(ms.unsigned_abs()));
            }
            "quota.window.num" => {
                let n: u32 = positive(key, v)?;
                if n < 2 {
                    return Err(invalid(key, v, "at least 2"));
                }
                self.quota_window_num = n;
            }
            "quota.window.size.seconds" => {
                self.quota_window = std::time::Duration::from_secs(positive(key, v)?)
            }
            "connections.max.reauth.ms" => {
                let ms: u64 = parse(key, v)?;
                self.connections_max_reauth =
                    (ms > 0).then(|| std::time::Duration::from_millis(ms));
            }
            "request.read.timeout.ms" => {
                self.request_read_timeout =
                    std::time::Duration::from_millis(positive::<u64>(key, v)?)
            }
            "max.connections" => self.max_connections = positive(key, v)?,
            "max.connection.creation.rate" => {
                self.max_connection_creation_rate =
                    positive::<u64>(key, v)?.min(crate::cluster::throttle::UNLIMITED)
            }
            "max.connections.per.ip" => self.max_connections_per_ip = positive(key, v)?,
            "max.connections.per.ip.overrides" => {
                let mut out = std::collections::HashMap::new();
                for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    let parsed = entry.rsplit_once(':').and_then(|(host, n)| {
                        Some((host.trim().parse().ok()?, n.trim().parse().ok()?))
                    });
                    let (ip, n) = parsed.ok_or_else(|| {
                        invalid(key, v, format!("{entry}: expected <address>:<count>"))
                    })?;
                    out.insert(ip, n);
                }
                self.max_connections_per_ip_overrides = out;
            }
            "authorizer.class.name" => self.authorizer = !v.trim().is_empty(),
            "super.users" => {
                self.super_users = v
                    .split(';')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect();
                if let Some(bad) = self.super_users.iter().find(|u| !u.contains(':')) {
                    return Err(invalid(key, v, format!("{bad}: expected User:<name>")));
                }
            }
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found = parse(key, v)?
            }
            "sasl.enabled.mechanisms" => {
                let mut out = Vec::new();
                for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    out.push(crate::sasl::Mechanism::parse(m).ok_or_else(|| {
                        invalid(
                            key,
                            v,
                            format!(
                                "{m}: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER are supported"
                            ),
                        )
                    })?);
                }
                self.sasl_mechanisms = out;
            }
            k if k.starts_with("listener.name.") && k.ends_with(".sasl.jaas.config") => {
                let rest = &k["listener.name.".len()..k.len() - ".sasl.jaas.config".len()];
                let (listener, mechanism) = rest.split_once('.').ok_or_else(|| {
                    invalid(
                        key,
                        v,
                        "expected listener.name.<listener>.<mechanism>.sasl.jaas.config",
                    )
                })?;
                let listener = listener.to_ascii_uppercase();
                let m = crate::sasl::Mechanism::parse(&mechanism.to_ascii_uppercase()).ok_or_else(
                    || {
                        invalid(
                            key,
                            "<jaas>",
                            format!("mechanism {mechanism} is not supported"),
                        )
                    },
                )?;
                // PLAIN's users are the `user_<name>` entries; SCRAM's are in the credential
                // store. `username` and `password`, for any mechanism, are this broker's own
                // login to other brokers.
                if m == crate::sasl::Mechanism::Plain {
                    let users =
                        crate::sasl::parse_plain_jaas(v).map_err(|e| invalid(key, "<jaas>", e))?;
                    self.plain_users.insert(listener.clone(), users);
                }
                if let Some(login) = crate::sasl::parse_login_jaas(v) {
                    self.sasl_logins.insert((listener, m), login);
                }
            }
            "cluster.id" => self.cluster_id = v.into(),
            "broker.rack" => self.rack = (!v.is_empty()).then(|| v.to_string()),
            "replica.selector.class" => {
                self.rack_aware_reads = match v {
                    RACK_AWARE_SELECTOR => true,
                    "" | LEADER_SELECTOR => false,
                    _ => {
                        return Err(invalid(
                            key,
                            v,
                            format!("Strata has {RACK_AWARE_SELECTOR} and {LEADER_SELECTOR}"),
                        ));
                    }
                }
            }
            "num.partitions" => self.num_partitions = positive(key, v)?,
            "default.replication.factor" => self.default_replication_factor = positive(key, v)?,
            "min.insync.replicas" => self.min_insync_replicas = positive(key, v)?,
            "auto.create.topics.enable" => self.auto_create_topics = parse(key, v)?,
            "socket.request.max.bytes" => self.socket_request_max_bytes = positive(key, v)?,
            "offsets.topic.num.partitions" => self.offsets_topic_partitions = positive(key, v)?,
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = positive(key, v)?
            }
            "transaction.state.log.num.partitions" => {
                self.transaction_state_partitions = positive(key, v)?
            }
            "transaction.state.log.replication.factor" => {
                self.transaction_state_replication_factor = positive(key, v)?
            }
            "transaction.max.timeout.ms" => self.transaction_max_timeout_ms = positive(key, v)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.transaction_abort_interval_ms = positive(key, v)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = parse(key, v)?
            }
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms = positive(key, v)?,
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms = positive(key, v)?,
            "group.consumer.session.timeout.ms" => {
                self.group_consumer_session_timeout_ms = positive(key, v)?
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.group_consumer_heartbeat_interval_ms = positive(key, v)?
            }
            "console.listen" => {
                self.console_listen = if v.trim().is_empty() {
                    None
                } else {
                    Some(parse(key, v)?)
                };
            }
            "console.poll.interval.ms" => self.console_poll_interval_ms = positive(key, v)?,
            "console.ssl.enabled" => self.console_ssl = parse(key, v)?,
            "metrics.listen" => {
                self.metrics_listen = if v.trim().is_empty() {
                    None
                } else {
                    Some(parse(key, v)?)
                };
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = positive(key, v)?
            }
            "unclean.leader.election.enable" => self.unclean_leader_election = parse(key, v)?,
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance = parse(key, v)?,
            "leader.imbalance.check.interval.seconds" => {
                let secs: u64 = positive(key, v)?;
                self.leader_imbalance_check_interval_ms = secs.saturating_mul(1000);
            }
            "leader.imbalance.return.delay.ms" => self.leader_return_delay_ms = parse(key, v)?,
            "leader.replication.throttled.rate" => {
                self.leader_replication_throttled_rate = positive(key, v)?
            }
            "follower.replication.throttled.rate" => {
                self.follower_replication_throttled_rate = positive(key, v)?
            }
            "broker.replacement.delay.ms" => {
                let ms: i64 = parse(key, v)?;
                self.broker_replacement_delay_ms = match ms {
                    -1 => None,
                    ms if ms >= 0 => Some(ms as u64),
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: key.to_string(),
                            value: v.to_string(),
                            reason: "must be -1 (never) or at least 0".into(),
                        });
                    }
                };
            }
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = positive(key, v)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = positive(key, v)?,
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = positive(key, v)?,
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms = positive(key, v)?,
            "controlled.shutdown.timeout.ms" => {
                self.controlled_shutdown_timeout_ms = positive(key, v)?
            }
            "controller.quorum.voters" => self.controller_quorum_voters = parse_voters(key, v)?,
            "inter.broker.address.overrides" => {
                self.inter_broker_address_overrides = parse_voters(key, v)?
            }
            "controller.listener.names" => {
                self.controller_listener_names = v
                    .split(',')
                    .map(|n| n.trim().to_ascii_uppercase())
                    .filter(|n| !n.is_empty())
                    .collect();
            }
            other => return set_log_property(&mut self.log_defaults, other, v, true),
        }
        Ok(())
    }

    /// Whether this node is a member of a cluster (`controller.quorum.voters` set).
    pub fn is_cluster(&self) -> bool {
        !self.controller_quorum_voters.is_empty()
    }

    /// Whether `process.roles` includes `role` (`broker` or `controller`).
    pub fn has_role(&self, role: &str) -> bool {
        self.process_roles.split(',').any(|r| r.trim() == role)
    }

    /// This node's address in `controller.quorum.voters`, if it is a voter.
    pub fn controller_address(&self) -> Option<SocketAddr> {
        self.controller_quorum_voters
            .iter()
            .find(|(id, _)| *id == self.node_id)
            .map(|(_, a)| *a)
    }

    /// Loads a TOML file of properties on top of the current values.
    pub fn load_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut flat = Vec::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        for (k, v) in flat {
            self.set(&k, &v)?;
        }
        Ok(())
    }

    /// The Kafka listeners to run, resolved from `listeners`, `advertised.listeners` and
    /// `listener.security.protocol.map` (a controller listener named there is not one).
    pub fn resolved_listeners(&self) -> Result<Vec<crate::listener::Listener>, ConfigError> {
        let kafka: Vec<crate::listener::Endpoint> = self
            .listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
            .cloned()
            .collect();
        crate::listener::resolve(&kafka, &self.advertised_listeners, &self.listener_protocols)
            .map_err(|e| invalid("listeners", "", e.0))
    }

    /// The TLS settings of a listener: `ssl.*`, with client authentication from
    /// `listener.name.<listener>.ssl.client.auth`, else `ssl.client.auth` on SSL listeners and
    /// none on SASL_SSL ones (which authenticate with SASL; KIP-684, as Kafka).
    pub fn ssl_for(&self, listener: &crate::listener::Listener) -> crate::tls::SslSettings {
        let client_auth = match self.listener_client_auth.get(&listener.name) {
            Some(c) => *c,
            None if listener.protocol == crate::listener::SecurityProtocol::SaslSsl => {
                crate::tls::ClientAuth::None
            }
            None => self.ssl.client_auth,
        };
        crate::tls::SslSettings {
            client_auth,
            ..self.ssl.clone()
        }
    }

    /// `host:port` other brokers (and this broker's console) reach this broker at: the
    /// inter-broker listener's advertised address, else the first listener's.
    pub fn inter_broker_endpoint(&self) -> String {
        let name = self.inter_broker_listener_name();
        self.resolved_listeners()
            .unwrap_or_default()
            .into_iter()
            .find(|l| l.name == name)
            .map_or_else(
                || format!("{}:{}", self.advertised.0, self.advertised.1),
                |l| format!("{}:{}", l.advertised.0, l.advertised.1),
            )
    }

    /// The listener brokers replicate over and register with.
    pub fn inter_broker_listener_name(&self) -> String {
        self.inter_broker_listener.clone().unwrap_or_else(|| {
            self.listeners
                .iter()
                .find(|l| !self.controller_listener_names.contains(&l.name))
                .map(|l| l.name.clone())
                .unwrap_or_else(|| "PLAINTEXT".into())
        })
    }

    /// The security protocol of the controller listener (PLAINTEXT when none is named).
    pub fn controller_protocol(&self) -> crate::listener::SecurityProtocol {
        self.controller_listener_names
            .first()
            .and_then(|n| {
                self.listener_protocols
                    .get(n)
                    .copied()
                    .or_else(|| crate::listener::SecurityProtocol::parse(n))
            })
            .unwrap_or(crate::listener::SecurityProtocol::Plaintext)
    }

    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::listener::SecurityProtocol;
        let listeners = self.resolved_listeners()?;
        for l in &listeners {
            if matches!(
                l.protocol,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            ) && self.sasl_mechanisms.is_empty()
            {
                return Err(invalid(
                    "sasl.enabled.mechanisms",
                    "",
                    format!(
                        "listener {} uses {} but no mechanism is enabled",
                        l.name,
                        l.protocol.name()
                    ),
                ));
            }
        }
        for l in &listeners {
            if matches!(
                l.protocol,
                SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
            ) {
                crate::tls::server_config(&self.ssl_for(l))
                    .map_err(|e| invalid("ssl.*", "", format!("listener {}: {}", l.name, e.0)))?;
            }
        }
        if self
            .sasl_mechanisms
            .contains(&crate::sasl::Mechanism::OAuthBearer)
            && listeners.iter().any(|l| {
                matches!(
                    l.protocol,
                    SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
                )
            })
        {
            if self.oauth.jwks.is_none() {
                return Err(invalid(
                    "sasl.oauthbearer.jwks.endpoint.url",
                    "",
                    "OAUTHBEARER is enabled: give the JWKS its tokens are signed with (file:///path/jwks.json)",
                ));
            }
            crate::oauth::Validator::new(self.oauth.clone())
                .map_err(|e| invalid("sasl.oauthbearer.jwks.endpoint.url", "", e))?;
        }
        if self.is_cluster() {
            if self.has_role("broker") {
                crate::cluster::link::LinkSecurity::inter_broker(self).map_err(|e| {
                    invalid(
                        "inter.broker.listener.name",
                        &self.inter_broker_listener_name(),
                        e.0,
                    )
                })?;
            }
            crate::cluster::link::LinkSecurity::controller(self)
                .map_err(|e| invalid("controller.listener.names", "", e.0))?;
            crate::cluster::link::controller_acceptor(self)
                .map_err(|e| invalid("controller.listener.names", "", e.0))?;
        }
        self.log_defaults
            .validate()
            .map_err(|reason| invalid("log.*", "", reason))?;
        if self.is_cluster() && self.has_role("controller") && self.controller_address().is_none() {
            return Err(invalid(
                "controller.quorum.voters",
                "",
                format!(
                    "node.id {} has the controller role but is not a voter",
                    self.node_id
                ),
            ));
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                &self.broker_heartbeat_interval_ms.to_string(),
                "must be shorter than broker.session.timeout.ms",
            ));
        }
        if self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms {
            return Err(invalid(
                "group.consumer.heartbeat.interval.ms",
                &self.group_consumer_heartbeat_interval_ms.to_string(),
                "must be shorter than group.consumer.session.timeout.ms",
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(invalid(
                "group.min.session.timeout.ms",
                &self.group_min_session_timeout_ms.to_string(),
                "larger than group.max.session.timeout.ms",
            ));
        }
        Ok(())
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        toml::Value::Array(a) => out.push((
            prefix.to_string(),
            a.iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        )),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Broker properties that give a topic config its default: (broker name, topic name), as Kafka
/// names these synonyms.
pub const LOG_SYNONYMS: &[(&str, &str)] = &[
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.index.size.max.bytes", "segment.index.bytes"),
    ("message.max.bytes", "max.message.bytes"),
    ("log.flush.policy", "flush.policy"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.cleanup.policy", "cleanup.policy"),
];

/// Kafka's config value types, as DescribeConfigs v3+ reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean = 1,
    /// Free text.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 16-bit integer.
    Short = 4,
    /// A 64-bit integer.
    Long = 5,
    /// A floating-point number.
    Double = 6,
    /// A comma-separated list.
    List = 7,
    /// A Java class name.
    Class = 8,
}

/// One broker config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfigEntry {
    /// Kafka's name.
    pub name: &'static str,
    /// The value; `None` for an unset optional one (`broker.rack`).
    pub value: Option<String>,
    /// Its type.
    pub config_type: ConfigType,
}

impl BrokerConfig {
    /// Every broker config Strata has, with Kafka's names, values and types (topic defaults
    /// under their broker names: `log.retention.ms`, `message.max.bytes`, ...).
    pub fn describe(&self) -> Vec<BrokerConfigEntry> {
        use ConfigType::*;
        let e = |name, value: std::string::String, config_type| BrokerConfigEntry {
            name,
            value: Some(value),
            config_type,
        };
        let voters = self
            .controller_quorum_voters
            .iter()
            .map(|(id, a)| format!("{id}@{a}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut out = vec![
            e("node.id", self.node_id.to_string(), Int),
            e("broker.id", self.node_id.to_string(), Int),
            e("process.roles", self.process_roles.clone(), List),
            e("log.dirs", self.log_dir.display().to_string(), String),
            e(
                "listeners",
                self.listeners
                    .iter()
                    .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                    .collect::<Vec<_>>()
                    .join(","),
                String,
            ),
            e(
                "advertised.listeners",
                match self.resolved_listeners() {
                    Ok(ls) => ls
                        .iter()
                        .map(|l| format!("{}://{}:{}", l.name, l.advertised.0, l.advertised.1))
                        .collect::<Vec<_>>()
                        .join(","),
                    Err(_) => format!("PLAINTEXT://{}:{}", self.advertised.0, self.advertised.1),
                },
                String,
            ),
            BrokerConfigEntry {
                name: "broker.rack",
                value: self.rack.clone(),
                config_type: String,
            },
            BrokerConfigEntry {
                name: "replica.selector.class",
                value: self
                    .rack_aware_reads
                    .then(|| RACK_AWARE_SELECTOR.to_string()),
                config_type: Class,
            },
            e("num.partitions", self.num_partitions.to_string(), Int),
            e(
                "default.replication.factor",
                self.default_replication_factor.to_string(),
                Int,
            ),
            e(
                "min.insync.replicas",
                self.min_insync_replicas.to_string(),
                Int,
            ),
            e(
                "auto.create.topics.enable",
                self.auto_create_topics.to_string(),
                Boolean,
            ),
            e(
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
                Int,
            ),
            e(
                "offsets.topic.num.partitions",
                self.offsets_topic_partitions.to_string(),
                Int,
            ),
            e(
                "offsets.topic.replication.factor",
                self.offsets_topic_replication_factor.to_string(),
                Short,
            ),
            e(
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
                Int,
            ),
            e(
                "transaction.state.log.num.partitions",
                self.transaction_state_partitions.to_string(),
                Int,
            ),
            e(
                "transaction.state.log.replication.factor",
                self.transaction_state_replication_factor.to_string(),
                Short,
            ),
            e(
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms.to_string(),
                Int,
            ),
            e(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.transaction_abort_interval_ms.to_string(),
                Int,
            ),
            e(
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
                Int,
            ),
            e(
                "group.max.session.timeout.ms",
                self.group_max_session_timeout_ms.to_string(),
                Int,
            ),
            e(
                "group.consumer.session.timeout.ms",
                self.group_consumer_session_timeout_ms.to_string(),
                Int,
            ),
            e(
                "group.consumer.heartbeat.interval.ms",
                self.group_consumer_heartbeat_interval_ms.to_string(),
                Int,
            ),
            e(
                "group.consumer.assignors",
                "uniform,range".to_string(),
                List,
            ),
            e(
                "group.coordinator.rebalance.protocols",
                "classic,consumer".to_string(),
                List,
            ),
            e(
                "log.retention.check.interval.ms",
                self.retention_check_interval_ms.to_string(),
                Long,
            ),
            e("controller.quorum.voters", voters, List),
            e(
                "broker.session.timeout.ms",
                self.broker_session_timeout_ms.to_string(),
                Int,
            ),
            e(
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms.to_string(),
                Int,
            ),
            e(
                "replica.lag.time.max.ms",
                self.replica_lag_time_max_ms.to_string(),
                Long,
            ),
            e(
                "replica.fetch.wait.max.ms",
                self.replica_fetch_wait_max_ms.to_string(),
                Int,
            ),
            e(
                "unclean.leader.election.enable",
                self.unclean_leader_election.to_string(),
                Boolean,
            ),
            e(
                "auto.leader.rebalance.enable",
                self.auto_leader_rebalance.to_string(),
                Boolean,
            ),
            e(
                "leader.imbalance.check.interval.seconds",
                (self.leader_imbalance_check_interval_ms / 1000).to_string(),
                Long,
            ),
            e(
                "leader.imbalance.return.delay.ms",
                self.leader_return_delay_ms.to_string(),
                Long,
            ),
            e(
                "leader.replication.throttled.rate",
                self.leader_replication_throttled_rate.to_string(),
                Long,
            ),
            e(
                "follower.replication.throttled.rate",
                self.follower_replication_throttled_rate.to_string(),
                Long,
            ),
            e(
                "broker.replacement.delay.ms",
                self.broker_replacement_delay_ms
                    .map_or("-1".to_string(), |ms| ms.to_string()),
                Long,
            ),
        ];
        let log = describe_log_config(&self.log_defaults);
        for (broker, topic) in LOG_SYNONYMS {
            if let Some((_, v)) = log.iter().find(|(k, _)| k == topic) {
                out.push(e(
                    broker,
                    v.clone(),
                    crate::topic_config::config_type(topic),
                ));
            }
        }
        out
    }
}

/// Sets a log property, by its broker name (`log.segment.bytes`, when `broker` is set) or its
/// topic name (`segment.bytes`).
pub fn set_log_property(
    c: &mut LogConfig,
    key: &str,
    v: &str,
    broker: bool,
) -> Result<(), ConfigError> {
    let name = if broker {
        match LOG_SYNONYMS.iter().find(|(b, _)| *b == key) {
            Some((_, topic)) => *topic,
            None if key == "log.retention.hours" => {
                let h: i64 = parse(key, v)?;
                c.retention_ms = h.saturating_mul(3_600_000);
                return Ok(());
            }
            None => return Err(ConfigError::Unknown(key.to_string())),
        }
    } else {
        key
    };
    match name {
        "segment.bytes" => c.segment_bytes = positive(key, v)?,
        "segment.ms" => c.segment_ms = positive(key, v)?,
        "retention.ms" => c.retention_ms = parse(key, v)?,
        "retention.bytes" => c.retention_bytes = parse(key, v)?,
        "index.interval.bytes" => c.index_interval_bytes = positive(key, v)?,
        "segment.index.bytes" => c.segment_index_bytes = positive(key, v)?,
        "max.message.bytes" => c.max_message_bytes = positive(key, v)?,
        "flush.policy" => {
            c.flush = match v.trim() {
                "always" => FlushPolicy::Always,
                "os" => FlushPolicy::Os,
                "interval" => FlushPolicy::Interval(match c.flush {
                    FlushPolicy::Interval(ms) => ms,
                    _ => 1000,
                }),
                _ => return Err(invalid(key, v, "expected always, interval or os")),
            }
        }
        // Kafka's names for the flush policy. `flush.messages=1` (fsync every batch) is
        // `always`; larger counts are served as 1 (stricter, never weaker). `flush.ms=N` is
        // `interval(N)`, 0 is `always`. Their "never" (Long.MAX_VALUE) leaves the policy as
        // it is unless it was the one that key set, so what DescribeConfigs reports for any
        // policy, applied back in any order, gives that policy again.
        "flush.messages" => {
            let n: i64 = parse(key, v)?;
            c.flush = match (n, c.flush) {
                (i64::MAX, FlushPolicy::Always) => FlushPolicy::Os,
                (i64::MAX, other) => other,
                (n, _) if n >= 1 => FlushPolicy::Always,
                _ => return Err(invalid(key, v, "must be at least 1")),
            }
        }
        "flush.ms" => {
            let ms: i64 = parse(key, v)?;
            c.flush = match (ms, c.flush) {
                (i64::MAX, FlushPolicy::Interval(_)) => FlushPolicy::Os,
                (i64::MAX, other) => other,
                (0, _) => FlushPolicy::Always,
                (ms, _) if ms > 0 => FlushPolicy::Interval(ms as u64),
                _ => return Err(invalid(key, v, "must be at least 0")),
            }
        }
        "cleanup.policy" => {
            // A list, as Kafka's: `delete`, `compact`, or both in either order.
            let mut words: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect();
            words.sort_unstable();
            words.dedup();
            c.cleanup_policy = match words.as_slice() {
                ["delete"] => CleanupPolicy::Delete,
                ["compact"] => CleanupPolicy::Compact,
                ["compact", "delete"] => CleanupPolicy::CompactAndDelete,
                _ => {
                    return Err(invalid(
                        key,
                        v,
                        "expected delete, compact, or both (compact,delete)",
                    ));
                }
            }
        }
        "min.insync.replicas" => {
            let _: usize = positive(key, v)?;
        }
        other => match crate::topic_config::stored_config(other) {
            Some(stored) => {
                crate::topic_config::check(stored, v).map_err(|reason| invalid(key, v, reason))?
            }
            None => return Err(ConfigError::Unknown(other.to_string())),
        },
    }
    c.validate().map_err(|reason| invalid(key, v, reason))
}

/// The topic-level configs, as (name, value) pairs for DescribeConfigs.
pub fn describe_log_config(c: &LogConfig) -> Vec<(&'static str, String)> {
    vec![
        ("segment.bytes", c.segment_bytes.to_string()),
        ("segment.ms", c.segment_ms.to_string()),
        ("retention.ms", c.retention_ms.to_string()),
        ("retention.bytes", c.retention_bytes.to_string()),
        ("index.interval.bytes", c.index_interval_bytes.to_string()),
        ("segment.index.bytes", c.segment_index_bytes.to_string()),
        ("max.message.bytes", c.max_message_bytes.to_string()),
        (
            "flush.policy",
            match c.flush {
                FlushPolicy::Always => "always".into(),
                FlushPolicy::Interval(_) => "interval".into(),
                FlushPolicy::Os => "os".into(),
            },
        ),
        (
            "flush.messages",
            match c.flush {
                FlushPolicy::Always => "1".into(),
                _ => i64::MAX.to_string(),
            },
        ),
        (
            "flush.ms",
            match c.flush {
                FlushPolicy::Interval(ms) => ms.to_string(),
                _ => i64::MAX.to_string(),
            },
        ),
        (
            "cleanup.policy",
            match c.cleanup_policy {
                CleanupPolicy::Delete => "delete".into(),
                CleanupPolicy::Compact => "compact".into(),
                CleanupPolicy::CompactAndDelete => "compact,delete".into(),
            },
        ),
    ]
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn client_authentication_per_listener_follows_kip_684() {
        let mut c = BrokerConfig::default();
        c.set(
            "listeners",
            "SSL://127.0.0.1:1,SASL_SSL://127.0.0.1:2,INTERNAL://127.0.0.1:3",
        )
        .unwrap();
        c.set("listener.security.protocol.map", "INTERNAL:SASL_SSL")
            .unwrap();
        c.set("ssl.client.auth", "required").unwrap();
        c.set("listener.name.internal.ssl.client.auth", "requested")
            .unwrap();
        let ls = c.resolved_listeners().unwrap();
        let auth: Vec<crate::tls::ClientAuth> =
            ls.iter().map(|l| c.ssl_for(l).client_auth).collect();
        use crate::tls::ClientAuth::*;
        // SSL takes ssl.client.auth; SASL_SSL authenticates with SASL unless its own
        // listener-prefixed setting asks for certificates.
        assert_eq!(auth, vec![Required, None, Requested]);
        assert!(c.set("listener.name.x.ssl.client.auth", "maybe").is_err());
    }

    #[test]
    fn cleanup_policy_is_a_list_as_in_kafka() {
        let mut c = LogConfig::default();
        for (given, policy, described) in [
            ("delete", CleanupPolicy::Delete, "delete"),
            ("compact", CleanupPolicy::Compact, "compact"),
            (
                "delete, compact",
                CleanupPolicy::CompactAndDelete,
                "compact,delete",
            ),
            (
                "compact,delete,compact",
                CleanupPolicy::CompactAndDelete,
                "compact,delete",
            ),
        ] {
            set_log_property(&mut c, "cleanup.policy", given, false).unwrap();
            assert_eq!(c.cleanup_policy, policy, "{given}");
            let d = describe_log_config(&c);
            assert!(
                d.contains(&("cleanup.policy", described.to_string())),
                "{given}"
            );
        }
        assert!(set_log_property(&mut c, "cleanup.policy", "", false).is_err());
        assert!(set_log_property(&mut c, "cleanup.policy", "compact,forever", false).is_err());
    }

    #[test]
    fn properties_parse_and_unknown_ones_are_refused() {
        let mut c = BrokerConfig::default();
        c.set("listeners", "PLAINTEXT://127.0.0.1:19092").unwrap();
        assert_eq!(c.listener.port(), 19092);
        assert_eq!(c.advertised, ("127.0.0.1".to_string(), 19092));
        c.set("log.segment.bytes", "1048576").unwrap();
        assert_eq!(c.log_defaults.segment_bytes, 1 << 20);
        c.set("log.flush.policy", "os").unwrap();
        assert_eq!(c.log_defaults.flush, FlushPolicy::Os);
        assert!(matches!(
            c.set("log.segmnet.bytes", "1"),
            Err(ConfigError::Unknown(_))
        ));
        assert!(matches!(
            c.set("num.partitions", "zero"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            c.set("num.partitions", "0"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn toml_files_flatten_to_property_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("strata.toml");
        std::fs::write(
            &p,
            "\"num.partitions\" = 3\n[log]\ndirs = \"/tmp/x\"\nretention.ms = 1000\n",
        )
        .unwrap();
        let mut c = BrokerConfig::default();
        c.load_file(&p).unwrap();
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.log_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log_defaults.retention_ms, 1000);
    }

    /// Every flush policy, described and applied back (in any order) to the defaults, is the
    /// same policy; Kafka's own flush.messages=1 and flush.ms=0 mean fsync every batch.
    #[test]
    fn flush_configs_round_trip_and_take_kafkas_names() {
        for policy in [
            FlushPolicy::Always,
            FlushPolicy::Interval(250),
            FlushPolicy::Os,
        ] {
            let described: Vec<(&str, String)> = describe_log_config(&LogConfig {
                flush: policy,
                ..LogConfig::default()
            })
            .into_iter()
            .filter(|(k, _)| k.starts_with("flush."))
            .collect();
            for order in [false, true] {
                let mut c = LogConfig::default();
                let mut pairs = described.clone();
                if order {
                    pairs.reverse();
                }
                for (k, v) in &pairs {
                    set_log_property(&mut c, k, v, false).unwrap();
                }
                assert_eq!(c.flush, policy, "{pairs:?}");
            }
        }
        let mut c = LogConfig {
            flush: FlushPolicy::Os,
            ..LogConfig::default()
        };
        set_log_property(&mut c, "flush.messages", "1", false).unwrap();
        assert_eq!(c.flush, FlushPolicy::Always);
        c.flush = FlushPolicy::Os;
        set_log_property(&mut c, "flush.ms", "0", false).unwrap();
        assert_eq!(c.flush, FlushPolicy::Always);
        assert!(set_log_property(&mut c, "flush.ms", "-1", false).is_err());
        assert!(set_log_property(&mut c, "delete.retention.ms", "1000", false).is_ok());
        assert!(set_log_property(&mut c, "no.such.config", "1", false).is_err());
    }
}
