//! SASL authentication of SASL_PLAINTEXT and SASL_SSL listeners (KIP-43, KIP-152): PLAIN and
//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677).
//!
//! A connection on a SASL listener may send only ApiVersions, SaslHandshake and
//! SaslAuthenticate until it has authenticated; anything else closes it. A failed exchange is
//! answered SASL_AUTHENTICATION_FAILED and the connection closed, so nothing else works on it.
//!
//! PLAIN users come from the listener's JAAS text as Kafka writes it
//! (`listener.name.<listener>.plain.sasl.jaas.config=... user_alice="alice-secret";`), parsed as
//! text. SCRAM credentials are stored salted and hashed, never the password (`ScramStore`, in
//! the data directory), created before the first start with `strata scram add` or later with
//! AlterUserScramCredentials (KIP-554).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use subtle::ConstantTimeEq;

/// A SASL mechanism this broker offers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Mechanism {
    /// PLAIN (RFC 4616): user and password in clear (use it over TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// OAUTHBEARER (KIP-255): a JWT validated against a JWKS (`oauth.rs`).
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
}

impl Mechanism {
    /// Parses a mechanism's name.
    pub fn parse(name: &str) -> Option<Mechanism> {
        Some(match name.trim() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            "OAUTHBEARER" => Mechanism::OAuthBearer,
            _ => return None,
        })
    }

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Whether it is a SCRAM mechanism (credentials in the store).
    pub fn is_scram(self) -> bool {
        matches!(self, Mechanism::ScramSha256 | Mechanism::ScramSha512)
    }

    /// KIP-554's number of a SCRAM mechanism.
    pub fn scram_type(self) -> i8 {
        match self {
            Mechanism::Plain | Mechanism::OAuthBearer => 0,
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    /// The SCRAM mechanism of KIP-554's number.
    pub fn from_scram_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::ScramSha512 => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::ScramSha512 => &digest::SHA512,
            _ => &digest::SHA256,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::ScramSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => pbkdf2::PBKDF2_HMAC_SHA256,
        }
    }

    /// Bytes of its salted password (the hash's output).
    pub fn key_len(self) -> usize {
        self.digest().output_len()
    }
}

/// Parses the users of a PLAIN JAAS text: every `user_<name>="<password>"` entry.
pub fn parse_plain_jaas(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut users = BTreeMap::new();
    let mut rest = text;
    while let Some(i) = rest.find("user_") {
        let after = &rest[i + 5..];
        let eq = after
            .find('=')
            .ok_or_else(|| format!("JAAS entry without '=' near {:?}", &rest[i..]))?;
        let name = after[..eq].trim().to_string();
        let value = after[eq + 1..].trim_start();
        let Some(value) = value.strip_prefix('"') else {
            return Err(format!("the password of user_{name} is not quoted"));
        };
        let end = value
            .find('"')
            .ok_or_else(|| format!("the password of user_{name} has no closing quote"))?;
        users.insert(name, value[..end].to_string());
        rest = &value[end + 1..];
    }
    Ok(users)
}

/// One SCRAM credential, as stored: never the password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    /// Salt (base64).
    pub salt: String,
    /// Iterations of PBKDF2.
    pub iterations: u32,
    /// H(ClientKey) (base64).
    pub stored_key: String,
    /// HMAC(SaltedPassword, "Server Key") (base64).
    pub server_key: String,
}

impl From<&strata_replication::controller::ScramEntry> for ScramCredential {
    fn from(e: &strata_replication::controller::ScramEntry) -> ScramCredential {
        ScramCredential {
            salt: e.salt.clone(),
            iterations: e.iterations,
            stored_key: e.stored_key.clone(),
            server_key: e.server_key.clone(),
        }
    }
}

