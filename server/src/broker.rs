//! The broker's state: its configuration, the commit pipeline of its data directory, its topics
//! and partitions (persisted in `topics.toml`), the group coordinator and producer ids.
//!
//! Invariant: `topics.toml` lists exactly the topics whose partition directories are in use; it
//! is rewritten atomically (temporary file, fsync, rename, directory fsync) before a create or
//! delete is acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strata_engine::io::{Backend, open_backend};
use strata_engine::{CleanupPolicy, CommitPipeline, Log, LogConfig, PipelineHandle};
use uuid::Uuid;

use crate::config::{BrokerConfig, set_log_property};
use crate::dynamic_config::DynamicConfigs;
use crate::error_code::ErrorCode;
use crate::topic::{Partition, Topic, valid_topic_name};

/// Name of the internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Name of the internal topic of the transaction coordinators' state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// Whether `name` is one of the internal topics (clients cannot write, delete or grow them).
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TXN_TOPIC
}
const TOPICS_FILE: &str = "topics.toml";
const PRODUCER_ID_FILE: &str = "producer-id-block";
/// Producer ids reserved per persisted block.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Errors of topic administration.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// With the Kafka error code to return.
    #[error("{message}")]
    Kafka {
        /// Code for the client.
        code: ErrorCode,
        /// Message for the client.
        message: String,
    },
}

impl AdminError {
    fn new(code: ErrorCode, message: impl Into<String>) -> AdminError {
        AdminError::Kafka {
            code,
            message: message.into(),
        }
    }

