//! Listeners as Kafka names them: `listeners=PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093`,
//! each listener's security protocol from `listener.security.protocol.map` (by default a
//! listener named after a protocol uses that protocol), and the address clients are told from
//! `advertised.listeners` (by name; by default the listener's own address).
//!
//! Supported protocols: PLAINTEXT, SSL (TLS, `tls.rs`), SASL_PLAINTEXT and SASL_SSL (`sasl.rs`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A listener's security protocol (`security.protocol` on the client side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No encryption, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plaintext (not supported yet).
    SaslPlaintext,
    /// SASL over TLS (not supported yet).
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses Kafka's name of a protocol (case-insensitive).
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener name, upper case (`PLAINTEXT`, `SSL`, `CLIENT`, ...).
    pub name: String,
    /// Host as written (an IP address for `listeners`).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Why a listener setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ListenerError(pub String);

/// Parses a comma-separated list of `NAME://host:port` (a bare `host:port` is `PLAINTEXT`).
/// Names must be unique.
pub fn parse_endpoints(value: &str) -> Result<Vec<Endpoint>, ListenerError> {
    let mut out: Vec<Endpoint> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, addr) = match entry.split_once("://") {
            Some((name, rest)) => (name.trim().to_ascii_uppercase(), rest),
            None => ("PLAINTEXT".to_string(), entry),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ListenerError(format!("{entry:?}: invalid listener name")));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| ListenerError(format!("{entry:?}: expected NAME://host:port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| ListenerError(format!("{entry:?}: invalid port")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if out.iter().any(|e| e.name == name) {
            return Err(ListenerError(format!(
                "{entry:?}: listener name {name} appears twice"
            )));
        }
        out.push(Endpoint { name, host, port });
    }
    if out.is_empty() {
        return Err(ListenerError("no listener given".into()));
    }
    Ok(out)
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(
    value: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, ListenerError> {
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| ListenerError(format!("{entry:?}: expected NAME:PROTOCOL")))?;
        let proto = SecurityProtocol::parse(proto.trim()).ok_or_else(|| {
            ListenerError(format!(
                "{entry:?}: unknown security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
            ))
        })?;
        map.insert(name.trim().to_ascii_uppercase(), proto);
    }
    Ok(map)
}

/// A listener as the broker runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// Where it binds.
    pub bind: SocketAddr,
    /// The address clients connected to it are told (Metadata, FindCoordinator).
    pub advertised: (String, u16),
}

/// Resolves `listeners`, `advertised.listeners` and `listener.security.protocol.map` into the
/// listeners to run. A listener's protocol comes from the map, or from its name when the name
/// is a protocol's; its advertised address from the entry of the same name, or its own.
pub fn resolve(
    listeners: &[Endpoint],
    advertised: &[Endpoint],
    map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, ListenerError> {
    let mut out = Vec::with_capacity(listeners.len());
    for l in listeners {
        let protocol = map
            .get(&l.name)
            .copied()
            .or_else(|| SecurityProtocol::parse(&l.name))
            .ok_or_else(|| {
                ListenerError(format!(
                    "listener {} has no security protocol: add {}:<PROTOCOL> to listener.security.protocol.map",
                    l.name, l.name
                ))
            })?;
        let ip: IpAddr = if l.host == "localhost" {
            [127, 0, 0, 1].into()
        } else if l.host.is_empty() {
            [0, 0, 0, 0].into()
        } else {
            l.host.parse().map_err(|_| {
                ListenerError(format!(
                    "listener {}: the host must be an IP address, not {:?}",
                    l.name, l.host
                ))
            })?
        };
        let bind = SocketAddr::new(ip, l.port);
        let advertised = advertised
            .iter()
            .find(|a| a.name == l.name)
            .map(|a| (a.host.clone(), a.port))
            .unwrap_or_else(|| (ip.to_string(), l.port));
        out.push(Listener {
            name: l.name.clone(),
            protocol,
            bind,
            advertised,
        });
    }
    if let Some(a) = advertised
        .iter()
        .find(|a| !listeners.iter().any(|l| l.name == a.name))
    {
        return Err(ListenerError(format!(
            "advertised.listeners names {}, which is not among listeners",
            a.name
        )));
    }
    Ok(out)
}

/// A listener the broker has bound: its settings and, for SSL, its TLS acceptor.
pub struct Bound {
    /// The listener.
    pub listener: Listener,
    /// The TLS side of an SSL listener.
    pub tls: Option<Arc<crate::tls::ReloadingAcceptor>>,
}

impl Bound {
    /// Whether connections authenticate with SASL first.
    pub fn sasl(&self) -> bool {
        matches!(
            self.listener.protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_resolve_by_name_with_protocols_and_advertised_addresses() {
        let ls = parse_endpoints("PLAINTEXT://127.0.0.1:9092, SSL://0.0.0.0:9093,client://:9094")
            .unwrap();
        let adv = parse_endpoints("SSL://kafka.example:19093").unwrap();
        let map = parse_protocol_map("CLIENT:SSL").unwrap();
        let r = resolve(&ls, &adv, &map).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(r[0].advertised, ("127.0.0.1".into(), 9092));
        assert_eq!(r[1].protocol, SecurityProtocol::Ssl);
        assert_eq!(r[1].advertised, ("kafka.example".into(), 19093));
        assert_eq!(r[2].name, "CLIENT");
        assert_eq!(r[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(r[2].bind, "0.0.0.0:9094".parse().unwrap());
    }

    #[test]
    fn bad_listener_settings_say_what_is_wrong() {
        assert!(parse_endpoints("PLAINTEXT://a:1,PLAINTEXT://b:2").is_err());
        assert!(parse_endpoints("PLAINTEXT://127.0.0.1").is_err());
        assert!(parse_endpoints("PLAINTEXT://127.0.0.1:99999").is_err());
        assert!(parse_protocol_map("X:TLS").is_err());
        let ls = parse_endpoints("INTERNAL://127.0.0.1:9092").unwrap();
        let e = resolve(&ls, &[], &BTreeMap::new()).unwrap_err();
        assert!(e.0.contains("listener.security.protocol.map"), "{e}");
        let adv = parse_endpoints("OTHER://x:1").unwrap();
        let map = parse_protocol_map("INTERNAL:PLAINTEXT").unwrap();
        assert!(resolve(&ls, &adv, &map).is_err());
    }
}