impl ScramCredential {
    /// The credential as the metadata log records it.
    pub fn to_entry(&self) -> strata_replication::controller::ScramEntry {
        strata_replication::controller::ScramEntry {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// Fewest PBKDF2 iterations a credential may have (Kafka's minimum is 4096).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations a credential may have (Kafka's maximum, 16384): clients derive the
/// key on every connection.
pub const MAX_ITERATIONS: u32 = 16384;

/// A fresh random salt and SCRAM's SaltedPassword (`Hi(password, salt, iterations)`, RFC 5802)
/// of `password`: what AlterUserScramCredentials carries instead of the password.
pub fn salt_password(mechanism: Mechanism, password: &str, iterations: u32) -> ([u8; 32], Vec<u8>) {
    let mut salt = [0u8; 32];
    let _ = ring::rand::SystemRandom::new().fill(&mut salt);
    let mut salted = vec![0u8; mechanism.key_len()];
    pbkdf2::derive(
        mechanism.pbkdf2(),
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    (salt, salted)
}

impl ScramCredential {
    /// The credential of `password` with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &str, iterations: u32) -> ScramCredential {
        let (salt, salted) = salt_password(mechanism, password, iterations);
        ScramCredential::from_salted_password(mechanism, &salt, iterations, &salted)
    }

    /// The credential of a salted password (AlterUserScramCredentials sends that, never the
    /// password).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: &[u8],
        iterations: u32,
        salted_password: &[u8],
    ) -> ScramCredential {
        let key = hmac::Key::new(mechanism.hmac(), salted_password);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(mechanism.digest(), client_key.as_ref());
        let server_key = hmac::sign(&key, b"Server Key");
        ScramCredential {
            salt: B64.encode(salt),
            iterations,
            stored_key: B64.encode(stored_key.as_ref()),
            server_key: B64.encode(server_key.as_ref()),
        }
    }
}

/// The SCRAM credentials of a standalone broker, by user and mechanism, in
/// `scram-credentials.json` of the data directory (written atomically).
#[derive(Debug, Default)]
pub struct ScramStore {
    path: Option<PathBuf>,
    users: RwLock<BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>>,
}

/// The file of a data directory's SCRAM credentials.
pub const SCRAM_FILE: &str = "scram-credentials.json";

impl ScramStore {
    /// Loads the store of `data_dir` (empty if it has none).
    pub fn open(data_dir: &Path) -> Result<ScramStore, String> {
        let path = data_dir.join(SCRAM_FILE);
        let users = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{path:?}: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{path:?}: {e}")),
        };
        Ok(ScramStore {
            path: Some(path),
            users: RwLock::new(users),
        })
    }

    /// The store of a cluster member: its credentials are the metadata image's
    /// ([`Self::sync`]), never a local file.
    pub fn replicated() -> ScramStore {
        ScramStore::default()
    }

    /// Takes the credentials of a new metadata image (a no-op when they did not change).
    pub fn sync(
        &self,
        image: &BTreeMap<String, BTreeMap<String, strata_replication::controller::ScramEntry>>,
    ) {
        let next: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>> = image
            .iter()
            .map(|(user, by_mechanism)| {
                let creds = by_mechanism
                    .iter()
                    .filter_map(|(m, e)| Some((Mechanism::parse(m)?, ScramCredential::from(e))))
                    .collect();
                (user.clone(), creds)
            })
            .collect();
        let mut g = self.users.write().unwrap_or_else(|p| p.into_inner());
        if *g != next {
            *g = next;
        }
    }

    /// Every credential, as the metadata log records them (a controller's bootstrap users).
    pub fn entries(&self) -> Vec<(String, String, strata_replication::controller::ScramEntry)> {
        let g = self.users.read().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .flat_map(|(u, m)| {
                m.iter()
                    .map(|(k, c)| (u.clone(), k.name().to_string(), c.to_entry()))
            })
            .collect()
    }

    /// A user's credential for a mechanism.
    pub fn get(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        let g = self.users.read().unwrap_or_else(|p| p.into_inner());
        g.get(user).and_then(|m| m.get(&mechanism)).cloned()
    }

    /// Every user and the mechanisms and iterations of their credentials.
    pub fn describe(&self) -> BTreeMap<String, Vec<(Mechanism, u32)>> {
        let g = self.users.read().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .map(|(u, m)| {
                (
                    u.clone(),
                    m.iter().map(|(k, c)| (*k, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Sets (`Some`) or deletes (`None`) a credential and makes the store durable.
    pub fn set(
        &self,
        user: &str,
        mechanism: Mechanism,
        credential: Option<ScramCredential>,
    ) -> Result<bool, String> {
        let mut g = self.users.write().unwrap_or_else(|p| p.into_inner());
        let existed = match credential {
            Some(c) => {
                g.entry(user.to_string()).or_default().insert(mechanism, c);
                true
            }
            None => {
                let existed = g.get_mut(user).and_then(|m| m.remove(&mechanism)).is_some();
                if g.get(user).is_some_and(BTreeMap::is_empty) {
                    g.remove(user);
                }
                existed
            }
        };
        if let Some(path) = &self.path {
            let json = serde_json::to_vec_pretty(&*g).map_err(|e| e.to_string())?;
            let dir = path.parent().unwrap_or(Path::new("."));
            crate::broker::atomic_write(dir, SCRAM_FILE, &json)
                .map_err(|e| format!("{path:?}: {e}"))?;
        }
        Ok(existed)
    }
}

/// Parses Kafka's `--add-scram` value: `SCRAM-SHA-256=[name=alice,password=alice-secret]`
/// (optionally `iterations=8192`).
pub fn parse_add_scram(value: &str) -> Result<(Mechanism, String, String, u32), String> {
    let (mech, rest) = value
        .split_once('=')
        .ok_or("expected MECHANISM=[name=...,password=...]")?;
    let mechanism = Mechanism::parse(mech)
        .filter(|m| m.is_scram())
        .ok_or_else(|| format!("{mech}: expected SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("expected [name=...,password=...]")?;
    let (mut name, mut password, mut iterations) = (None, None, MIN_ITERATIONS);
    for kv in inner.split(',') {
        match kv.split_once('=') {
            Some(("name", v)) => name = Some(v.trim_matches('"').to_string()),
            Some(("password", v)) => password = Some(v.trim_matches('"').to_string()),
            Some(("iterations", v)) => {
                iterations = v.parse().map_err(|_| format!("bad iterations {v:?}"))?
            }
            _ => return Err(format!("unexpected {kv:?}")),
        }
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(format!(
            "iterations must be from {MIN_ITERATIONS} to {MAX_ITERATIONS}"
        ));
    }
    Ok((
        mechanism,
        name.ok_or("name= missing")?,
        password.ok_or("password= missing")?,
        iterations,
    ))
}

/// What an authentication step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge; more is expected.
    Challenge(Vec<u8>),
    /// Authenticated as this user; send the last bytes (possibly empty).
    Done {
        /// The user.
        user: String,
        /// The server's last message.
        reply: Vec<u8>,
    },
    /// Refused; the reason is for the log and the error message.
    Failed(String),
}

/// The server side of one SASL exchange.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    scram: Option<ScramState>,
    /// An OAUTHBEARER token's expiry, once validated.
    expires: Option<std::time::SystemTime>,
}

#[derive(Debug)]
struct ScramState {
    user: String,
    credential: ScramCredential,
    nonce: String,
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
}

impl Exchange {
    /// An exchange of `mechanism`.
    pub fn new(mechanism: Mechanism) -> Exchange {
        Exchange {
            mechanism,
            scram: None,
            expires: None,
        }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Takes the client's next message (without an OAUTHBEARER validator).
    pub fn step(
        &mut self,
        token: &[u8],
        plain_users: &BTreeMap<String, String>,
        store: &ScramStore,
    ) -> Step {
        self.step_with(token, plain_users, store, None)
    }

    /// Takes the client's next message; `oauth` validates OAUTHBEARER tokens.
    pub fn step_with(
        &mut self,
        token: &[u8],
        plain_users: &BTreeMap<String, String>,
        store: &ScramStore,
        oauth: Option<&crate::oauth::Validator>,
    ) -> Step {
        match self.mechanism {
            Mechanism::Plain => plain(token, plain_users),
            Mechanism::OAuthBearer => {
                let Some(validator) = oauth else {
                    return Step::Failed("OAUTHBEARER has no validator configured".into());
                };
                match crate::oauth::bearer_token(token).and_then(|t| validator.validate(t)) {
                    Ok(v) => {
                        self.expires = Some(v.expires);
                        Step::Done {
                            user: v.principal,
                            reply: Vec::new(),
                        }
                    }
                    Err(why) => Step::Failed(why),
                }
            }
            m => match self.scram.take() {
                None => self.scram_first(m, token, store),
                Some(state) => scram_final(m, state, token),
            },
        }
    }

    /// When the credential the exchange authenticated expires (an OAUTHBEARER token's `exp`),
    /// if it does.
    pub fn expires(&self) -> Option<std::time::SystemTime> {
        self.expires
    }

    fn scram_first(&mut self, m: Mechanism, token: &[u8], store: &ScramStore) -> Step {
        let Ok(text) = std::str::from_utf8(token) else {
            return Step::Failed("client-first-message is not UTF-8".into());
        };
        // gs2-header: "n,," or "y,," (no channel binding), optionally with an authzid.
        let mut parts = text.splitn(3, ',');
        let (Some(cb), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Step::Failed("malformed client-first-message".into());
        };
        if cb != "n" && cb != "y" {
            return Step::Failed("channel binding is not supported".into());
        }
        let gs2_header = format!("{cb},{authzid},");
        let mut user = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            if let Some(v) = attr.strip_prefix("n=") {
                user = Some(v.replace("=2C", ",").replace("=3D", "="));
            } else if let Some(v) = attr.strip_prefix("r=") {
                client_nonce = Some(v.to_string());
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Step::Failed("client-first-message lacks n= or r=".into());
        };
        if !authzid.is_empty() && authzid.strip_prefix("a=") != Some(user.as_str()) {
            return Step::Failed(format!(
                "authorization id differs from the user name {user:?}"
            ));
        }
        let Some(credential) = store.get(&user, m) else {
            return Step::Failed(format!("no {} credential for user {user:?}", m.name()));
        };
        let mut raw = [0u8; 24];
        let _ = ring::rand::SystemRandom::new().fill(&mut raw);
        let nonce = format!("{client_nonce}{}", B64.encode(raw));
        let server_first = format!(
            "r={nonce},s={},i={}",
            credential.salt, credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.scram = Some(ScramState {
            user,
            credential,
            nonce,
            client_first_bare: bare.to_string(),
            server_first,
            gs2_header,
        });
        Step::Challenge(reply)
    }
}

fn plain(token: &[u8], users: &BTreeMap<String, String>) -> Step {
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed("malformed PLAIN message".into());
    };
    let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
    else {
        return Step::Failed("PLAIN credentials are not UTF-8".into());
    };
    // As Kafka: a client may not ask to act as someone else.
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Step::Failed(format!(
            "authorization id differs from the user name {user:?}"
        ));
    }
    match users.get(user) {
        Some(expected) if bool::from(expected.as_bytes().ct_eq(password.as_bytes())) => {
            Step::Done {
                user: user.to_string(),
                reply: Vec::new(),
            }
        }
        _ => Step::Failed(format!("invalid user name or password for {user:?}")),
    }
}

fn scram_final(m: Mechanism, state: ScramState, token: &[u8]) -> Step {
    let fail = |why: &str| Step::Failed(format!("user {:?}: {why}", state.user));
    let Ok(text) = std::str::from_utf8(token) else {
        return fail("client-final-message is not UTF-8");
    };
    let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
        return fail("client-final-message lacks its proof");
    };
    let mut channel = None;
    let mut nonce = None;
    for attr in without_proof.split(',') {
        if let Some(v) = attr.strip_prefix("c=") {
            channel = Some(v);
        } else if let Some(v) = attr.strip_prefix("r=") {
            nonce = Some(v);
        }
    }
    if channel != Some(B64.encode(state.gs2_header.as_bytes()).as_str()) {
        return fail("channel binding does not match");
    }
    if nonce != Some(state.nonce.as_str()) {
        return fail("nonce does not match");
    }
    let (Ok(proof), Ok(stored_key), Ok(server_key)) = (
        B64.decode(proof),
        B64.decode(&state.credential.stored_key),
        B64.decode(&state.credential.server_key),
    ) else {
        return fail("undecodable proof or credential");
    };
    let auth_message = format!(
        "{},{},{}",
        state.client_first_bare, state.server_first, without_proof
    );
    let signature = hmac::sign(
        &hmac::Key::new(m.hmac(), &stored_key),
        auth_message.as_bytes(),
    );
    if proof.len() != signature.as_ref().len() {
        return fail("invalid credentials");
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(signature.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let computed = digest::digest(m.digest(), &client_key);
    if !bool::from(computed.as_ref().ct_eq(stored_key.as_slice())) {
        return fail("invalid credentials");
    }
    let server_signature = hmac::sign(
        &hmac::Key::new(m.hmac(), &server_key),
        auth_message.as_bytes(),
    );
    Step::Done {
        user: state.user,
        reply: format!("v={}", B64.encode(server_signature.as_ref())).into_bytes(),
    }
}

/// The client side of a SASL login: this node authenticating to another node's SASL listener
/// (a follower to its leader's inter-broker listener), as Kafka's brokers do with the
/// `username` and `password` of their listener's JAAS text.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The mechanism (`sasl.mechanism.inter.broker.protocol`).
    pub mechanism: Mechanism,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Parses the login of a JAAS text: its `username="..."` and `password="..."` options.
pub fn parse_login_jaas(text: &str) -> Option<(String, String)> {
    let option = |name: &str| -> Option<String> {
        let mut rest = text;
        while let Some(i) = rest.find(name) {
            let before = rest[..i].chars().last();
            let after = rest[i + name.len()..].trim_start();
            rest = &rest[i + name.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let Some(value) = after.strip_prefix('=') else {
                continue;
            };
            let value = value.trim_start().strip_prefix('"')?;
            return Some(value[..value.find('"')?].to_string());
        }
        None
    };
    Some((option("username")?, option("password")?))
}

/// The client side of one SASL exchange.
#[derive(Debug)]
pub struct ClientExchange {
    login: Login,
    state: ClientState,
}

#[derive(Debug)]
enum ClientState {
    Start,
    SentFirst { bare: String, nonce: String },
    SentFinal { server_signature: Vec<u8> },
    Done,
}

impl ClientExchange {
    /// An exchange for `login`.
    pub fn new(login: Login) -> ClientExchange {
        ClientExchange {
            login,
            state: ClientState::Start,
        }
    }

    /// The first message to send.
    pub fn first(&mut self) -> Vec<u8> {
        let login = &self.login;
        if login.mechanism == Mechanism::Plain {
            self.state = ClientState::Done;
            return format!("\0{}\0{}", login.user, login.password).into_bytes();
        }
        let mut raw = [0u8; 24];
        let _ = ring::rand::SystemRandom::new().fill(&mut raw);
        let nonce = B64.encode(raw);
        let user = login.user.replace('=', "=3D").replace(',', "=2C");
        let bare = format!("n={user},r={nonce}");
        let first = format!("n,,{bare}");
        self.state = ClientState::SentFirst { bare, nonce };
        first.into_bytes()
    }

    /// Takes the server's reply: `Ok(Some(message))` to send next, `Ok(None)` when the
    /// exchange is complete (for SCRAM, once the server proved it knows the credential).
    pub fn next(&mut self, reply: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let m = self.login.mechanism;
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::Start => Err("the exchange has not started".into()),
            ClientState::Done => Ok(None),
            ClientState::SentFirst { bare, nonce } => {
                let server_first =
                    std::str::from_utf8(reply).map_err(|_| "server-first-message is not UTF-8")?;
                let attr = |k: &str| {
                    server_first
                        .split(',')
                        .find_map(|a| a.strip_prefix(k))
                        .ok_or_else(|| format!("server-first-message lacks {k}"))
                };
                let combined = attr("r=")?;
                if !combined.starts_with(&nonce) {
                    return Err("the server's nonce does not extend ours".into());
                }
                let salt = B64.decode(attr("s=")?).map_err(|_| "undecodable salt")?;
                let iterations: u32 = attr("i=")?.parse().map_err(|_| "bad iteration count")?;
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                    return Err(format!("{iterations} iterations"));
                }
                let mut salted = vec![0u8; m.key_len()];
                pbkdf2::derive(
                    m.pbkdf2(),
                    std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN),
                    &salt,
                    self.login.password.as_bytes(),
                    &mut salted,
                );
                let key = hmac::Key::new(m.hmac(), &salted);
                let client_key = hmac::sign(&key, b"Client Key");
                let stored_key = digest::digest(m.digest(), client_key.as_ref());
                let server_key = hmac::sign(&key, b"Server Key");
                let without_proof = format!("c={},r={combined}", B64.encode(b"n,,"));
                let auth_message = format!("{bare},{server_first},{without_proof}");
                let signature = hmac::sign(
                    &hmac::Key::new(m.hmac(), stored_key.as_ref()),
                    auth_message.as_bytes(),
                );
                let proof: Vec<u8> = client_key
                    .as_ref()
                    .iter()
                    .zip(signature.as_ref())
                    .map(|(a, b)| a ^ b)
                    .collect();
                let server_signature = hmac::sign(
                    &hmac::Key::new(m.hmac(), server_key.as_ref()),
                    auth_message.as_bytes(),
                );
                self.state = ClientState::SentFinal {
                    server_signature: server_signature.as_ref().to_vec(),
                };
                Ok(Some(
                    format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
                ))
            }
            ClientState::SentFinal { server_signature } => {
                let text =
                    std::str::from_utf8(reply).map_err(|_| "server-final-message is not UTF-8")?;
                if let Some(e) = text.strip_prefix("e=") {
                    return Err(format!("refused: {e}"));
                }
                let v = text
                    .strip_prefix("v=")
                    .and_then(|v| B64.decode(v).ok())
                    .ok_or("server-final-message lacks its signature")?;
                if !bool::from(v.as_slice().ct_eq(server_signature.as_slice())) {
                    return Err("the server does not know the credential".into());
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SCRAM client, as RFC 5802 describes it, to drive the server side.
    fn client_final(m: Mechanism, password: &str, first_bare: &str, server_first: &str) -> String {
        let attrs: BTreeMap<&str, &str> = server_first
            .split(',')
            .filter_map(|a| a.split_once('='))
            .collect();
        let salt = B64.decode(attrs["s"]).unwrap();
        let iterations: u32 = attrs["i"].parse().unwrap();
        let mut salted = vec![0u8; m.key_len()];
        pbkdf2::derive(
            m.pbkdf2(),
            std::num::NonZeroU32::new(iterations).unwrap(),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let key = hmac::Key::new(m.hmac(), &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored = digest::digest(m.digest(), client_key.as_ref());
        let without_proof = format!("c={},r={}", B64.encode(b"n,,"), attrs["r"]);
        let auth = format!("{first_bare},{server_first},{without_proof}");
        let sig = hmac::sign(&hmac::Key::new(m.hmac(), stored.as_ref()), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(sig.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn scram_accepts_the_password_and_refuses_another() {
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let store = ScramStore::default();
            store
                .set("alice", m, Some(ScramCredential::new(m, "s3cret", 4096)))
                .unwrap();
            for (password, ok) in [("s3cret", true), ("wrong", false)] {
                let mut ex = Exchange::new(m);
                let bare = "n=alice,r=clientnonce";
                let Step::Challenge(first) =
                    ex.step(format!("n,,{bare}").as_bytes(), &BTreeMap::new(), &store)
                else {
                    panic!("no challenge")
                };
                let first = String::from_utf8(first).unwrap();
                assert!(first.starts_with("r=clientnonce"));
                let last = client_final(m, password, bare, &first);
                match ex.step(last.as_bytes(), &BTreeMap::new(), &store) {
                    Step::Done { user, reply } => {
                        assert!(ok, "{m:?} accepted a wrong password");
                        assert_eq!(user, "alice");
                        assert!(reply.starts_with(b"v="));
                    }
                    Step::Failed(_) => assert!(!ok, "{m:?} refused the right password"),
                    Step::Challenge(_) => panic!("a third round"),
                }
            }
        }
    }

    #[test]
    fn the_client_exchange_logs_in_to_the_server_side_and_checks_it_back() {
        for m in [
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ] {
            let store = ScramStore::default();
            if m != Mechanism::Plain {
                store
                    .set("broker", m, Some(ScramCredential::new(m, "pw", 4096)))
                    .unwrap();
            }
            let users = BTreeMap::from([("broker".to_string(), "pw".to_string())]);
            for (password, ok) in [("pw", true), ("other", false)] {
                let mut client = ClientExchange::new(Login {
                    mechanism: m,
                    user: "broker".into(),
                    password: password.into(),
                });
                let mut server = Exchange::new(m);
                let mut token = client.first();
                let outcome = loop {
                    match server.step(&token, &users, &store) {
                        Step::Challenge(c) => match client.next(&c).unwrap() {
                            Some(t) => token = t,
                            None => panic!("{m:?}: the client stopped mid-exchange"),
                        },
                        Step::Done { user, reply } => {
                            assert_eq!(user, "broker");
                            break client.next(&reply);
                        }
                        Step::Failed(why) => break Err(why),
                    }
                };
                assert_eq!(outcome.is_ok(), ok, "{m:?} with {password}: {outcome:?}");
            }
        }
        // A server that does not know the credential cannot fake the final signature.
        let mut client = ClientExchange::new(Login {
            mechanism: Mechanism::ScramSha256,
            user: "broker".into(),
            password: "pw".into(),
        });
        let first = String::from_utf8(client.first()).unwrap();
        let nonce = first.rsplit_once("r=").unwrap().1;
        let salt = B64.encode(b"salt");
        let server_first = format!("r={nonce}xyz,s={salt},i=4096");
        assert!(client.next(server_first.as_bytes()).unwrap().is_some());
        assert!(client.next(b"v=AAAA").is_err());
    }

    #[test]
    fn a_jaas_login_gives_its_username_and_password() {
        let text = r#"org.apache.kafka.common.security.scram.ScramLoginModule required
            username="broker" password = "b-secret" user_admin="x";"#;
        assert_eq!(
            parse_login_jaas(text),
            Some(("broker".to_string(), "b-secret".to_string()))
        );
        assert_eq!(parse_login_jaas(r#"user_admin="x";"#), None);
    }

    #[test]
    fn plain_checks_the_jaas_users() {
        let users = parse_plain_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret"
               user_admin="admin-secret" user_alice = "alice secret";"#,
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        let store = ScramStore::default();
        let step = |t: &[u8]| Exchange::new(Mechanism::Plain).step(t, &users, &store);
        assert!(matches!(step(b"\0alice\0alice secret"), Step::Done { .. }));
        assert!(matches!(step(b"\0alice\0nope"), Step::Failed(_)));
        assert!(matches!(step(b"\0mallory\0x"), Step::Failed(_)));
        assert!(matches!(step(b"garbage"), Step::Failed(_)));
        // Acting as another user is refused even with the right password.
        assert!(matches!(
            step(b"alice\0alice\0alice secret"),
            Step::Done { .. }
        ));
        assert!(matches!(
            step(b"admin\0alice\0alice secret"),
            Step::Failed(_)
        ));
    }

    #[test]
    fn add_scram_parses_kafkas_syntax() {
        let (m, u, p, i) =
            parse_add_scram("SCRAM-SHA-512=[name=alice,password=alice-secret]").unwrap();
        assert_eq!(
            (m, u.as_str(), p.as_str(), i),
            (Mechanism::ScramSha512, "alice", "alice-secret", 4096)
        );
        assert!(parse_add_scram("PLAIN=[name=a,password=b]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[name=a,password=b,iterations=10]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[name=a,password=b,iterations=100000]").is_err());
    }
}