    /// The Kafka error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AdminError::Kafka { code, .. } => *code,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct TopicsFile {
    #[serde(default)]
    topics: BTreeMap<String, TopicEntry>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct TopicEntry {
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    /// Configuration.
    pub config: BrokerConfig,
    pipeline: Mutex<Option<CommitPipeline>>,
    handle: PipelineHandle,
    /// The data directory's lock: every partition's log is opened under it (a covered lock,
    /// no descriptor per partition).
    data_dir_lock: Arc<strata_engine::io::DirLock>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    admin: Mutex<()>,
    /// Bumped on every append; fetches waiting for data watch it.
    pub appends: tokio::sync::watch::Sender<u64>,
    next_producer_id: AtomicI64,
    producer_id_limit: Mutex<i64>,
    /// Cluster membership: the metadata image and the controller client. `None` standalone.
    pub cluster: Option<crate::cluster::ClusterState>,
    /// Dynamic broker configs and the effective config they make of `config`.
    dynamic: RwLock<DynamicState>,
    /// The data directory's identity (`meta.properties`), sent when registering.
    pub directory_id: uuid::Uuid,
}

/// Dynamic broker configs in force, and `Broker::config` with them applied.
#[derive(Debug)]
struct DynamicState {
    configs: DynamicConfigs,
    effective: Arc<BrokerConfig>,
}

/// A legal topic name and partition count (1 to 10000).
fn validate_new_topic(name: &str, partitions: i32) -> Result<(), AdminError> {
    if !valid_topic_name(name) {
        return Err(AdminError::new(
            ErrorCode::InvalidTopicException,
            format!("invalid topic name {name:?}"),
        ));
    }
    if !(1..=10_000).contains(&partitions) {
        return Err(AdminError::new(
            ErrorCode::InvalidPartitions,
            format!("{partitions} partitions"),
        ));
    }
    Ok(())
}

/// Replaces `dir/name` with `contents` durably: a temporary file, fsynced, renamed over it, and
/// the directory fsynced.
pub(crate) fn atomic_write(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

impl Broker {
    /// Opens the data directory: starts the commit pipeline, opens (and recovers) every
    /// partition log listed in `topics.toml`, and makes sure `__consumer_offsets` exists.
    /// In a cluster the metadata image says which partitions this broker holds: they are
    /// opened as it arrives (`cluster::replica_manager`).
    pub fn open(
        config: BrokerConfig,
        data_dir_lock: Arc<strata_engine::io::DirLock>,
    ) -> anyhow::Result<Arc<Broker>> {
        anyhow::ensure!(
            data_dir_lock.dir() == config.log_dir,
            "the data directory lock is for {:?}, not {:?}",
            data_dir_lock.dir(),
            config.log_dir
        );
        std::fs::create_dir_all(&config.log_dir)?;
        let meta = crate::meta_properties::load_or_create(&config.log_dir, config.node_id)?;
        let storage = open_backend(Backend::Auto)?;
        tracing::info!(backend = storage.name(), dir = ?config.log_dir, "opening data directory");
        let pipeline = CommitPipeline::start(storage, Default::default())?;
        let handle = pipeline.handle();
        let (appends, _) = tokio::sync::watch::channel(0u64);
        let config_cluster = config
            .is_cluster()
            .then(|| crate::cluster::ClusterState::new(&config));
        let block_path = config.log_dir.join(PRODUCER_ID_FILE);
        let block_start: i64 = std::fs::read_to_string(&block_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        // Standalone, the dynamic broker configs are in the data directory; in a cluster they
        // arrive with the metadata image.
        let dynamic = if config.is_cluster() {
            DynamicConfigs::default()
        } else {
            DynamicConfigs::load(&config.log_dir)?
        };
        let effective = dynamic.apply_to(&config, config.node_id).map_err(|e| {
            anyhow::anyhow!(
                "{:?}: {e}",
                config.log_dir.join(crate::dynamic_config::FILE)
            )
        })?;
        let broker = Arc::new(Broker {
            dynamic: RwLock::new(DynamicState {
                configs: dynamic,
                effective: Arc::new(effective),
            }),
            directory_id: meta.directory_id,
            config,
            pipeline: Mutex::new(Some(pipeline)),
            handle,
            data_dir_lock,
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            appends,
            next_producer_id: AtomicI64::new(block_start),
            producer_id_limit: Mutex::new(block_start),
            cluster: config_cluster,
        });
        if broker.cluster.is_some() {
            return Ok(broker);
        }
        let file = broker.read_topics_file()?;
        for (name, entry) in file.topics {
            let id = Uuid::parse_str(&entry.id)?;
            let topic = broker.open_topic(&name, id, entry.partitions, entry.configs)?;
            broker.topics_write().insert(name, topic);
        }
        if broker.topic(OFFSETS_TOPIC).is_none() {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert("segment.bytes".to_string(), (100u64 << 20).to_string());
            let partitions = broker.config.offsets_topic_partitions;
            broker
                .create_topic(OFFSETS_TOPIC, partitions, configs)
                .map_err(|e| anyhow::anyhow!("creating {OFFSETS_TOPIC}: {e}"))?;
        }
        Ok(broker)
    }

    fn topics_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_topics_file(&self) -> anyhow::Result<TopicsFile> {
        let path = self.config.log_dir.join(TOPICS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(toml::from_str(&text).map_err(|e| anyhow::anyhow!("{path:?}: {e}"))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TopicsFile::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn write_topics_file(&self) -> std::io::Result<()> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        let file = TopicsFile {
            topics: topics
                .values()
                .map(|t| {
                    (
                        t.name.clone(),
                        TopicEntry {
                            id: t.id.to_string(),
                            partitions: t.partition_count() as i32,
                            configs: t
                                .overrides
                                .read()
                                .unwrap_or_else(|p| p.into_inner())
                                .clone(),
                        },
                    )
                })
                .collect(),
        };
        let text = toml::to_string(&file).map_err(std::io::Error::other)?;
        atomic_write(&self.config.log_dir, TOPICS_FILE, text.as_bytes())
    }

    /// The effective log config of a topic with these overrides.
    pub fn log_config(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<LogConfig, AdminError> {
        let mut c = self.effective_config().log_defaults.clone();
        for (k, v) in overrides {
            set_log_property(&mut c, k, v, false)
                .map_err(|e| AdminError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        }
        Ok(c)
    }

    /// The broker's config with its dynamic values applied: what topics inherit from.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.dynamic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .effective
            .clone()
    }

    /// The dynamic broker configs in force.
    pub fn dynamic_configs(&self) -> DynamicConfigs {
        self.dynamic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .configs
            .clone()
    }

    /// Puts dynamic broker configs in force: every topic's effective config is derived again
    /// (its overrides over the new defaults) and applied to its local partitions.
    pub fn set_dynamic_configs(&self, configs: DynamicConfigs) -> Result<(), AdminError> {
        let effective = configs
            .apply_to(&self.config, self.config.node_id)
            .map_err(|e| AdminError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        {
            let mut d = self.dynamic.write().unwrap_or_else(|p| p.into_inner());
            if d.configs == configs {
                return Ok(());
            }
            *d = DynamicState {
                configs,
                effective: Arc::new(effective),
            };
        }
        for topic in self.topics() {
            let overrides = topic
                .overrides
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let Ok(config) = self.log_config(&overrides) else {
                continue;
            };
            let min_insync = self.min_insync_replicas(&overrides);
            for p in topic.local_partitions() {
                if let Err(e) = p.log.set_config(config.clone()) {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "applying a dynamic broker config");
                }
                p.set_min_insync_replicas(min_insync);
            }
            *topic.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        }
        tracing::info!("dynamic broker configs applied");
        Ok(())
    }

    /// AlterConfigs / IncrementalAlterConfigs of a broker resource ("" or a broker id):
    /// replaces its dynamic values with `values`, after checking them as a start-up config
    /// would be. Standalone they are written to the data directory first; in a cluster they go
    /// to the metadata log, and every broker applies them from there.
    pub async fn admin_set_broker_config(
        &self,
        resource: &str,
        values: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let next = self
            .dynamic_configs()
            .with_resource(resource, values.clone());
        next.apply_to(&self.config, self.config.node_id)
            .map_err(|e| AdminError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        match &self.cluster {
            None => {
                let _g = self.admin.lock().unwrap_or_else(|p| p.into_inner());
                atomic_write(
                    &self.config.log_dir,
                    crate::dynamic_config::FILE,
                    next.to_toml().as_bytes(),
                )
                .map_err(|e| AdminError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
                self.set_dynamic_configs(next)
            }
            Some(cluster) => {
                let req = crate::cluster::wire::ControllerRequest::SetBrokerConfig {
                    resource: resource.to_string(),
                    configs: values,
                };
                cluster
                    .admin_call(req)
                    .await
                    .map(|_| ())
                    .map_err(|(code, message)| AdminError::new(code, message))
            }
        }
    }

    /// The directory of a partition's log.
    pub fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.log_dir.join(format!("{topic}-{index}"))
    }

    /// Opens (recovering) a partition's log; in a cluster, as an offline replica.
    pub fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: &LogConfig,
        min_insync_replicas: usize,
    ) -> anyhow::Result<Arc<Partition>> {
        let dir = self.partition_dir(topic, index);
        let open = |mode| {
            Log::open_under(
                &self.data_dir_lock,
                dir.clone(),
                config.clone(),
                &self.handle,
                mode,
            )
        };
        let (log, corrupt) = match open(strata_engine::RecoveryMode::Strict) {
            Ok(log) => (log, false),
            // In a cluster the other replicas hold what a corrupt one lost: cut the log at the
            // corruption, and let the caller report the replica failed so it is refilled
            // before it can lead. Standalone, the log refuses to open (nothing else has it).
            Err(strata_engine::LogError::Corruption {
                segment, position, ..
            }) if self.cluster.is_some() => {
                tracing::error!(topic, partition = index, segment = %segment.display(), position, "corrupt log on disk: cut at the corruption, to be refilled from the leader");
                let log = open(strata_engine::RecoveryMode::TruncateCorruption)?;
                (log, true)
            }
            Err(e) => return Err(e.into()),
        };
        let replica = self.cluster.as_ref().map(|_| {
            (
                strata_replication::BrokerId(self.config.node_id),
                strata_replication::PartitionConfig {
                    replica_lag_time_max_ms: self.config.replica_lag_time_max_ms,
                    min_insync_replicas,
                },
            )
        });
        let p = Arc::new(Partition::new(topic, index, log, replica)?);
        if corrupt {
            p.report_corruption(p.log.log_end_offset());
        }
        Ok(p)
    }

    /// `min.insync.replicas` of a topic with these overrides.
    pub fn min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> usize {
        overrides
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(usize::try_from(self.effective_config().min_insync_replicas).unwrap_or(1))
            .max(1)
    }

    /// Whether this broker may act as a leader now: always standalone; in a cluster, while it
    /// holds its lease from the controller (see `ClusterState::holds_lease`).
    pub fn serving(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.holds_lease())
    }

    /// The error for a partition this broker does not hold: NOT_LEADER_OR_FOLLOWER if the
    /// cluster has it elsewhere (the client refreshes its metadata), else
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub fn missing_partition_code(&self, topic: Option<&Topic>, index: i32) -> ErrorCode {
        let elsewhere =
            match (&self.cluster, topic) {
                (Some(c), Some(t)) => c.image().topics.get(&t.name).is_some_and(|ti| {
                    usize::try_from(index).is_ok_and(|i| i < ti.partitions.len())
                }),
                _ => false,
            };
        if elsewhere {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::UnknownTopicOrPartition
        }
    }

    /// The partition `index` of `topic` if this broker leads it; else the error a client gets
    /// (UNKNOWN_TOPIC_OR_PARTITION, or NOT_LEADER_OR_FOLLOWER where it lives elsewhere or this
    /// replica follows).
    pub fn leader_partition(
        &self,
        topic: Option<&Topic>,
        index: i32,
    ) -> Result<Arc<crate::topic::Partition>, ErrorCode> {
        let partition = topic
            .and_then(|t| t.partition(index))
            .ok_or_else(|| self.missing_partition_code(topic, index))?;
        if partition.is_leader() {
            Ok(partition)
        } else {
            Err(ErrorCode::NotLeaderOrFollower)
        }
    }

    /// Whether the partition exists (anywhere in the cluster).
    pub fn partition_exists(&self, topic: Option<&Topic>, index: i32) -> bool {
        match topic {
            None => false,
            Some(t) if self.cluster.is_none() => t.partition(index).is_some(),
            Some(t) => {
                self.missing_partition_code(Some(t), index) == ErrorCode::NotLeaderOrFollower
            }
        }
    }

    /// Whether partition `index` of topic `name` exists: on this broker standalone, in the
    /// metadata image in a cluster (wherever its replicas are).
    pub fn partition_exists_anywhere(&self, name: &str, index: i32) -> bool {
        match &self.cluster {
            None => self
                .topic(name)
                .is_some_and(|t| t.partition(index).is_some()),
            Some(c) => c
                .image()
                .topics
                .get(name)
                .is_some_and(|t| usize::try_from(index).is_ok_and(|i| i < t.partitions.len())),
        }
    }

    /// Adds a topic to this broker's table (cluster mode: as the metadata image says).
    pub fn insert_topic(&self, topic: Arc<Topic>) {
        self.topics_write().insert(topic.name.clone(), topic);
    }

    /// Removes a topic from this broker's table (cluster mode), closing its logs and deleting
    /// their directories.
    pub fn remove_topic(&self, name: &str) {
        let Some(topic) = self.topics_write().remove(name) else {
            return;
        };
        let partitions =
            std::mem::take(&mut *topic.partitions.write().unwrap_or_else(|p| p.into_inner()));
        for p in partitions.into_values() {
            p.with_replica(|r| r.machine.become_offline());
            let dir = self.partition_dir(name, p.index);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = ?dir, error = %e, "removing a deleted partition's directory");
            }
        }
    }

    fn open_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> anyhow::Result<Arc<Topic>> {
        let config = self.log_config(&overrides)?;
        let min_insync = self.min_insync_replicas(&overrides);
        // Opening a log waits on the disk (a checkpoint, directory fsyncs), not the CPU: with
        // thousands of partitions, many opens in flight at once.
        let opened = crate::disk_parallel::map(partitions.max(0) as usize, |i| {
            let i = i as i32;
            self.open_partition(name, i, &config, min_insync)
                .map(|p| (i, p))
        })?;
        let ps: BTreeMap<i32, Arc<Partition>> = opened.into_iter().collect();
        Ok(Arc::new(Topic {
            name: name.to_string(),
            id,
            internal: is_internal_topic(name),
            partitions: RwLock::new(ps),
            overrides: RwLock::new(overrides),
            config: RwLock::new(config),
        }))
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// All topics.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Creates a topic (idempotently refusing an existing name).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, AdminError> {
        let _g = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        validate_new_topic(name, partitions)?;
        if self.topic(name).is_some() {
            return Err(AdminError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        self.log_config(&configs)?;
        let topic = self
            .open_topic(name, Uuid::new_v4(), partitions, configs)
            .map_err(|e| {
                // The partitions opened before the failure were dropped with it: remove their
                // directories, so a failed create leaves nothing behind (a later create of the
                // same name starts empty).
                for i in 0..partitions {
                    let dir = self.partition_dir(name, i);
                    if dir.exists()
                        && let Err(e) = std::fs::remove_dir_all(&dir)
                    {
                        tracing::warn!(dir = ?dir, error = %e, "removing a partition of a failed create");
                    }
                }
                tracing::warn!(topic = name, partitions, error = %e, "creating a topic failed");
                AdminError::new(ErrorCode::UnknownServerError, e.to_string())
            })?;
        self.topics_write().insert(name.to_string(), topic.clone());
        self.write_topics_file()
            .map_err(|e| AdminError::new(ErrorCode::UnknownServerError, e.to_string()))?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// CreateTopics: standalone, creates it here; in a cluster, asks the controller to place
    /// it and waits until this broker's metadata has it. Returns the topic id.
    /// `assignments`: the replicas of each partition when the request names them (then
    /// `partitions` and `replication_factor` are their count and length).
    pub async fn admin_create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        assignments: Option<Vec<Vec<i32>>>,
    ) -> Result<Uuid, AdminError> {
        let Some(cluster) = &self.cluster else {
            if let Some(a) = &assignments {
                self.check_standalone_assignment(a)?;
            }
            return self.create_topic(name, partitions, configs).map(|t| t.id);
        };
        validate_new_topic(name, partitions)?;
        if replication_factor < 1 {
            return Err(AdminError::new(
                ErrorCode::InvalidReplicationFactor,
                format!("replication factor {replication_factor}"),
            ));
        }
        self.log_config(&configs)?;
        let req = crate::cluster::wire::ControllerRequest::CreateTopic {
            name: name.to_string(),
            partitions: partitions as u32,
            replication_factor: replication_factor as u32,
            configs,
            assignments,
        };
        cluster
            .admin_call(req)
            .await
            .map_err(|(code, message)| AdminError::new(code, message))?;
        cluster
            .image()
            .topics
            .get(name)
            .map(|t| Uuid::from_u128(t.id))
            .ok_or_else(|| AdminError::new(ErrorCode::RequestTimedOut, "topic not visible yet"))
    }

    /// CreatePartitions, standalone or through the controller (which places the new
    /// partitions; this waits until this broker's metadata has them).
    pub async fn admin_create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            if let Some(a) = &assignments {
                let current = self.check_create_partitions(name, count, None)?;
                check_assignment_count(a, current, count)?;
                self.check_standalone_assignment(a)?;
            }
            if validate_only {
                return self.check_create_partitions(name, count, None).map(|_| ());
            }
            return self.create_partitions(name, count);
        };
        let image = cluster.image();
        let current = image.topics.get(name).map(|t| t.partitions.len());
        let current = self.check_create_partitions(name, count, current)?;
        if let Some(a) = &assignments {
            check_assignment_count(a, current, count)?;
        }
        if validate_only {
            return Ok(());
        }
        let req = crate::cluster::wire::ControllerRequest::CreatePartitions {
            name: name.to_string(),
            count: count as u32,
            assignments,
        };
        cluster
            .admin_call(req)
            .await
            .map_err(|(code, message)| AdminError::new(code, message))
    }

    /// Every partition of every topic: `(topic, partition count)`, from the cluster's metadata
    /// in a cluster.
    pub fn partition_counts(&self) -> Vec<(String, usize)> {
        match &self.cluster {
            Some(c) => c
                .image()
                .topics
                .iter()
                .map(|(name, t)| (name.clone(), t.partitions.len()))
                .collect(),
            None => self
                .topics()
                .iter()
                .map(|t| (t.name.clone(), t.partition_count()))
                .collect(),
        }
    }

    /// UNKNOWN_TOPIC_OR_PARTITION unless `topic`-`partition` exists (in the cluster's metadata,
    /// in a cluster).
    fn check_partition_exists(&self, topic: &str, partition: i32) -> Result<(), AdminError> {
        let known = self
            .partition_counts()
            .iter()
            .any(|(t, n)| t == topic && partition >= 0 && (partition as usize) < *n);
        if known {
            Ok(())
        } else {
            Err(AdminError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("no partition {topic}-{partition}"),
            ))
        }
    }

    /// ElectLeaders for one partition. Standalone, this broker leads every partition already
    /// (ELECTION_NOT_NEEDED); in a cluster, the controller decides and this waits until the
    /// new leadership is in this broker's metadata.
    pub async fn admin_elect_leader(
        &self,
        topic: &str,
        partition: i32,
        election: strata_replication::controller::Election,
    ) -> Result<(), AdminError> {
        self.check_partition_exists(topic, partition)?;
        let Some(cluster) = &self.cluster else {
            return Err(AdminError::new(
                ErrorCode::ElectionNotNeeded,
                "a standalone broker leads every partition",
            ));
        };
        let req = crate::cluster::wire::ControllerRequest::ElectLeader {
            topic: topic.to_string(),
            partition: partition as u32,
            election,
        };
        cluster
            .admin_call(req)
            .await
            .map_err(|(code, message)| AdminError::new(code, message))
    }

    /// AlterPartitionReassignments for one partition: `Some(target)` moves it, `None` cancels
    /// the move under way. In a cluster the controller decides and this waits until the
    /// started (or completed) move is in this broker's metadata; standalone, the only possible
    /// target is this broker, where the partition already is.
    pub async fn admin_reassign_partition(
        &self,
        topic: &str,
        partition: i32,
        target: Option<Vec<i32>>,
        allow_replication_factor_change: bool,
    ) -> Result<(), AdminError> {
        self.check_partition_exists(topic, partition)?;
        let Some(cluster) = &self.cluster else {
            let me = self.config.node_id;
            return match target {
                None => Err(AdminError::new(
                    ErrorCode::NoReassignmentInProgress,
                    format!("no reassignment of {topic}-{partition} is in progress"),
                )),
                Some(t) if t == [me] => Ok(()),
                Some(t) => Err(AdminError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("target {t:?} for {topic}-{partition}: the only broker is {me}"),
                )),
            };
        };
        let req = crate::cluster::wire::ControllerRequest::ReassignPartition {
            topic: topic.to_string(),
            partition: partition as u32,
            target,
            allow_replication_factor_change,
        };
        cluster
            .admin_call(req)
            .await
            .map_err(|(code, message)| AdminError::new(code, message))
    }

    /// A manual assignment on a standalone broker: every partition on this broker alone.
    pub fn check_standalone_assignment(&self, assignments: &[Vec<i32>]) -> Result<(), AdminError> {
        let me = self.config.node_id;
        match assignments
            .iter()
            .enumerate()
            .find(|(_, r)| r.as_slice() != [me])
        {
            None => Ok(()),
            Some((i, r)) => Err(AdminError::new(
                ErrorCode::InvalidReplicaAssignment,
                format!("partition {i} is assigned to brokers {r:?}; the only broker is {me}"),
            )),
        }
    }

    /// Kafka's checks of a CreatePartitions: the topic exists and is not internal, and the
    /// count grows it (at most 10,000). `current`: the partition count when known from the
    /// metadata image (cluster), else this broker's.
    fn check_create_partitions(
        &self,
        name: &str,
        count: i32,
        current: Option<usize>,
    ) -> Result<usize, AdminError> {
        let current = current
            .or_else(|| self.topic(name).map(|t| t.partition_count()))
            .ok_or_else(|| {
                AdminError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("no topic {name}"),
                )
            })?;
        if is_internal_topic(name) {
            return Err(AdminError::new(
                ErrorCode::InvalidRequest,
                "the partitions of internal topics cannot be changed",
            ));
        }
        if count as i64 <= current as i64 || count > 10_000 {
            return Err(AdminError::new(
                ErrorCode::InvalidPartitions,
                format!("topic {name} has {current} partitions; asked for {count}"),
            ));
        }
        Ok(current)
    }

