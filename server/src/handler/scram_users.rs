//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM users managed
//! over the Kafka protocol, as `kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[...]'`
//! does. The client sends a salted password (PBKDF2 of the password with its salt and
//! iterations), never the password; the broker keeps the keys derived from it
//! (`sasl::ScramStore`). Describing needs DESCRIBE on the cluster, altering ALTER.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_request::AlterUserScramCredentialsRequest;
use kafka_protocol::messages::alter_user_scram_credentials_response::{
    AlterUserScramCredentialsResponse, AlterUserScramCredentialsResult,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::DescribeUserScramCredentialsRequest;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResponse, DescribeUserScramCredentialsResult,
};

use super::{Context, s};
use crate::acl::Operation;
use crate::cluster::wire::ControllerRequest;
use crate::error_code::ErrorCode;
use crate::sasl::{MAX_ITERATIONS, MIN_ITERATIONS, Mechanism, ScramCredential};

/// DescribeUserScramCredentials: every user with a credential (users null), or those named
/// (RESOURCE_NOT_FOUND for one without any, DUPLICATE_RESOURCE for one named twice).
pub fn describe(
    ctx: &Context,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.authorized_on_cluster(Operation::Describe) {
        return msg!(DescribeUserScramCredentialsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            error_message: Some(s("not authorized to describe the cluster")),
        });
    }
    let all = ctx.scram.describe();
    let info = |mechanisms: &Vec<(Mechanism, u32)>| {
        mechanisms
            .iter()
            .map(|(m, i)| {
                msg!(CredentialInfo {
                    mechanism: m.scram_type(),
                    iterations: i32::try_from(*i).unwrap_or(i32::MAX),
                })
            })
            .collect()
    };
    let results = match r.users {
        None => all
            .iter()
            .map(|(user, mechanisms)| {
                msg!(DescribeUserScramCredentialsResult {
                    user: s(user),
                    credential_infos: info(mechanisms),
                })
            })
            .collect(),
        Some(users) => {
            let mut seen = BTreeMap::new();
            for u in &users {
                *seen.entry(u.name.as_str()).or_insert(0) += 1;
            }
            users
                .iter()
                .map(|u| u.name.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|user| {
                    let (code, message, infos) = if seen.get(user).copied().unwrap_or(0) > 1 {
                        (
                            ErrorCode::DuplicateResource,
                            Some("cannot describe the same user twice in one request"),
                            Vec::new(),
                        )
                    } else {
                        match all.get(user) {
                            Some(m) => (ErrorCode::None, None, info(m)),
                            None => (
                                ErrorCode::ResourceNotFound,
                                Some("attempt to describe a user credential that does not exist"),
                                Vec::new(),
                            ),
                        }
                    };
                    msg!(DescribeUserScramCredentialsResult {
                        user: s(user),
                        error_code: code.code(),
                        error_message: message.map(s),
                        credential_infos: infos,
                    })
                })
                .collect()
        }
    };
    msg!(DescribeUserScramCredentialsResponse {
        error_code: 0,
        results,
    })
}

