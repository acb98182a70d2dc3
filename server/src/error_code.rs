//! Kafka error codes, as explicit discriminants. A retired code stays retired: never reuse a
//! number for another meaning.

/// The Kafka protocol error codes Strata returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i16)]
pub enum ErrorCode {
    /// Success.
    None = 0,
    /// The requested offset is outside the log.
    OffsetOutOfRange = 1,
    /// A record failed its CRC or framing check.
    CorruptMessage = 2,
    /// The topic or partition does not exist.
    UnknownTopicOrPartition = 3,
    /// This broker does not lead the partition.
    NotLeaderOrFollower = 6,
    /// The request timed out (acks=all not satisfied in time).
    RequestTimedOut = 7,
    /// A batch is larger than max.message.bytes.
    MessageTooLarge = 10,
    /// The group coordinator is still loading.
    CoordinatorLoadInProgress = 14,
    /// This broker does not coordinate the group.
    NotCoordinator = 16,
    /// The topic name is not valid.
    InvalidTopicException = 17,
    /// Fewer in-sync replicas than min.insync.replicas.
    NotEnoughReplicas = 19,
    /// The acks value is not 0, 1 or -1.
    InvalidRequiredAcks = 21,
    /// The generation id is stale.
    IllegalGeneration = 22,
    /// The member's protocol type or protocols do not match the group's.
    InconsistentGroupProtocol = 23,
    /// The group id is empty or invalid.
    InvalidGroupId = 24,
    /// The member id is not known to the group.
    UnknownMemberId = 25,
    /// The session timeout is outside the broker's bounds.
    InvalidSessionTimeout = 26,
    /// The group is rebalancing.
    RebalanceInProgress = 27,
    /// The commit's offset metadata is too large.
    OffsetMetadataTooLarge = 12,
    /// The principal may not do this to the topic.
    TopicAuthorizationFailed = 29,
    /// The principal may not do this to the group.
    GroupAuthorizationFailed = 30,
    /// The principal may not do this to the cluster.
    ClusterAuthorizationFailed = 31,
    /// ACL APIs on a broker without an authorizer.
    SecurityDisabled = 54,
    /// KIP-554: the named user has no credential (or not that one).
    ResourceNotFound = 91,
    /// KIP-554: the same user (and mechanism) twice in one request.
    DuplicateResource = 92,
    /// KIP-554: iterations, salt or salted password out of bounds.
    UnacceptableCredential = 93,
    /// SaslHandshake: the mechanism is not enabled on this listener.
    UnsupportedSaslMechanism = 33,
    /// A SASL request out of its place (after authentication, or on a listener without SASL).
    IllegalSaslState = 34,
    /// The API version is not supported.
    UnsupportedVersion = 35,
    /// The topic already exists.
    TopicAlreadyExists = 36,
    /// The partition count is invalid.
    InvalidPartitions = 37,
    /// The replication factor is invalid.
    InvalidReplicationFactor = 38,
    /// A manual replica assignment names brokers it cannot use.
    InvalidReplicaAssignment = 39,
    /// The request is malformed.
    InvalidRequest = 42,
    /// SASL authentication failed (wrong user name or password).
    SaslAuthenticationFailed = 58,
    /// Fetch: no fetch session with that id (evicted, or never opened).
    FetchSessionIdNotFound = 70,
    /// Fetch: the session epoch is not the one that follows the last.
    InvalidFetchSessionEpoch = 71,
    /// ElectLeaders: the preferred replica is not live and in sync.
    PreferredLeaderNotAvailable = 80,
    /// ElectLeaders: no live replica can lead.
    EligibleLeadersNotAvailable = 83,
    /// ElectLeaders: the partition already has the leader the election would give it.
    ElectionNotNeeded = 84,
    /// AlterPartitionReassignments: a cancel of a partition that is not being reassigned.
    NoReassignmentInProgress = 85,
    /// A config value is invalid.
    InvalidConfig = 40,
    /// The sequence number is out of order for this producer.
    OutOfOrderSequenceNumber = 45,
    /// The sequence number duplicates an earlier batch.
    DuplicateSequenceNumber = 46,
    /// The producer epoch is older than the current one.
    InvalidProducerEpoch = 47,
    /// The group still has members.
    NonEmptyGroup = 68,
    /// The group does not exist.
    GroupIdNotFound = 69,
    /// OffsetDelete of a topic an active member of the group subscribes to.
    GroupSubscribedToTopic = 86,
    /// The producer id is not known.
    UnknownProducerId = 59,
    /// A broker-side error with no better code.
    UnknownServerError = -1,
    /// The storage of the partition failed.
    KafkaStorageError = 56,
    /// The member must rejoin with the member id it was given (KIP-394).
    MemberIdRequired = 79,
    /// The topic id is not known.
    UnknownTopicId = 100,
    /// UnregisterBroker of an id that is not registered.
    BrokerIdNotRegistered = 102,
    /// The principal may not use the transactional id.
    TransactionalIdAuthorizationFailed = 53,
    /// The partition has no leader right now (an election is under way).
    LeaderNotAvailable = 5,
    /// The broker is not available.
    BrokerNotAvailable = 8,
    /// The group coordinator is not available (its partition has no leader yet).
    CoordinatorNotAvailable = 15,
    /// This node is not the active controller.
    NotController = 41,
    /// The request's leader epoch is older than the replica's.
    FencedLeaderEpoch = 74,
    /// The request's leader epoch is newer than the replica knows.
    UnknownLeaderEpoch = 75,
    /// The broker's registration epoch is stale: register again.
    StaleBrokerEpoch = 77,
    /// A replica named in an ISR change may not join it.
    IneligibleReplica = 107,
    /// A record the topic cannot take (a record without a key in a compacted topic).
    InvalidRecord = 87,
    /// The consumer group member's epoch is not the coordinator's: abandon the assignment
    /// and rejoin (KIP-848).
    FencedMemberEpoch = 110,
    /// A static member's instance id is still held by another live member (KIP-848).
    UnreleasedInstanceId = 111,
    /// The server-side assignor named in a heartbeat is not one this broker has (KIP-848).
    UnsupportedAssignor = 112,
    /// A commit or fetch names a member epoch that is not the member's current one (KIP-848).
    StaleMemberEpoch = 113,
    /// A subscription regular expression does not compile (KIP-848).
    InvalidRegularExpression = 128,
    /// The request is not valid in the transaction's current state (EndTxn without one,
    /// AddPartitionsToTxn while it is being completed by the wrong producer).
    InvalidTxnState = 48,
    /// The producer id is not the transactional id's current one.
    InvalidProducerIdMapping = 49,
    /// `transaction.timeout.ms` above `transaction.max.timeout.ms`, or not positive.
    InvalidTransactionTimeout = 50,
    /// The transaction's previous commit or abort is still being written: retry.
    ConcurrentTransactions = 51,
    /// A marker from a coordinator older than the partition knows.
    TransactionCoordinatorFenced = 52,
    /// A newer producer with the same transactional id has fenced this one.
    ProducerFenced = 90,
    /// A transactional batch for a partition the transaction never added (KIP-890): abort.
    TransactionAbortable = 120,
    /// Not attempted because another part of the request failed.
    OperationNotAttempted = 55,
    /// DescribeTransactions of an id the coordinator does not know.
    TransactionalIdNotFound = 105,
    /// OffsetFetch with `require_stable` of an offset an open transaction has committed.
    UnstableOffsetCommit = 88,
}

