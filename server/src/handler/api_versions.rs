//! ApiVersions: built from `supported_versions`, so it advertises exactly what is handled.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};

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

/// The ApiVersions response.
pub fn handle() -> ApiVersionsResponse {
    msg!(ApiVersionsResponse {
        error_code: ErrorCode::None.code(),
        api_keys: versions(),
    })
}

/// The KIP-511 answer to an ApiVersions request of an unknown (newer) version.
pub fn unsupported_response() -> kafka_protocol::messages::ResponseKind {
    kafka_protocol::messages::ResponseKind::ApiVersions(msg!(ApiVersionsResponse {
        error_code: ErrorCode::UnsupportedVersion.code(),
        api_keys: versions(),
    }))
}
