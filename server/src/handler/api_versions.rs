//! ApiVersions: built from `supported_versions`, so it advertises exactly what is handled.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, ApiVersionsResponse, FinalizedFeatureKey, SupportedFeatureKey,
};

use crate::error_code::ErrorCode;

fn versions() -> Vec<ApiVersion> {
    let mut out = Vec::new();
    for key in 0i16..=100 {
        let Ok(api) = ApiKey::try_from(key) else {
            continue;
        };
        if let Some((min, max)) = super::advertised_versions(api) {
            out.push(msg!(ApiVersion {
                api_key: key,
                min_version: min,
                max_version: max,
            }));
        }
    }
    out
}

/// The feature flag of KIP-890 part 2: at level 2 clients add no partitions themselves
/// (Produce v12+, TxnOffsetCommit v5+) and EndTxn v5+ bumps the producer epoch.
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// The transaction version this broker supports and has enabled (finalized).
pub const TRANSACTION_VERSION_LEVEL: i16 = 2;

/// The epoch of the finalized features (they never change: any value from 0 up makes clients
/// take them).
const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// The ApiVersions response (v3+ also carries the features, KIP-584).
pub fn handle() -> ApiVersionsResponse {
    msg!(ApiVersionsResponse {
        error_code: ErrorCode::None.code(),
        api_keys: versions(),
        supported_features: vec![msg!(SupportedFeatureKey {
            name: super::s(TRANSACTION_VERSION),
            min_version: 0,
            max_version: TRANSACTION_VERSION_LEVEL,
        })],
        finalized_features_epoch: FINALIZED_FEATURES_EPOCH,
        finalized_features: vec![msg!(FinalizedFeatureKey {
            name: super::s(TRANSACTION_VERSION),
            max_version_level: TRANSACTION_VERSION_LEVEL,
            min_version_level: TRANSACTION_VERSION_LEVEL,
        })],
    })
}

/// The KIP-511 answer to an ApiVersions request of an unknown (newer) version.
pub fn unsupported_response() -> kafka_protocol::messages::ResponseKind {
    kafka_protocol::messages::ResponseKind::ApiVersions(msg!(ApiVersionsResponse {
        error_code: ErrorCode::UnsupportedVersion.code(),
        api_keys: versions(),
    }))
}
