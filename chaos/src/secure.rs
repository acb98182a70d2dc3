//! `--secure-links`: the cluster's own links secured as a production cluster would secure them.
//! A CA and one node certificate (rcgen) under the run directory; brokers replicate over a
//! SASL_SSL inter-broker listener logging in with SCRAM-SHA-512 (the user added to each voter's
//! data directory before the first start, so the quorum bootstraps it); every link to a
//! controller is mutual TLS; the workload's clients (librdkafka) connect to a SASL_SSL
//! listener with SCRAM-SHA-512; an authorizer checks every request (the brokers' user and
//! certificate, the clients' user and the harness's own checks on a PLAINTEXT listener
//! (`User:ANONYMOUS`) are super users: the faults, not the ACLs, are under test).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The brokers' SCRAM password (a test cluster's).
const PASSWORD: &str = "chaos-broker-secret";
/// The workload clients' SCRAM password.
const CLIENT_PASSWORD: &str = "chaos-client-secret";

/// The files and settings of a run with secure links.
#[derive(Debug, Clone)]
pub struct SecureLinks {
    keystore: PathBuf,
    truststore: PathBuf,
}

/// Writes the CA and the node certificate under `dir/tls`.
pub fn prepare(dir: &Path) -> Result<SecureLinks, BoxError> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "strata-chaos CA");
    let ca_key = KeyPair::generate()?;
    let ca = ca.self_signed(&ca_key)?;
    let mut node = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    node.distinguished_name
        .push(DnType::CommonName, "strata-chaos-node");
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = node.signed_by(&key, &ca, &ca_key)?;
    let links = SecureLinks {
        keystore: tls.join("node.pem"),
        truststore: tls.join("ca.pem"),
    };
    std::fs::write(
        &links.keystore,
        format!("{}{}", key.serialize_pem(), cert.pem()),
    )?;
    std::fs::write(&links.truststore, ca.pem())?;
    Ok(links)
}

impl SecureLinks {
    /// One node's settings: its PLAINTEXT listener on `kafka` (the harness's checks), its
    /// SASL_SSL inter-broker listener on `internal`, its SASL_SSL client listener on `client`.
    pub fn settings(&self, kafka: u16, internal: u16, client: u16) -> Vec<String> {
        let jaas = format!(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"{PASSWORD}\";"
        );
        vec![
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{kafka},INTERNAL://127.0.0.1:{internal},CLIENT://127.0.0.1:{client}"
            ),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,CLIENT:SASL_SSL,CONTROLLER:SSL"
                .into(),
            "inter.broker.listener.name=INTERNAL".into(),
            "controller.listener.names=CONTROLLER".into(),
            "sasl.enabled.mechanisms=SCRAM-SHA-512".into(),
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512".into(),
            format!("listener.name.internal.scram-sha-512.sasl.jaas.config={jaas}"),
            format!("ssl.keystore.location={}", self.keystore.display()),
            format!("ssl.truststore.location={}", self.truststore.display()),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
            "super.users=User:broker;User:chaos-client;User:ANONYMOUS;User:CN=strata-chaos-node".into(),
        ]
    }

    /// The librdkafka settings of the workload's clients.
    pub fn client_settings(&self) -> Vec<(String, String)> {
        [
            ("security.protocol", "SASL_SSL".to_string()),
            ("sasl.mechanisms", "SCRAM-SHA-512".to_string()),
            ("sasl.username", "chaos-client".to_string()),
            ("sasl.password", CLIENT_PASSWORD.to_string()),
            ("ssl.ca.location", self.truststore.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Adds the brokers' and the clients' SCRAM users to a data directory (`strata scram
    /// add`).
    pub fn add_scram_users(&self, bin: &Path, data_dir: &Path) -> Result<(), BoxError> {
        for (user, password) in [("broker", PASSWORD), ("chaos-client", CLIENT_PASSWORD)] {
            let out = std::process::Command::new(bin)
                .args(["scram", "add", "--data-dir"])
                .arg(data_dir)
                .arg(format!("SCRAM-SHA-512=[name={user},password={password}]"))
                .output()?;
            if !out.status.success() {
                return Err(
                    format!("strata scram add: {}", String::from_utf8_lossy(&out.stderr)).into(),
                );
            }
        }
        Ok(())
    }
}
