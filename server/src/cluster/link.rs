//! The cluster's own links, secured as configured: a broker's or controller's connections to the
//! controller listener (Raft between voters, and brokers' requests to the active controller)
//! and a follower's connections to its leader's inter-broker listener.
//!
//! - The controller listener (`controller.listener.names`, its protocol from
//!   `listener.security.protocol.map`) is PLAINTEXT or SSL. SSL there is always mutual: the
//!   controller refuses a peer without a certificate from the truststore's CAs, so a process
//!   without the cluster's credentials can neither vote nor register nor ask for anything.
//! - The inter-broker listener (`inter.broker.listener.name`) is any of the four protocols; on
//!   SSL the follower presents its keystore's certificate, on SASL it logs in with
//!   `sasl.mechanism.inter.broker.protocol` and the `username`/`password` of the listener's
//!   JAAS text, as Kafka's brokers do; the leader then authorizes the follower's principal
//!   (CLUSTER_ACTION on the cluster) when an authorizer is on.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::config::BrokerConfig;
use crate::listener::SecurityProtocol;
use crate::sasl::Login;

/// How long a link's TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How this node dials one kind of link.
#[derive(Clone, Default)]
pub struct LinkSecurity {
    /// TLS, with this node's certificate when it has one (reloaded when its files change).
    pub tls: Option<Arc<crate::tls::ReloadingClientConfig>>,
    /// SASL login (inter-broker links only: the controller link is not Kafka's protocol).
    pub sasl: Option<Login>,
}

impl std::fmt::Debug for LinkSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// Why the links' settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

impl LinkSecurity {
    /// How this node dials the controller listener.
    pub fn controller(config: &BrokerConfig) -> Result<LinkSecurity, LinkError> {
        match config.controller_protocol() {
            SecurityProtocol::Plaintext => Ok(LinkSecurity::default()),
            SecurityProtocol::Ssl => Ok(LinkSecurity {
                tls: Some(client_tls(config, "the controller listener")?),
                sasl: None,
            }),
            other => Err(LinkError(format!(
                "the controller listener uses {}: it supports PLAINTEXT and SSL (mutual TLS)",
                other.name()
            ))),
        }
    }

    /// How a follower dials its leader's inter-broker listener.
    pub fn inter_broker(config: &BrokerConfig) -> Result<LinkSecurity, LinkError> {
        let name = config.inter_broker_listener_name();
        let protocol = config
            .resolved_listeners()
            .map_err(|e| LinkError(e.to_string()))?
            .into_iter()
            .find(|l| l.name == name)
            .map(|l| l.protocol)
            .ok_or_else(|| {
                LinkError(format!(
                    "inter.broker.listener.name={name} is not among listeners"
                ))
            })?;
        let tls = match protocol {
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                Some(client_tls(config, "the inter-broker listener")?)
            }
            _ => None,
        };
        let sasl = match protocol {
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => {
                let mechanism = config.sasl_mechanism_inter_broker;
                let (user, password) = config
                    .sasl_logins
                    .get(&(name.clone(), mechanism))
                    .cloned()
                    .ok_or_else(|| {
                        LinkError(format!(
                            "the inter-broker listener {name} uses SASL: give this broker's login as username=\"...\" password=\"...\" in listener.name.{}.{}.sasl.jaas.config",
                            name.to_ascii_lowercase(),
                            mechanism.name().to_ascii_lowercase()
                        ))
                    })?;
                Some(Login {
                    mechanism,
                    user,
                    password,
                })
            }
            _ => None,
        };
        Ok(LinkSecurity { tls, sasl })
    }

    /// Connects to `addr` (`host:port`) within `timeout`, with TLS if configured (the peer's
    /// certificate must name `host`).
    pub async fn connect(&self, addr: &str, timeout: Duration) -> std::io::Result<LinkStream> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(LinkStream::Plain(tcp));
        };
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host}: {e}"))
        })?;
        let connector = tokio_rustls::TlsConnector::from(tls.config());
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(LinkStream::Tls(Box::new(stream)))
    }
}

fn client_tls(
    config: &BrokerConfig,
    what: &str,
) -> Result<Arc<crate::tls::ReloadingClientConfig>, LinkError> {
    crate::tls::ReloadingClientConfig::new(config.ssl.clone())
        .map(Arc::new)
        .map_err(|e| LinkError(format!("{what}: {e}")))
}

/// The server side of the controller listener: `None` for PLAINTEXT; for SSL, TLS that
/// requires a client certificate whatever `ssl.client.auth` says.
pub fn controller_acceptor(
    config: &BrokerConfig,
) -> Result<Option<Arc<crate::tls::ReloadingAcceptor>>, LinkError> {
    if config.controller_protocol() != SecurityProtocol::Ssl {
        return Ok(None);
    }
    let settings = crate::tls::SslSettings {
        client_auth: crate::tls::ClientAuth::Required,
        ..config.ssl.clone()
    };
    crate::tls::ReloadingAcceptor::new(settings)
        .map(|a| Some(Arc::new(a)))
        .map_err(|e| LinkError(format!("the controller listener: {e}")))
}

/// A link's byte stream: plain TCP, or the client side of TLS.
pub type LinkStream = crate::client_stream::MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;