    /// DeleteTopics, standalone or through the controller.
    pub async fn admin_delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return self.delete_topic(name);
        };
        if is_internal_topic(name) {
            return Err(AdminError::new(
                ErrorCode::InvalidTopicException,
                "internal topics cannot be deleted",
            ));
        }
        let req = crate::cluster::wire::ControllerRequest::DeleteTopic {
            name: name.to_string(),
        };
        cluster
            .admin_call(req)
            .await
            .map_err(|(code, message)| AdminError::new(code, message))
    }

    /// AlterConfigs / IncrementalAlterConfigs, standalone or through the controller.
    pub async fn admin_alter_topic_config(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return self.alter_topic_config(name, changes, incremental, validate_only);
        };
        let image = cluster.image();
        let current = image.topics.get(name).ok_or_else(|| {
            AdminError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("no topic {name}"),
            )
        })?;
        let mut overrides = if incremental {
            current.configs.clone()
        } else {
            BTreeMap::new()
        };
        for (k, v) in changes {
            match v {
                Some(v) => overrides.insert(k, v),
                None => overrides.remove(&k),
            };
        }
        let config = self.log_config(&overrides)?;
        if is_internal_topic(name) && config.cleanup_policy != CleanupPolicy::Compact {
            return Err(AdminError::new(
                ErrorCode::InvalidConfig,
                "internal topics stay compacted",
            ));
        }
        if validate_only {
            return Ok(());
        }
        let req = crate::cluster::wire::ControllerRequest::SetTopicConfig {
            name: name.to_string(),
            configs: overrides,
        };
        cluster
            .admin_call(req)
            .await
            .map_err(|(code, message)| AdminError::new(code, message))
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        if is_internal_topic(name) {
            return Err(AdminError::new(
                ErrorCode::InvalidTopicException,
                "internal topics cannot be deleted",
            ));
        }
        let topic = self.topics_write().remove(name).ok_or_else(|| {
            AdminError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("no topic {name}"),
            )
        })?;
        self.write_topics_file()
            .map_err(|e| AdminError::new(ErrorCode::UnknownServerError, e.to_string()))?;
        let partitions =
            std::mem::take(&mut *topic.partitions.write().unwrap_or_else(|p| p.into_inner()));
        for p in partitions.into_values() {
            let dir = self.partition_dir(name, p.index);
            // Readers may still hold the Arc; the directory goes now, the files when they drop.
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = ?dir, error = %e, "removing a deleted partition's directory");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Adds partitions to a topic.
    pub fn create_partitions(&self, name: &str, count: i32) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self.topic(name).ok_or_else(|| {
            AdminError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("no topic {name}"),
            )
        })?;
        let current = topic.partition_count() as i32;
        if count <= current || count > 10_000 {
            return Err(AdminError::new(
                ErrorCode::InvalidPartitions,
                format!("topic {name} has {current} partitions; asked for {count}"),
            ));
        }
        let config = topic
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let min_insync =
            self.min_insync_replicas(&topic.overrides.read().unwrap_or_else(|p| p.into_inner()));
        for i in current..count {
            let p = self
                .open_partition(name, i, &config, min_insync)
                .map_err(|e| AdminError::new(ErrorCode::UnknownServerError, e.to_string()))?;
            topic
                .partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(i, p);
        }
        self.write_topics_file()
            .map_err(|e| AdminError::new(ErrorCode::UnknownServerError, e.to_string()))
    }

    /// Replaces (or, with `incremental`, merges into) a topic's config overrides.
    pub fn alter_topic_config(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        incremental: bool,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let _g = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self.topic(name).ok_or_else(|| {
            AdminError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("no topic {name}"),
            )
        })?;
        let mut overrides = if incremental {
            topic
                .overrides
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        } else {
            BTreeMap::new()
        };
        for (k, v) in changes {
            match v {
                Some(v) => {
                    overrides.insert(k, v);
                }
                None => {
                    overrides.remove(&k);
                }
            }
        }
        let config = self.log_config(&overrides)?;
        if topic.internal && config.cleanup_policy != CleanupPolicy::Compact {
            return Err(AdminError::new(
                ErrorCode::InvalidConfig,
                "internal topics stay compacted",
            ));
        }
        if validate_only {
            return Ok(());
        }
        for p in topic.local_partitions() {
            p.log
                .set_config(config.clone())
                .map_err(|e| AdminError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        }
        *topic.overrides.write().unwrap_or_else(|p| p.into_inner()) = overrides;
        *topic.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        self.write_topics_file()
            .map_err(|e| AdminError::new(ErrorCode::UnknownServerError, e.to_string()))
    }

    /// Allocates a producer id, unique across restarts and, in a cluster, across brokers:
    /// there the blocks come from the controller (recorded in the metadata log).
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        let Some(cluster) = &self.cluster else {
            return self
                .allocate_local_producer_id()
                .map_err(|e| AdminError::new(ErrorCode::UnknownServerError, e.to_string()));
        };
        if !cluster.holds_lease() {
            return Err(AdminError::new(
                ErrorCode::CoordinatorNotAvailable,
                "this broker is not in contact with the controller",
            ));
        }
        let mut block = cluster.producer_ids.lock().await;
        if block.0 >= block.1 {
            let answer = cluster
                .admin
                .call(
                    crate::cluster::wire::ControllerRequest::AllocateProducerIds,
                    std::time::Duration::from_secs(10),
                )
                .await;
            match answer {
                Ok(crate::cluster::wire::ControllerResponse::ProducerIds { start, len }) => {
                    *block = (start, start + len);
                }
                other => {
                    return Err(AdminError::new(
                        ErrorCode::CoordinatorNotAvailable,
                        format!("no producer id block from the controller: {other:?}"),
                    ));
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// Allocates a producer id on a standalone broker. Ids are reserved in persisted blocks so
    /// none is reused after a restart.
    fn allocate_local_producer_id(&self) -> std::io::Result<i64> {
        let mut limit = self
            .producer_id_limit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let id = self.next_producer_id.fetch_add(1, Ordering::SeqCst);
        if id >= *limit {
            let new_limit = id + PRODUCER_ID_BLOCK;
            atomic_write(
                &self.config.log_dir,
                PRODUCER_ID_FILE,
                new_limit.to_string().as_bytes(),
            )?;
            *limit = new_limit;
        }
        Ok(id)
    }

    /// Signals fetches waiting for data.
    pub fn notify_append(&self) {
        self.appends.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies retention and compaction to every partition, and snapshots the producer state of
    /// those whose active segment changed.
    pub fn run_cleanup(&self, now_ms: i64) {
        for t in self.topics() {
            for p in t.local_partitions() {
                if let Err(e) = p.log.apply_retention(now_ms) {
                    tracing::warn!(topic = %t.name, partition = p.index, error = %e, "retention failed");
                }
                match p.log.compact() {
                    Ok(stats) if stats.segments_rewritten > 0 => {
                        tracing::info!(topic = %t.name, partition = p.index, segments = stats.segments_rewritten, records_removed = stats.records_removed, bytes_before = stats.bytes_before, bytes_after = stats.bytes_after, "compacted");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(topic = %t.name, partition = p.index, error = %e, "compaction failed");
                    }
                }
                // After a roll: a crash then costs a walk of the segments since, not the log.
                p.save_producer_snapshot(false);
            }
        }
    }

    /// Flushes and closes every log cleanly, then stops the pipeline.
    pub fn shutdown(&self) {
        let partitions: Vec<Arc<Partition>> = self
            .topics()
            .iter()
            .flat_map(|t| t.local_partitions())
            .collect();
        // Closing a log waits on the disk (a flush, a checkpoint, the clean marker): many at once.
        let _ = crate::disk_parallel::map(partitions.len(), |i| {
            if let Some(p) = partitions.get(i) {
                p.with_replica(|r| r.machine.become_offline());
                p.save_producer_snapshot(true);
                if let Err(e) = p.log.close() {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "closing log");
                }
            }
            Ok::<(), std::convert::Infallible>(())
        });
        if let Some(p) = self
            .pipeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            p.shutdown();
        }
        tracing::info!("broker stopped cleanly");
    }

    /// The pipeline's counters (fsyncs, batches per fsync).
    pub fn pipeline_stats(&self) -> Arc<strata_engine::PipelineStats> {
        self.handle.stats().clone()
    }
}

/// A CreatePartitions assignment names exactly the partitions it adds.
fn check_assignment_count(
    assignments: &[Vec<i32>],
    current: usize,
    count: i32,
) -> Result<(), AdminError> {
    let added = count as usize - current;
    if assignments.len() == added {
        Ok(())
    } else {
        Err(AdminError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!(
                "Increasing the number of partitions by {added} but {} assignments provided",
                assignments.len()
            ),
        ))
    }
}
