//! Client settings of the operator commands: a `--command-config` properties file and `-X`
//! overrides, in the keys Kafka's Java clients and librdkafka use, turned into the connection's
//! security (TLS, a SASL login).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cluster::link::LinkSecurity;
use crate::sasl::{Login, Mechanism};
use crate::tls::{ReloadingClientConfig, SslSettings};

use super::client::{AdminError, AdminResult};

/// Client properties, `key=value`.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    properties: BTreeMap<String, String>,
}

impl ClientSettings {
    /// Reads a Java properties file (`key=value` or `key: value` lines; `#` and `!` comments),
    /// then applies `overrides` (`key=value` each).
    pub fn load(file: Option<&Path>, overrides: &[String]) -> AdminResult<ClientSettings> {
        let mut properties = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AdminError::Usage(format!("--command-config {}: {e}", path.display()))
            })?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let Some((k, v)) = line.split_once(['=', ':']) else {
                    return Err(AdminError::Usage(format!(
                        "--command-config {}: {line:?} is not key=value",
                        path.display()
                    )));
                };
                properties.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        for kv in overrides {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| AdminError::Usage(format!("-X expects KEY=VALUE, got {kv:?}")))?;
            properties.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(ClientSettings { properties })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// The connection security these settings ask for.
    pub fn link_security(&self) -> AdminResult<LinkSecurity> {
        let protocol = self
            .get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(AdminError::Usage(format!(
                    "security.protocol={other}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                )));
            }
        };
        let tls = if tls {
            Some(Arc::new(
                ReloadingClientConfig::new(self.ssl_settings()?)
                    .map_err(|e| AdminError::Usage(format!("TLS settings: {e}")))?,
            ))
        } else {
            None
        };
        let sasl = if sasl { Some(self.login()?) } else { None };
        Ok(LinkSecurity { tls, sasl })
    }

    fn ssl_settings(&self) -> AdminResult<SslSettings> {
        let read = |key: &str| -> AdminResult<Option<String>> {
            self.get(key)
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map_err(|e| AdminError::Usage(format!("{key}={p}: {e}")))
                })
                .transpose()
        };
        // librdkafka's ssl.certificate.location + ssl.key.location, or Java's PEM keystore.
        let (chain, key) = (read("ssl.certificate.location")?, read("ssl.key.location")?);
        Ok(SslSettings {
            keystore_type: self.get("ssl.keystore.type").map(str::to_string),
            keystore_location: self.get("ssl.keystore.location").map(PathBuf::from),
            keystore_certificate_chain: chain,
            keystore_key: key,
            key_password: self.get("ssl.key.password").map(str::to_string),
            truststore_type: self.get("ssl.truststore.type").map(str::to_string),
            truststore_location: self
                .get("ssl.truststore.location")
                .or_else(|| self.get("ssl.ca.location"))
                .map(PathBuf::from),
            truststore_certificates: None,
            enabled_protocols: self.get("ssl.enabled.protocols").map(str::to_string),
            ..SslSettings::default()
        })
    }

    fn login(&self) -> AdminResult<Login> {
        let name = self.get("sasl.mechanism").unwrap_or("PLAIN");
        let mechanism = Mechanism::parse(&name.to_ascii_uppercase())
            .filter(|m| *m != Mechanism::OAuthBearer)
            .ok_or_else(|| {
                AdminError::Usage(format!(
                    "sasl.mechanism={name}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                ))
            })?;
        // librdkafka's keys win over the JAAS text's options, one by one.
        let jaas = self
            .get("sasl.jaas.config")
            .and_then(crate::sasl::parse_login_jaas);
        let user = self
            .get("sasl.username")
            .map(str::to_string)
            .or_else(|| jaas.as_ref().map(|j| j.0.clone()));
        let password = self
            .get("sasl.password")
            .map(str::to_string)
            .or_else(|| jaas.as_ref().map(|j| j.1.clone()));
        let (Some(user), Some(password)) = (user, password) else {
            return Err(AdminError::Usage(
                "SASL needs sasl.username and sasl.password (or a sasl.jaas.config with username=\"...\" password=\"...\")"
                    .to_string(),
            ));
        };
        Ok(Login {
            mechanism,
            user,
            password,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_java_command_config_gives_a_sasl_login() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        std::fs::write(
            &path,
            "# admin\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cret\";\n",
        )
        .unwrap();
        let link = ClientSettings::load(Some(&path), &[])
            .unwrap()
            .link_security()
            .unwrap();
        let login = link.sasl.unwrap();
        assert_eq!(login.mechanism, Mechanism::ScramSha256);
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(link.tls.is_none());
    }

    #[test]
    fn bad_settings_are_named() {
        let e = ClientSettings::load(None, &["security.protocol=SASL_FOO".into()])
            .unwrap()
            .link_security()
            .unwrap_err();
        assert!(e.to_string().contains("security.protocol=SASL_FOO"), "{e}");
        let e = ClientSettings::load(None, &["security.protocol=SASL_PLAINTEXT".into()])
            .unwrap()
            .link_security()
            .unwrap_err();
        assert!(e.to_string().contains("sasl.username"), "{e}");
        assert!(ClientSettings::load(None, &["novalue".into()]).is_err());
    }
}