impl ErrorCode {
    /// The code with this wire value, if Strata knows it.
    pub fn from_code(code: i16) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            None,
            OffsetOutOfRange,
            CorruptMessage,
            UnknownTopicOrPartition,
            NotLeaderOrFollower,
            RequestTimedOut,
            MessageTooLarge,
            CoordinatorLoadInProgress,
            NotCoordinator,
            InvalidTopicException,
            NotEnoughReplicas,
            InvalidRequiredAcks,
            IllegalGeneration,
            InconsistentGroupProtocol,
            InvalidGroupId,
            UnknownMemberId,
            InvalidSessionTimeout,
            RebalanceInProgress,
            OffsetMetadataTooLarge,
            UnsupportedVersion,
            TopicAlreadyExists,
            InvalidPartitions,
            InvalidReplicationFactor,
            InvalidReplicaAssignment,
            InvalidRequest,
            FetchSessionIdNotFound,
            InvalidFetchSessionEpoch,
            PreferredLeaderNotAvailable,
            EligibleLeadersNotAvailable,
            ElectionNotNeeded,
            NoReassignmentInProgress,
            InvalidConfig,
            OutOfOrderSequenceNumber,
            DuplicateSequenceNumber,
            InvalidProducerEpoch,
            NonEmptyGroup,
            GroupIdNotFound,
            GroupSubscribedToTopic,
            UnknownProducerId,
            UnknownServerError,
            KafkaStorageError,
            MemberIdRequired,
            UnknownTopicId,
            BrokerIdNotRegistered,
            TransactionalIdAuthorizationFailed,
            LeaderNotAvailable,
            BrokerNotAvailable,
            CoordinatorNotAvailable,
            NotController,
            FencedLeaderEpoch,
            UnknownLeaderEpoch,
            StaleBrokerEpoch,
            IneligibleReplica,
            InvalidRecord,
            FencedMemberEpoch,
            UnreleasedInstanceId,
            UnsupportedAssignor,
            StaleMemberEpoch,
            InvalidRegularExpression,
            InvalidTxnState,
            InvalidProducerIdMapping,
            InvalidTransactionTimeout,
            ConcurrentTransactions,
            TransactionCoordinatorFenced,
            ProducerFenced,
            TransactionAbortable,
            OperationNotAttempted,
            TransactionalIdNotFound,
            UnstableOffsetCommit,
            TopicAuthorizationFailed,
            GroupAuthorizationFailed,
            ClusterAuthorizationFailed,
            SecurityDisabled,
            ResourceNotFound,
            DuplicateResource,
            UnacceptableCredential,
            UnsupportedSaslMechanism,
            IllegalSaslState,
            SaslAuthenticationFailed,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

impl ErrorCode {
    /// The wire value.
    pub const fn code(self) -> i16 {
        self as i16
    }
}

impl From<&strata_engine::LogError> for ErrorCode {
    fn from(e: &strata_engine::LogError) -> ErrorCode {
        use strata_engine::LogError;
        match e {
            LogError::InvalidBatch(_) => ErrorCode::CorruptMessage,
            LogError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::Closed => ErrorCode::NotLeaderOrFollower,
            LogError::Corruption { .. }
            | LogError::Io { .. }
            | LogError::Malformed { .. }
            | LogError::DirectoryLocked { .. } => ErrorCode::KafkaStorageError,
        }
    }
}