/// AlterUserScramCredentials: deletions and upsertions, answered per user. A user altered
/// twice for one mechanism is DUPLICATE_RESOURCE, an unknown mechanism
/// UNSUPPORTED_SASL_MECHANISM, iterations outside 4096-16384 or an empty salt, or a salted
/// password of the wrong length, UNACCEPTABLE_CREDENTIAL, deleting what does not exist
/// RESOURCE_NOT_FOUND; a user with any error has none of its alterations applied.
pub async fn alter(
    ctx: &Context,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let users: BTreeSet<String> = r
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(r.upsertions.iter().map(|u| u.name.to_string()))
        .collect();
    let result = |user: &str, code: ErrorCode, message: Option<String>| {
        msg!(AlterUserScramCredentialsResult {
            user: s(user),
            error_code: code.code(),
            error_message: message.as_deref().map(s),
        })
    };
    if !ctx.authorized_on_cluster(Operation::Alter) {
        let results = users
            .iter()
            .map(|u| {
                result(
                    u,
                    ErrorCode::ClusterAuthorizationFailed,
                    Some("not authorized to alter the cluster".into()),
                )
            })
            .collect();
        return msg!(AlterUserScramCredentialsResponse { results });
    }
    // Each user's changes: (mechanism, new credential or None to delete), or its first error.
    type Changes = Result<Vec<(Mechanism, Option<ScramCredential>)>, (ErrorCode, String)>;
    let mut changes: BTreeMap<String, Changes> =
        users.iter().map(|u| (u.clone(), Ok(Vec::new()))).collect();
    let mut add = |user: &str,
                   mechanism: i8,
                   change: Result<Option<ScramCredential>, (ErrorCode, String)>| {
        let Some(Ok(list)) = changes.get_mut(user) else {
            return;
        };
        let outcome = match (Mechanism::from_scram_type(mechanism), change) {
            (None, _) => Err((
                ErrorCode::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism {mechanism}"),
            )),
            (Some(m), _) if list.iter().any(|(x, _)| *x == m) => Err((
                ErrorCode::DuplicateResource,
                "a user credential cannot be altered twice in the same request".into(),
            )),
            (Some(_), Err(e)) => Err(e),
            (Some(m), Ok(c)) => {
                list.push((m, c));
                Ok(())
            }
        };
        if let Err(e) = outcome {
            changes.insert(user.to_string(), Err(e));
        }
    };
    for d in &r.deletions {
        let user = d.name.as_str();
        let exists = Mechanism::from_scram_type(d.mechanism)
            .is_some_and(|m| ctx.scram.get(user, m).is_some());
        let change = if user.is_empty() {
            Err((
                ErrorCode::UnacceptableCredential,
                "the user name is empty".into(),
            ))
        } else if exists || Mechanism::from_scram_type(d.mechanism).is_none() {
            Ok(None)
        } else {
            Err((
                ErrorCode::ResourceNotFound,
                "attempt to delete a user credential that does not exist".into(),
            ))
        };
        add(user, d.mechanism, change);
    }
    for u in &r.upsertions {
        let user = u.name.as_str();
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        let change = match Mechanism::from_scram_type(u.mechanism) {
            _ if user.is_empty() => Err((
                ErrorCode::UnacceptableCredential,
                "the user name is empty".into(),
            )),
            _ if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) => Err((
                ErrorCode::UnacceptableCredential,
                format!("iterations must be from {MIN_ITERATIONS} to {MAX_ITERATIONS}"),
            )),
            _ if u.salt.is_empty() => Err((
                ErrorCode::UnacceptableCredential,
                "the salt is empty".into(),
            )),
            Some(m) if u.salted_password.len() != m.key_len() => Err((
                ErrorCode::UnacceptableCredential,
                format!(
                    "a {} salted password has {} bytes, not {}",
                    m.name(),
                    m.key_len(),
                    u.salted_password.len()
                ),
            )),
            Some(m) => Ok(Some(ScramCredential::from_salted_password(
                m,
                &u.salt,
                iterations,
                &u.salted_password,
            ))),
            None => Ok(None),
        };
        add(user, u.mechanism, change);
    }
    // In a cluster, every valid change goes to the metadata quorum in one call; its outcome
    // is every such user's.
    let replicated: Option<Result<(), (ErrorCode, String)>> = match &ctx.broker.cluster {
        None => None,
        Some(cluster) => {
            let all: Vec<_> = changes
                .iter()
                .filter_map(|(user, c)| Some((user, c.as_ref().ok()?)))
                .flat_map(|(user, list)| {
                    list.iter().map(|(m, c)| {
                        (
                            user.clone(),
                            m.name().to_string(),
                            c.as_ref().map(ScramCredential::to_entry),
                        )
                    })
                })
                .collect();
            Some(if all.is_empty() {
                Ok(())
            } else {
                cluster
                    .admin_call(ControllerRequest::AlterScramCredentials { changes: all })
                    .await
            })
        }
    };
    let results = changes
        .into_iter()
        .map(|(user, outcome)| match (outcome, &replicated) {
            (Err((code, message)), _) => result(&user, code, Some(message)),
            (Ok(_), Some(Err((code, message)))) => result(&user, *code, Some(message.clone())),
            (Ok(list), replicated) => {
                if replicated.is_none() {
                    // The standalone broker writes and fsyncs its credential file.
                    for (m, c) in list {
                        if let Err(e) = crate::blocking::run(|| ctx.scram.set(&user, m, c)) {
                            return result(&user, ErrorCode::UnknownServerError, Some(e));
                        }
                    }
                }
                tracing::info!(user = %user, by = %crate::connection::principal(), "SCRAM credentials altered");
                result(&user, ErrorCode::None, None)
            }
        })
        .collect();
    msg!(AlterUserScramCredentialsResponse { results })
}
