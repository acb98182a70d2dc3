//! SASL/OAUTHBEARER (KIP-255, RFC 7628) with validated JWTs, as Kafka's
//! `OAuthBearerValidatorCallbackHandler` validates them (KIP-768): the token's signature is
//! checked against the keys of a JWKS (`sasl.oauthbearer.jwks.endpoint.url`, a `file:` URL here:
//! the broker makes no HTTP requests; the file is read again when it changes, so keys can
//! rotate), its `exp` (and `nbf`) with `sasl.oauthbearer.clock.skew.seconds` of leeway, its
//! issuer and audience when `sasl.oauthbearer.expected.issuer` and
//! `sasl.oauthbearer.expected.audience` are set. The principal is the claim named by
//! `sasl.oauthbearer.sub.claim.name` (`sub`). Unsigned tokens (Kafka's unsecured validator, for
//! development) are never accepted, nor symmetric (HS*) signatures: a JWKS holds public keys.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::SystemTime;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The OAUTHBEARER settings (`sasl.oauthbearer.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The JWKS file (from a `file:` `sasl.oauthbearer.jwks.endpoint.url`).
    pub jwks: Option<PathBuf>,
    /// `sasl.oauthbearer.expected.audience` (any one must be in the token's `aud`).
    pub audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`.
    pub issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`. Default: `sub`.
    pub sub_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds`. Default: 30.
    pub clock_skew_s: u64,
}

impl Default for OAuthSettings {
    fn default() -> OAuthSettings {
        OAuthSettings {
            jwks: None,
            audience: Vec::new(),
            issuer: None,
            sub_claim: "sub".into(),
            clock_skew_s: 30,
        }
    }
}

/// Parses `sasl.oauthbearer.jwks.endpoint.url`: a `file:` URL (or a bare path).
pub fn jwks_path(url: &str) -> Result<PathBuf, String> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = url.strip_prefix("file:") {
        return Ok(PathBuf::from(path));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(
            "Strata reads the JWKS from a file (file:///path/jwks.json), not over HTTP: fetch it there with your identity provider's tooling"
                .into(),
        );
    }
    Ok(PathBuf::from(url))
}

/// A validated token: its principal and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The principal's name (the sub claim).
    pub principal: String,
    /// `exp`.
    pub expires: SystemTime,
}

/// Validates OAUTHBEARER tokens against a JWKS file.
#[derive(Debug)]
pub struct Validator {
    settings: OAuthSettings,
    /// The keys, with the JWKS file's stamp when read.
    keys: RwLock<Option<(FileStamp, JwkSet)>>,
}

/// A file's (modification time, length), when it can be read.
type FileStamp = Option<(SystemTime, u64)>;

/// The signature algorithms accepted: asymmetric only.
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Validator {
    /// A validator; `Err` if the JWKS file does not load (checked at start).
    pub fn new(settings: OAuthSettings) -> Result<Validator, String> {
        let v = Validator {
            settings,
            keys: RwLock::new(None),
        };
        v.keys()?;
        Ok(v)
    }

    fn stamp(&self) -> FileStamp {
        let m = std::fs::metadata(self.settings.jwks.as_ref()?).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// The key set, read again when the file changed.
    fn keys(&self) -> Result<JwkSet, String> {
        let stamp = self.stamp();
        if let Some((seen, set)) = &*self.keys.read().unwrap_or_else(|p| p.into_inner())
            && *seen == stamp
        {
            return Ok(set.clone());
        }
        let Some(path) = &self.settings.jwks else {
            return Err("no sasl.oauthbearer.jwks.endpoint.url".into());
        };
        let text = std::fs::read(path).map_err(|e| format!("JWKS {path:?}: {e}"))?;
        let set: JwkSet =
            serde_json::from_slice(&text).map_err(|e| format!("JWKS {path:?}: {e}"))?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some((stamp, set.clone()));
        Ok(set)
    }

    /// Validates a compact JWS; the reason when it is refused.
    pub fn validate(&self, token: &str) -> Result<Validated, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("token: {e}"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(format!(
                "token signed with {:?}, not a public-key algorithm",
                header.alg
            ));
        }
        let set = self.keys()?;
        let jwk = match &header.kid {
            Some(kid) => set
                .find(kid)
                .ok_or_else(|| format!("no key {kid:?} in the JWKS"))?,
            None if set.keys.len() == 1 => &set.keys[0],
            None => return Err("the token names no key (kid) and the JWKS has several".into()),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWKS key: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.clock_skew_s;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if self.settings.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audience);
        }
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| format!("token: {e}"))?;
        let claims = data.claims;
        let principal = claims
            .get(&self.settings.sub_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the token has no {} claim", self.settings.sub_claim))?;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .ok_or("the token has no numeric exp")?;
        Ok(Validated {
            principal: principal.to_string(),
            expires: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(exp),
        })
    }
}

/// The token of an OAUTHBEARER client's first message (RFC 7628: a GS2 header, then
/// `\x01`-separated `key=value` pairs, one of them `auth=Bearer <token>`).
pub fn bearer_token(message: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the message is not UTF-8")?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or("malformed OAUTHBEARER message")?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) {
        return Err("channel binding is not supported".into());
    }
    rest.split('\u{1}')
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "no auth=Bearer token".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_found_in_the_client_message() {
        assert_eq!(
            bearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(
            bearer_token(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01\x01").unwrap(),
            "t"
        );
        assert!(bearer_token(b"n,,\x01auth=Basic abc\x01\x01").is_err());
        assert!(bearer_token(b"p=tls-unique,,\x01auth=Bearer t\x01\x01").is_err());
        assert!(bearer_token(b"garbage").is_err());
    }

    #[test]
    fn a_jwks_url_is_a_file() {
        assert_eq!(
            jwks_path("file:///etc/jwks.json").unwrap(),
            PathBuf::from("/etc/jwks.json")
        );
        assert!(jwks_path("https://idp.example/jwks").is_err());
    }
}
