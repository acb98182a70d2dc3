//! TLS for SSL listeners, with rustls (ring), from PEM files or PEM text as Kafka configures
//! them (KIP-651): `ssl.keystore.type=PEM` with `ssl.keystore.location` (one file holding the
//! private key and the certificate chain) or `ssl.keystore.certificate.chain` and
//! `ssl.keystore.key`; `ssl.truststore.type=PEM` with `ssl.truststore.location` or
//! `ssl.truststore.certificates` (the CAs client certificates must chain to);
//! `ssl.client.auth` = `none` | `requested` | `required`; `ssl.enabled.protocols` (TLSv1.2,
//! TLSv1.3). JKS and PKCS12 stores and encrypted keys (`ssl.key.password`) are refused at start
//! with a clear error.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate asked for.
    #[default]
    None,
    /// Asked for; a client without one is still served (a client with a bad one is not).
    Requested,
    /// Required: a client without a certificate the truststore vouches for is refused.
    Required,
}

/// The `ssl.*` settings of the broker (as written; checked by [`server_config`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslSettings {
    /// `ssl.keystore.type`.
    pub keystore_type: Option<String>,
    /// `ssl.keystore.location`.
    pub keystore_location: Option<PathBuf>,
    /// `ssl.keystore.certificate.chain`.
    pub keystore_certificate_chain: Option<String>,
    /// `ssl.keystore.key`.
    pub keystore_key: Option<String>,
    /// `ssl.key.password`.
    pub key_password: Option<String>,
    /// `ssl.truststore.type`.
    pub truststore_type: Option<String>,
    /// `ssl.truststore.location`.
    pub truststore_location: Option<PathBuf>,
    /// `ssl.truststore.certificates`.
    pub truststore_certificates: Option<String>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`. Default: TLSv1.2,TLSv1.3.
    pub enabled_protocols: Option<String>,
}

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn pem_type_ok(key: &str, value: &Option<String>) -> Result<(), TlsError> {
    match value.as_deref() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(()),
        Some(t) => Err(TlsError(format!(
            "{key}={t}: only PEM stores are supported (convert with openssl; see docs/security.md)"
        ))),
    }
}

fn certificates(
    location: &Option<PathBuf>,
    inline: &Option<String>,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = match (location, inline) {
        (Some(path), _) => CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError(format!("{what} {path:?}: {e}")))?
            .collect(),
        (None, Some(text)) => CertificateDer::pem_slice_iter(text.as_bytes()).collect(),
        (None, None) => return Ok(Vec::new()),
    };
    let certs = certs.map_err(|e| TlsError(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{what}: no PEM certificate found")));
    }
    Ok(certs)
}

/// The keystore's certificate chain and private key, if one is configured.
type Keystore = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn keystore(settings: &SslSettings) -> Result<Option<Keystore>, TlsError> {
    Ok(Some(
        match (
            &settings.keystore_location,
            &settings.keystore_certificate_chain,
            &settings.keystore_key,
        ) {
            (Some(path), _, _) => {
                let chain = certificates(&Some(path.clone()), &None, "ssl.keystore.location")?;
                let key = PrivateKeyDer::from_pem_file(path).map_err(|e| {
                    TlsError(format!(
                        "ssl.keystore.location {path:?}: no private key: {e}"
                    ))
                })?;
                (chain, key)
            }
            (None, Some(chain), Some(key)) => {
                let chain = certificates(
                    &None,
                    &Some(chain.clone()),
                    "ssl.keystore.certificate.chain",
                )?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| TlsError(format!("ssl.keystore.key: {e}")))?;
                (chain, key)
            }
            _ => return Ok(None),
        },
    ))
}

type Versions = Vec<&'static rustls::SupportedProtocolVersion>;

/// ring's crypto provider and the versions of `ssl.enabled.protocols`.
fn provider_and_versions(
    settings: &SslSettings,
) -> Result<(Arc<rustls::crypto::CryptoProvider>, Versions), TlsError> {
    // ring keeps the build to a C compiler (aws-lc-rs wants more on this machine); rustls
    // marks its provider deprecated because it offers no post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut versions: Versions = Vec::new();
    let enabled = settings
        .enabled_protocols
        .clone()
        .unwrap_or_else(|| "TLSv1.2,TLSv1.3".into());
    for p in enabled.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            other => {
                return Err(TlsError(format!(
                    "ssl.enabled.protocols: {other} is not supported (TLSv1.2, TLSv1.3)"
                )));
            }
        }
    }
    Ok((provider, versions))
}

fn truststore(settings: &SslSettings, why: &str) -> Result<rustls::RootCertStore, TlsError> {
    let cas = certificates(
        &settings.truststore_location,
        &settings.truststore_certificates,
        "ssl.truststore",
    )?;
    if cas.is_empty() {
        return Err(TlsError(format!(
            "{why}: give the CAs in ssl.truststore.location or ssl.truststore.certificates"
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| TlsError(format!("ssl.truststore: {e}")))?;
    }
    Ok(roots)
}

/// The client side of TLS for this node's own links to other nodes (the controller listener,
/// an SSL or SASL_SSL inter-broker listener): the peer's certificate must chain to the
/// truststore and name the address dialled; the keystore's certificate, if any, is presented
/// for mutual TLS.
pub fn client_config(settings: &SslSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    pem_type_ok("ssl.keystore.type", &settings.keystore_type)?;
    pem_type_ok("ssl.truststore.type", &settings.truststore_type)?;
    let (provider, versions) = provider_and_versions(settings)?;
    let roots = truststore(
        settings,
        "a TLS link to another node checks its certificate",
    )?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError(format!("ssl.enabled.protocols: {e}")))?
        .with_root_certificates(roots);
    let config = match keystore(settings)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError(format!("ssl.keystore: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server side of TLS for SSL listeners, from `settings`.
pub fn server_config(settings: &SslSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    pem_type_ok("ssl.keystore.type", &settings.keystore_type)?;
    pem_type_ok("ssl.truststore.type", &settings.truststore_type)?;
    if settings
        .key_password
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(TlsError(
            "ssl.key.password: encrypted private keys are not supported; give the key unencrypted (PKCS#8 PEM) and protect the file"
                .into(),
        ));
    }
    let Some((chain, key)) = keystore(settings)? else {
        return Err(TlsError(
            "an SSL listener needs ssl.keystore.location (PEM key and certificate chain), or ssl.keystore.certificate.chain and ssl.keystore.key"
                .into(),
        ));
    };
    let (provider, versions) = provider_and_versions(settings)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError(format!("ssl.enabled.protocols: {e}")))?;
    let builder = if settings.client_auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        let roots = truststore(
            settings,
            "ssl.client.auth asks for client certificates, which must chain to a CA",
        )?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if settings.client_auth == ClientAuth::Requested {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| TlsError(format!("ssl.truststore: {e}")))?,
        )
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("ssl.keystore: {e}")))?;
    Ok(Arc::new(config))
}

/// The TLS acceptor of the SSL and SASL_SSL listeners, reloaded when its PEM files change: a
/// renewed certificate (or truststore) is used by new connections without a restart;
/// connections already open keep theirs. A change that does not load (a half-written file, a
/// key that does not match) is logged and the acceptor in use kept; the next check tries again.
pub struct ReloadingAcceptor {
    settings: SslSettings,
    current: std::sync::RwLock<(tokio_rustls::TlsAcceptor, FileStamps)>,
}

impl std::fmt::Debug for ReloadingAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingAcceptor")
            .field("keystore", &self.settings.keystore_location)
            .finish_non_exhaustive()
    }
}

/// (modification time, length) of the keystore and truststore files, when configured by
/// location.
type FileStamps = Vec<Option<(std::time::SystemTime, u64)>>;

fn stamps(settings: &SslSettings) -> FileStamps {
    [&settings.keystore_location, &settings.truststore_location]
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(p.as_ref()?).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The client side of this node's TLS links, reloaded when the keystore or truststore files
/// change (checked at each new connection: links connect rarely): a renewed node certificate
/// is presented without a restart. A change that does not load is logged and the configuration
/// in use kept.
pub struct ReloadingClientConfig {
    settings: SslSettings,
    current: std::sync::RwLock<(Arc<rustls::ClientConfig>, FileStamps)>,
}

impl std::fmt::Debug for ReloadingClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingClientConfig")
            .field("keystore", &self.settings.keystore_location)
            .finish_non_exhaustive()
    }
}

impl ReloadingClientConfig {
    /// Loads the configuration (errors as [`client_config`]'s).
    pub fn new(settings: SslSettings) -> Result<ReloadingClientConfig, TlsError> {
        let stamps = stamps(&settings);
        let config = client_config(&settings)?;
        Ok(ReloadingClientConfig {
            settings,
            current: std::sync::RwLock::new((config, stamps)),
        })
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let now = stamps(&self.settings);
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.1 == now {
                return current.0.clone();
            }
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        current.1 = now;
        match client_config(&self.settings) {
            Ok(c) => {
                tracing::info!("TLS keystore or truststore changed: links use the new one");
                current.0 = c;
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS keystore or truststore changed but does not load; links keep the one in use");
            }
        }
        current.0.clone()
    }
}

impl ReloadingAcceptor {
    /// Loads the acceptor (errors as [`server_config`]'s).
    pub fn new(settings: SslSettings) -> Result<ReloadingAcceptor, TlsError> {
        let stamps = Self::stamps(&settings);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&settings)?);
        Ok(ReloadingAcceptor {
            settings,
            current: std::sync::RwLock::new((acceptor, stamps)),
        })
    }

    fn stamps(settings: &SslSettings) -> FileStamps {
        stamps(settings)
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Reloads if a file changed since the last load: `Ok(true)` if it did, `Err` (the old
    /// acceptor kept) if the new files do not load.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps = Self::stamps(&self.settings);
        if self.current.read().unwrap_or_else(|p| p.into_inner()).1 == stamps {
            return Ok(false);
        }
        let loaded = server_config(&self.settings);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        // Remember what was seen either way: a file that does not load is tried again only
        // once it changes again.
        current.1 = stamps;
        current.0 = tokio_rustls::TlsAcceptor::from(loaded?);
        Ok(true)
    }

    /// Checks the files every `interval` until the broker stops.
    pub fn watch(
        self: &std::sync::Arc<Self>,
        interval: std::time::Duration,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match me.reload_if_changed() {
                    Ok(false) => {}
                    Ok(true) => {
                        metrics.tls_reloads.inc();
                        tracing::info!("TLS keystore or truststore changed: reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS keystore or truststore changed but does not load; keeping the one in use");
                    }
                }
            }
        })
    }
}

/// The subject of a DER certificate as RFC 2253 writes it (`CN=client-1,O=Example,C=US`: the
/// last RDN first, as Java's `X500Principal.getName()`, which Kafka's default SSL principal is
/// built from). `None` if the certificate does not parse.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    use x509_parser::objects::{oid_registry, oid2abbrev};
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let name = oid2abbrev(attr.attr_type(), oid_registry())
                        .map(|n| match n {
                            // RFC 2253's keywords where the registry's differ.
                            "emailAddress" | "Email" => "EMAILADDRESS".to_string(),
                            n => n.to_string(),
                        })
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = match attr.as_str() {
                        Ok(v) => escape_dn_value(v),
                        Err(_) => format!(
                            "#{}",
                            attr.as_slice()
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<String>()
                        ),
                    };
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// One of `ssl.principal.mapping.rules`: `DEFAULT` (the whole DN), or
/// `RULE:pattern/replacement/[LU]`: when the pattern matches the whole DN, the replacement (with
/// `$1`-style groups), lower- or upper-cased with `L` or `U`.
#[derive(Debug, Clone)]
pub enum PrincipalRule {
    /// The DN as it is.
    Default,
    /// A pattern and its replacement.
    Rule {
        /// Matched against the whole DN.
        pattern: regex::Regex,
        /// What a match becomes.
        replacement: String,
        /// `Some('L')` or `Some('U')`: the result's case.
        case: Option<char>,
    },
}

/// Parses `ssl.principal.mapping.rules` as Kafka writes them: rules separated by commas (a
/// pattern may hold commas; `\/` is a slash inside a pattern or replacement).
pub fn parse_principal_rules(text: &str) -> Result<Vec<PrincipalRule>, String> {
    let mut rules = Vec::new();
    let mut rest = text.trim();
    // Reads up to the next unescaped `/`, unescaping `\/`.
    fn until_slash(s: &str) -> Option<(String, &str)> {
        let mut out = String::new();
        let mut chars = s.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if s[i + 1..].starts_with('/') => {
                    out.push('/');
                    chars.next();
                }
                '/' => return Some((out, &s[i + 1..])),
                c => out.push(c),
            }
        }
        None
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("DEFAULT") {
            rules.push(PrincipalRule::Default);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("RULE:") {
            let (pattern, after) = until_slash(after)
                .ok_or_else(|| format!("{rest:?}: expected RULE:pattern/replacement/"))?;
            let (replacement, after) = until_slash(after)
                .ok_or_else(|| format!("{rest:?}: expected RULE:pattern/replacement/"))?;
            let (case, after) = match after.chars().next() {
                Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                _ => (None, after),
            };
            let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("{pattern:?}: {e}"))?;
            rules.push(PrincipalRule::Rule {
                pattern,
                replacement: java_groups(&replacement),
                case,
            });
            rest = after;
        } else {
            return Err(format!(
                "{rest:?}: expected DEFAULT or RULE:pattern/replacement/[LU]"
            ));
        }
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(format!("{rest:?}: expected a comma between rules")),
        }
    }
    Ok(rules)
}

/// A Java replacement's `$1` as the regex crate writes it, `${1}` (so `$1_x` stays group 1
/// followed by `_x`, as in Java).
fn java_groups(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len() + 4);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                out.push(d);
                chars.next();
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

/// The principal name a certificate's DN maps to (no rules: the DN, as `DEFAULT`); `None` if
/// no rule matches (the connection is refused, as Kafka fails its authentication).
pub fn map_principal(rules: &[PrincipalRule], dn: &str) -> Option<String> {
    if rules.is_empty() {
        return Some(dn.to_string());
    }
    rules.iter().find_map(|rule| match rule {
        PrincipalRule::Default => Some(dn.to_string()),
        PrincipalRule::Rule {
            pattern,
            replacement,
            case,
        } => pattern.is_match(dn).then(|| {
            let out = pattern.replace(dn, replacement.as_str()).into_owned();
            match case {
                Some('L') => out.to_lowercase(),
                Some('U') => out.to_uppercase(),
                _ => out,
            }
        }),
    })
}

/// RFC 2253's escaping of an attribute value.
fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The principal of a client certificate is its subject as RFC 2253 writes it, last RDN
    /// first, with special characters escaped (what Kafka's default principal builder gives).
    #[test]
    fn subject_dn_is_written_as_rfc_2253() {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CountryName, "US");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example, Inc.");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "client-1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some("CN=client-1,O=Example\\, Inc.,C=US")
        );
        assert_eq!(subject_dn(b"not a certificate"), None);
    }

    /// Kafka's documented examples of `ssl.principal.mapping.rules`.
    #[test]
    fn principal_mapping_rules_as_kafka_documents_them() {
        let rules = parse_principal_rules(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(rules.len(), 4);
        let map = |dn: &str| map_principal(&rules, dn);
        assert_eq!(
            map("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(
            map("cn=Client-2,O=x").as_deref(),
            Some("client"),
            "the third rule: [a-zA-Z0-9.]*"
        );
        assert_eq!(
            map("O=no common name").as_deref(),
            Some("O=no common name"),
            "DEFAULT"
        );
        let strict = parse_principal_rules("RULE:^CN=([^,]*)$/$1/U").unwrap();
        assert_eq!(map_principal(&strict, "CN=ops").as_deref(), Some("OPS"));
        assert_eq!(
            map_principal(&strict, "CN=ops,O=x"),
            None,
            "no rule matches: refused"
        );
        let slash = parse_principal_rules("RULE:^CN=a\\/b$/x\\/y/").unwrap();
        assert_eq!(map_principal(&slash, "CN=a/b").as_deref(), Some("x/y"));
        assert!(
            parse_principal_rules("RULE:^CN=(.*$/x/").is_err(),
            "a bad pattern"
        );
        assert!(parse_principal_rules("RULES:x/y/").is_err());
        assert_eq!(map_principal(&[], "CN=a").as_deref(), Some("CN=a"));
        let suffix = parse_principal_rules("RULE:^CN=(.*)$/$1_svc/").unwrap();
        assert_eq!(map_principal(&suffix, "CN=app").as_deref(), Some("app_svc"));
    }
}
