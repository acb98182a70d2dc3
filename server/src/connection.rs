//! One client connection: length-prefixed frames in, responses out, in request order.
//!
//! Frame layout: `size: i32` (bytes that follow), then the request header and body. A size that
//! is negative or above `socket.request.max.bytes` closes the connection before anything is
//! allocated; so do frames that do not decode and unknown API keys. Responses keep request
//! order. Requests on one connection are handled one at a time, as Kafka does, with one
//! exception: consecutive produce requests are appended as they arrive and wait for
//! durability and replication together (up to 16 at a time), so that a producer with several
//! requests in flight gets several batches per fsync and per follower fetch instead of one.
//! Any other request first waits for every earlier one. Other connections are separate tasks:
//! one bad or slow client affects no one else.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Decodable;
use tokio::io::AsyncReadExt;

use tokio::net::TcpStream;

use crate::client_stream::ClientStream;
use crate::handler::{self, Context};
use crate::wire;
use crate::wire_out::Part;

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer closed it or the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame size outside `[0, socket.request.max.bytes]`.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {limit}")]
    FrameTooLarge {
        /// Size announced.
        size: i64,
        /// The limit.
        limit: usize,
    },
    /// A frame that does not decode.
    #[error("malformed request: {0}")]
    Malformed(String),
}

tokio::task_local! {
    /// The address of the client whose request is being handled (for the handlers that
    /// report it, as ConsumerGroupDescribe's client host).
    static PEER: Option<std::net::SocketAddr>;
    /// The advertised address of the listener the request came in on (Metadata and
    /// FindCoordinator answer with the same listener's addresses, as Kafka does).
    static ADVERTISED: (String, u16);
    /// The name of the listener the request came in on.
    static LISTENER: Arc<str>;
    /// Who the connection authenticated as (`User:alice`; `User:ANONYMOUS` before or without
    /// authentication), for the authorizer.
    static PRINCIPAL: std::cell::RefCell<Arc<str>>;
}

/// The principal Kafka gives a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The principal of the request being handled (`User:ANONYMOUS` outside a connection).
pub fn principal() -> Arc<str> {
    PRINCIPAL
        .try_with(|p| p.borrow().clone())
        .unwrap_or_else(|_| Arc::from(ANONYMOUS))
}

/// The client address of the request being handled, bare (`127.0.0.1`), as ACL hosts name
/// it; empty outside a connection.
pub fn client_ip() -> String {
    PEER.try_with(|p| p.map(|a| a.ip().to_string()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The advertised address of the listener of the request being handled, or the first
/// listener's outside a connection.
pub fn advertised(ctx: &Context) -> (String, u16) {
    ADVERTISED
        .try_with(Clone::clone)
        .unwrap_or_else(|_| ctx.broker.config.advertised.clone())
}

/// The name of the listener of the request being handled, or the first listener's outside a
/// connection: in a cluster, Metadata, FindCoordinator and DescribeCluster name each broker's
/// address on this listener.
pub fn listener_name(ctx: &Context) -> Arc<str> {
    LISTENER.try_with(Clone::clone).unwrap_or_else(|_| {
        Arc::from(
            ctx.broker
                .config
                .listeners
                .first()
                .map_or("PLAINTEXT", |l| l.name.as_str()),
        )
    })
}

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The client address of the request being handled, as Kafka writes it (`/127.0.0.1`), or
/// empty outside a connection.
pub fn client_host() -> String {
    PEER.try_with(|p| p.map(|a| format!("/{}", a.ip())))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Serves one connection until it closes or the broker shuts down.
pub async fn serve(
    ctx: Arc<Context>,
    tcp: TcpStream,
    listener: Arc<crate::listener::Bound>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let peer = tcp.peer_addr().ok();
    let _ = tcp.set_nodelay(true);
    // A peer whose connections keep failing waits before it is served (error_backoff).
    if let Some(p) = peer {
        let delay = ctx.backoff.delay_for(p.ip(), std::time::Instant::now());
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            }
        }
    }
    let mut stream = match &listener.tls {
        None => ClientStream::Plain(tcp),
        Some(reloading) => {
            let acceptor = reloading.acceptor();
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            match handshake.await {
                Ok(Ok(tls)) => ClientStream::Tls(Box::new(tls)),
                Ok(Err(e)) => {
                    ctx.metrics.tls_handshake_failures.inc();
                    let log = peer.is_none_or(|p| {
                        ctx.backoff
                            .record_error_close(p.ip(), std::time::Instant::now())
                            .1
                    });
                    if log {
                        tracing::warn!(?peer, listener = %listener.listener.name, error = %e, "TLS handshake failed");
                    }
                    return;
                }
                Err(_) => {
                    ctx.metrics.tls_handshake_failures.inc();
                    tracing::debug!(?peer, listener = %listener.listener.name, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let advertised = listener.listener.advertised.clone();
    // A client certificate names the principal on an SSL listener (its subject's DN, as
    // Kafka's default principal builder); SASL, where used, decides instead.
    let tls_principal = match &stream {
        ClientStream::Tls(tls) if !listener.sasl() => {
            let dn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| crate::tls::subject_dn(cert.as_ref()));
            match dn {
                None => None,
                Some(dn) => {
                    match crate::tls::map_principal(&ctx.broker.config.ssl_principal_rules, &dn) {
                        Some(name) => Some(format!("User:{name}")),
                        None => {
                            // Kafka fails the authentication when no rule matches.
                            ctx.metrics.tls_handshake_failures.inc();
                            tracing::warn!(?peer, %dn, "no ssl.principal.mapping.rules rule matches the client certificate; closing");
                            return;
                        }
                    }
                }
            }
        }
        _ => None,
    };
    let mut auth = listener.sasl().then(|| Authentication {
        listener: listener.listener.name.clone(),
        exchange: None,
        deadline: tokio::time::Instant::now() + SASL_DEADLINE,
        reauth_of: None,
    });
    let result = tokio::select! {
        r = ADVERTISED.scope(advertised, LISTENER.scope(Arc::from(listener.listener.name.as_str()), PEER.scope(peer, PRINCIPAL.scope(
            std::cell::RefCell::new(Arc::from(tls_principal.as_deref().unwrap_or(ANONYMOUS))),
            run(&ctx, &mut stream, &mut auth),
        )))) => r,
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => Ok(()),
    };
    match result {
        Ok(()) => tracing::debug!(?peer, "connection closed"),
        Err(ConnectionError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            tracing::debug!(?peer, "connection closed by peer")
        }
        Err(e) => {
            let (closes, log) = match peer {
                Some(p) => ctx
                    .backoff
                    .record_error_close(p.ip(), std::time::Instant::now()),
                None => (1, true),
            };
            if log {
                tracing::warn!(?peer, error = %e, closes, "closing connection");
            }
        }
    }
}

/// Produce requests of one connection that may wait for durability and replication at the
/// same time. Their batches are appended in request order as each request arrives; only the
/// waiting overlaps, and responses still go out in request order.
const PRODUCE_PIPELINE_DEPTH: usize = 16;

/// A produce request's response on its way: the encoded frame, `None` for acks=0.
type PendingResponse = tokio::task::JoinHandle<Result<Option<Vec<Part>>, ConnectionError>>;

/// Why a connection stops waiting for its client.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// A SASL listener's connection has not authenticated.
    Authentication,
    /// A frame begun was not finished within `request.read.timeout.ms` (a slow or stalled
    /// sender holding a connection and its buffer).
    PartialFrame,
    /// No request for `connections.max.idle.ms`.
    Idle,
    /// A throttled connection may read requests again.
    Unmute,
}

/// What the connection loop waited for.
enum Event {
    /// Bytes were read (0: the peer closed its side).
    Read(usize),
    /// The oldest pending produce response is ready.
    Responded(Result<Result<Option<Vec<Part>>, ConnectionError>, tokio::task::JoinError>),
}

async fn run(
    ctx: &Arc<Context>,
    stream: &mut ClientStream,
    auth: &mut Option<Authentication>,
) -> Result<(), ConnectionError> {
    let limit = ctx.broker.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut pending: std::collections::VecDeque<PendingResponse> =
        std::collections::VecDeque::new();
    // When the bytes of an unfinished frame began to arrive; when the last request came.
    let mut partial_since: Option<tokio::time::Instant> = None;
    let mut last_request = tokio::time::Instant::now();
    // A SASL listener's connection once authenticated.
    let mut session: Option<Session> = None;
    // Over its client quota, the connection reads no request until then (KIP-219's muting):
    // answers still go out.
    let mut muted_until: Option<tokio::time::Instant> = None;
    loop {
        let muted = muted_until.is_some_and(|t| tokio::time::Instant::now() < t);
        if muted {
            // Nothing is read or handled; the select below waits for the end of the mute.
        } else if let Some(frame) = next_frame(&mut buf, limit, ctx)? {
            last_request = tokio::time::Instant::now();
            partial_since = None;
            let api_key = (frame.len() >= 2)
                .then(|| ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).ok())
                .flatten();
            if auth.is_none()
                && let Some(s) = &session
            {
                if api_key == Some(ApiKey::SaslHandshake) {
                    // KIP-368: the client re-authenticates. What it sent before is answered
                    // first; until the exchange ends only it is served.
                    while let Some(oldest) = pending.pop_front() {
                        if !respond(ctx, stream, oldest.await, true).await? {
                            return Ok(());
                        }
                    }
                    *auth = Some(Authentication {
                        listener: s.listener.clone(),
                        exchange: None,
                        deadline: tokio::time::Instant::now() + SASL_DEADLINE,
                        reauth_of: Some((s.user.clone(), s.mechanism)),
                    });
                } else if s
                    .expires
                    .is_some_and(|at| tokio::time::Instant::now() >= at)
                {
                    // The session ended without a re-authentication: Kafka closes.
                    ctx.metrics.sasl_sessions_expired.inc();
                    tracing::debug!(peer = %client_host(), user = %s.user, "SASL session expired (connections.max.reauth.ms); closing");
                    return Ok(());
                }
            }
            if let Some(a) = auth.as_mut() {
                // Not authenticated yet: only ApiVersions and the SASL exchange.
                let (parts, outcome) = authenticate(ctx, a, frame.freeze()).await?;
                crate::wire_out::write_parts(stream, parts).await?;
                match outcome {
                    AuthOutcome::Continue => {}
                    AuthOutcome::Authenticated(user) => {
                        if a.reauth_of.is_some() {
                            ctx.metrics.sasl_reauthentications.inc();
                        }
                        tracing::debug!(user = %user, listener = %a.listener, "authenticated");
                        let principal: Arc<str> = Arc::from(format!("User:{user}"));
                        let _ = PRINCIPAL.try_with(|p| *p.borrow_mut() = principal);
                        let Some(mechanism) = a.exchange.as_ref().map(|e| e.mechanism()) else {
                            return Err(ConnectionError::Malformed(
                                "authenticated without an exchange".into(),
                            ));
                        };
                        session = Some(Session {
                            listener: a.listener.clone(),
                            user,
                            mechanism,
                            expires: a
                                .exchange
                                .as_ref()
                                .and_then(|e| session_lifetime(&ctx.broker.config, e))
                                .map(|d| tokio::time::Instant::now() + d),
                        });
                        *auth = None;
                    }
                    AuthOutcome::Refused => return Ok(()),
                }
                continue;
            }
            if api_key == Some(ApiKey::Produce) {
                // Pipelined: append now, answer when durable (in order, after earlier ones).
                if pending.len() >= PRODUCE_PIPELINE_DEPTH
                    && let Some(oldest) = pending.pop_front()
                    && !respond(ctx, stream, oldest.await, true).await?
                {
                    return Ok(());
                }
                let (response, throttle) = start_produce(ctx, frame).await?;
                pending.push_back(response);
                if !throttle.is_zero() {
                    muted_until = Some(tokio::time::Instant::now() + throttle);
                }
                continue;
            }
            // Anything else sees every earlier request finished, as if handled one at a time.
            while let Some(oldest) = pending.pop_front() {
                if !respond(ctx, stream, oldest.await, true).await? {
                    return Ok(());
                }
            }
            let producing = api_key == Some(ApiKey::InitProducerId);
            let response = match handle_frame_throttled(ctx, frame.freeze()).await {
                Ok((parts, throttle)) => {
                    if !throttle.is_zero() {
                        muted_until = Some(tokio::time::Instant::now() + throttle);
                    }
                    Ok(parts)
                }
                Err(e) => Err(e),
            };
            if !respond(ctx, stream, Ok(response), producing).await? {
                return Ok(());
            }
            continue;
        }
        // What the connection waits for at most: authentication, the rest of a frame begun,
        // or (idle) the next request.
        let now = tokio::time::Instant::now();
        if buf.is_empty() {
            partial_since = None;
        } else if partial_since.is_none() {
            partial_since = Some(now);
        }
        let config = &ctx.broker.config;
        let deadline = [
            muted_until.filter(|_| muted).map(|t| (t, Deadline::Unmute)),
            auth.as_ref()
                .map(|a| (a.deadline, Deadline::Authentication)),
            partial_since.map(|t| (t + config.request_read_timeout, Deadline::PartialFrame)),
            (pending.is_empty() && buf.is_empty())
                .then_some(config.connections_max_idle)
                .flatten()
                .map(|idle| (last_request + idle, Deadline::Idle)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at);
        let event = tokio::select! {
            // `read_buf` is cancel-safe: bytes read are in `buf` even if the other branch wins.
            n = stream.read_buf(&mut buf), if !muted => Event::Read(n?),
            _ = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                match deadline.map(|(_, d)| d) {
                    Some(Deadline::Unmute) => {
                        muted_until = None;
                        continue;
                    }
                    Some(Deadline::Authentication) => {
                        auth_failed(ctx, &format!("not finished within {SASL_DEADLINE:?}"));
                    }
                    Some(Deadline::PartialFrame) => {
                        ctx.metrics.connections_closed_slow.inc();
                        tracing::debug!(peer = %client_host(), bytes = buf.len(), "a request frame was not completed in time; closing");
                    }
                    Some(Deadline::Idle) | None => {
                        ctx.metrics.connections_closed_idle.inc();
                        tracing::debug!(peer = %client_host(), "idle for connections.max.idle.ms; closing");
                    }
                }
                return Ok(());
            }
            r = async {
                match pending.front_mut() {
                    Some(oldest) => oldest.await,
                    None => std::future::pending().await,
                }
            } => Event::Responded(r),
        };
        match event {
            Event::Read(0) => {
                // The peer is done sending; what it sent is still answered.
                while let Some(oldest) = pending.pop_front() {
                    if !respond(ctx, stream, oldest.await, true).await? {
                        break;
                    }
                }
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
                };
            }
            Event::Read(_) => {}
            Event::Responded(r) => {
                pending.pop_front();
                if !respond(ctx, stream, r, true).await? {
                    return Ok(());
                }
            }
        }
    }
}

/// An authenticated SASL session: who, and until when without re-authenticating (KIP-368).
#[derive(Debug)]
struct Session {
    listener: String,
    user: String,
    mechanism: crate::sasl::Mechanism,
    expires: Option<tokio::time::Instant>,
}

/// A SASL listener's connection before it has authenticated (or while it re-authenticates).
#[derive(Debug)]
pub struct Authentication {
    listener: String,
    /// The mechanism the handshake chose, and its exchange so far.
    exchange: Option<crate::sasl::Exchange>,
    /// Re-authentication (KIP-368): the user the connection was and its mechanism, which it
    /// must keep.
    reauth_of: Option<(String, crate::sasl::Mechanism)>,
    /// When a connection that has not authenticated is closed (a slow or silent client holds
    /// no connection slot for longer).
    deadline: tokio::time::Instant,
}

/// Counts a failed SASL authentication and logs it, thinned out per peer as error closes are:
/// a peer that keeps failing (guessing passwords, say) also waits longer before each new
/// connection is served (`error_backoff`).
fn auth_failed(ctx: &Context, why: &str) {
    ctx.metrics.sasl_authentication_failures.inc();
    let peer = PEER.try_with(|p| *p).ok().flatten();
    let (failures, log) = match peer {
        Some(p) => ctx
            .backoff
            .record_error_close(p.ip(), std::time::Instant::now()),
        None => (1, true),
    };
    if log {
        tracing::warn!(?peer, reason = %why, failures, "SASL authentication failed");
    }
}

/// How long a SASL session lasts (KIP-368): `connections.max.reauth.ms`, cut to the
/// credential's own expiry (an OAUTHBEARER token's `exp`); `None` (no re-authentication asked)
/// when `connections.max.reauth.ms` is 0, as Kafka.
fn session_lifetime(
    config: &crate::config::BrokerConfig,
    exchange: &crate::sasl::Exchange,
) -> Option<std::time::Duration> {
    let max = config.connections_max_reauth?;
    Some(match exchange.expires() {
        Some(exp) => exp
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(std::time::Duration::ZERO)
            .min(max),
        None => max,
    })
}

/// How long a connection on a SASL listener has to authenticate.
const SASL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// What a frame did to a connection's authentication.
enum AuthOutcome {
    Continue,
    Authenticated(String),
    /// Authentication failed: the answer says so, then the connection closes.
    Refused,
}

/// Handles a frame of a connection that has not authenticated: ApiVersions as usual,
/// SaslHandshake and SaslAuthenticate through the exchange; anything else closes the
/// connection (Kafka's broker does the same).
async fn authenticate(
    ctx: &Arc<Context>,
    auth: &mut Authentication,
    frame: Bytes,
) -> Result<(Vec<Part>, AuthOutcome), ConnectionError> {
    use crate::error_code::ErrorCode;
    use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
    let (api_key, version, header, request) = match decode_request(frame.clone()) {
        Ok(Decoded::Request {
            api_key,
            version,
            header,
            request,
        }) => (api_key, version, header, *request),
        Ok(Decoded::UnsupportedApiVersions { .. }) => {
            let parts = handle_frame(ctx, frame).await?.unwrap_or_default();
            return Ok((parts, AuthOutcome::Continue));
        }
        Err(e) => {
            ctx.metrics.malformed_requests.inc();
            return Err(e);
        }
    };
    let config = &ctx.broker.config;
    let enabled: Vec<_> = config
        .sasl_mechanisms
        .iter()
        .map(|m| kafka_protocol::protocol::StrBytes::from_static_str(m.name()))
        .collect();
    let (response, outcome) = match request {
        RequestKind::ApiVersions(_) => {
            let parts = handle_frame(ctx, frame).await?.unwrap_or_default();
            return Ok((parts, AuthOutcome::Continue));
        }
        RequestKind::SaslHandshake(r) => {
            let chosen = crate::sasl::Mechanism::parse(r.mechanism.as_str())
                .filter(|m| config.sasl_mechanisms.contains(m));
            let code = match chosen {
                Some(m) if auth.exchange.is_none() => {
                    auth.exchange = Some(crate::sasl::Exchange::new(m));
                    ErrorCode::None
                }
                Some(_) => ErrorCode::IllegalSaslState,
                None => ErrorCode::UnsupportedSaslMechanism,
            };
            let outcome = if code == ErrorCode::None {
                AuthOutcome::Continue
            } else {
                AuthOutcome::Refused
            };
            let response = crate::msg!(SaslHandshakeResponse {
                error_code: code.code(),
                mechanisms: enabled,
            });
            (ResponseKind::SaslHandshake(response), outcome)
        }
        RequestKind::SaslAuthenticate(r) => {
            // A refusal: the error, then the connection closes.
            let refused = |code: ErrorCode, message: &str| {
                let response = crate::msg!(SaslAuthenticateResponse {
                    error_code: code.code(),
                    error_message: Some(handler::s(message)),
                });
                (
                    ResponseKind::SaslAuthenticate(response),
                    AuthOutcome::Refused,
                )
            };
            match auth.exchange.as_mut() {
                None => refused(
                    ErrorCode::IllegalSaslState,
                    "SaslAuthenticate before SaslHandshake",
                ),
                Some(exchange) => {
                    let no_users = std::collections::BTreeMap::new();
                    let plain = config.plain_users.get(&auth.listener).unwrap_or(&no_users);
                    match exchange.step_with(&r.auth_bytes, plain, &ctx.scram, ctx.oauth.as_deref())
                    {
                        crate::sasl::Step::Challenge(bytes) => {
                            let response = crate::msg!(SaslAuthenticateResponse {
                                auth_bytes: Bytes::from(bytes),
                            });
                            (
                                ResponseKind::SaslAuthenticate(response),
                                AuthOutcome::Continue,
                            )
                        }
                        crate::sasl::Step::Done { user, .. }
                            if auth.reauth_of.as_ref().is_some_and(|(was, m)| {
                                *was != user || *m != exchange.mechanism()
                            }) =>
                        {
                            auth_failed(ctx, "a re-authentication as another user or mechanism");
                            refused(
                                ErrorCode::SaslAuthenticationFailed,
                                "Cannot change principals or mechanisms during re-authentication",
                            )
                        }
                        crate::sasl::Step::Done { user, reply } => {
                            let mut response = crate::msg!(SaslAuthenticateResponse {
                                auth_bytes: Bytes::from(reply),
                            });
                            // KIP-368 (v1+): how long the session lasts before the client
                            // must re-authenticate (0: for as long as the connection).
                            if version >= 1
                                && let Some(d) = session_lifetime(config, exchange)
                            {
                                response.session_lifetime_ms =
                                    i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                            }
                            (
                                ResponseKind::SaslAuthenticate(response),
                                AuthOutcome::Authenticated(user),
                            )
                        }
                        crate::sasl::Step::Failed(why) => {
                            auth_failed(ctx, &why);
                            refused(
                                ErrorCode::SaslAuthenticationFailed,
                                "Authentication failed: invalid credentials",
                            )
                        }
                    }
                }
            }
        }
        _ => {
            return Err(ConnectionError::Malformed(format!(
                "{api_key:?} before SASL authentication on listener {}",
                auth.listener
            )));
        }
    };
    let parts = encode(
        ctx,
        api_key,
        version,
        header.correlation_id,
        header.client_id.as_deref(),
        response,
        Vec::new(),
    )?;
    Ok((parts, outcome))
}

/// Takes the next whole request frame (without its size prefix) out of `buf`, once it is all
/// there. A size outside `[0, limit]` is refused before anything is allocated for it.
fn next_frame(
    buf: &mut BytesMut,
    limit: usize,
    ctx: &Context,
) -> Result<Option<BytesMut>, ConnectionError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if size < 0 || size as usize > limit {
        ctx.metrics.malformed_requests.inc();
        return Err(ConnectionError::FrameTooLarge {
            size: i64::from(size),
            limit,
        });
    }
    let size = size as usize;
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size)))
}

/// Appends a produce request's batches now and returns its response-to-be.
/// Starts a produce request; returns its pending response and how long the connection is to
/// be throttled for its client quota (zero without one).
async fn start_produce(
    ctx: &Arc<Context>,
    frame: BytesMut,
) -> Result<(PendingResponse, std::time::Duration), ConnectionError> {
    let started = std::time::Instant::now();
    let cpu_before = crate::quota::thread_cpu();
    let bytes = frame.len() as u64;
    let (version, header, request) = match decode_request(frame.freeze()) {
        Ok(Decoded::Request {
            version,
            header,
            request,
            ..
        }) => (version, header, *request),
        Ok(Decoded::UnsupportedApiVersions { .. }) => {
            return Err(ConnectionError::Malformed("not a produce request".into()));
        }
        Err(e) => {
            ctx.metrics.malformed_requests.inc();
            return Err(e);
        }
    };
    let RequestKind::Produce(r) = request else {
        return Err(ConnectionError::Malformed("not a produce request".into()));
    };
    let principal = principal();
    let user = crate::quota::user_of(&principal);
    let client_id = header.client_id.as_deref().unwrap_or("");
    let mut throttle =
        ctx.quotas
            .record_bytes(crate::quota::PRODUCER_BYTE_RATE, user, client_id, bytes);
    if !throttle.is_zero() {
        ctx.metrics.quota_produce_throttled.inc();
    }
    // KIP-890: a transaction's first batch in a partition checked with (or, transaction
    // version 2, added by) its coordinator: once per partition and transaction.
    let refused = handler::produce::verify_with_coordinator(ctx, &r, version).await;
    let in_flight = handler::produce::start(ctx, r, refused);
    // The produce's CPU is its decoding and appending, here; what follows is waiting.
    if let Some(q) = ctx.quotas.request_quota(user, client_id) {
        let spent = crate::quota::thread_cpu().saturating_sub(cpu_before);
        let t = ctx.quotas.record_request(&q, spent);
        if !t.is_zero() {
            ctx.metrics.quota_request_throttled.inc();
        }
        throttle = throttle.max(t);
    }
    let ctx = ctx.clone();
    // The answer is built in a task of its own: it keeps the connection's listener (its
    // leader hints name addresses on that listener, KIP-951).
    let listener = LISTENER.try_with(Clone::clone).ok();
    let advertised = ADVERTISED.try_with(Clone::clone).ok();
    let pending = tokio::spawn(async move {
        let finish = in_flight.finish();
        let response = match (listener, advertised) {
            (Some(l), Some(a)) => LISTENER.scope(l, ADVERTISED.scope(a, finish)).await,
            _ => finish.await,
        };
        ctx.metrics
            .observe_request(ApiKey::Produce, started.elapsed());
        let Some(mut response) = response else {
            return Ok(None);
        };
        response.throttle_time_ms = throttle_ms(throttle);
        encode(
            &ctx,
            ApiKey::Produce,
            version,
            header.correlation_id,
            header.client_id.as_deref(),
            ResponseKind::Produce(response),
            Vec::new(),
        )
        .map(Some)
    });
    Ok((pending, throttle))
}

/// A throttle time as `throttle_time_ms` carries it.
fn throttle_ms(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Writes a response (none for acks=0). `false`: close the connection now, because this
/// broker lost its lease and a producer must go to one that can serve it (answered with
/// NOT_LEADER_OR_FOLLOWER and the like first, so the client knows why).
async fn respond(
    ctx: &Context,
    stream: &mut ClientStream,
    response: Result<Result<Option<Vec<Part>>, ConnectionError>, tokio::task::JoinError>,
    producing: bool,
) -> Result<bool, ConnectionError> {
    let response = response.map_err(|e| ConnectionError::Io(std::io::Error::other(e)))??;
    if let Some(parts) = response {
        crate::wire_out::write_parts(stream, parts).await?;
    }
    Ok(!(producing && ctx.broker.cluster.as_ref().is_some_and(|c| c.lease_lost())))
}

/// A request frame, decoded.
#[derive(Debug)]
pub enum Decoded {
    /// ApiVersions of a version newer than ours: answer with the KIP-511 v0 response.
    UnsupportedApiVersions {
        /// To echo.
        correlation_id: i32,
    },
    /// A request of a supported API and version.
    Request {
        /// The API.
        api_key: ApiKey,
        /// Its version on the wire: the response is encoded at this version.
        version: i16,
        /// The header. For a version below the codec's floor its `request_api_version` is the
        /// modern equivalent the request was decoded to (`wire::legacy`), the version the
        /// handler sees.
        header: RequestHeader,
        /// The body.
        request: Box<RequestKind>,
    },
}

/// Decodes one request frame (without its size prefix). Pure: no I/O, never panics; every
/// defect is a `ConnectionError::Malformed`. Fuzzed by `fuzz/fuzz_targets/wire_request.rs`.
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, ConnectionError> {
    if frame.len() < 8 {
        return Err(ConnectionError::Malformed(format!(
            "{}-byte frame is shorter than a request header",
            frame.len()
        )));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(key) else {
        return Err(ConnectionError::Malformed(format!("unknown API key {key}")));
    };
    let supported = handler::supported_versions(api_key);
    // KIP-511: an ApiVersions request of a version we do not know is answered in v0 with
    // UNSUPPORTED_VERSION and our ranges, so the client can retry with one we do.
    if api_key == ApiKey::ApiVersions && supported.is_some_and(|(_, max)| version > max) {
        return Ok(Decoded::UnsupportedApiVersions { correlation_id });
    }
    if !supported.is_some_and(|(min, max)| version >= min && version <= max) {
        return Err(ConnectionError::Malformed(format!(
            "{api_key:?} v{version} is not supported"
        )));
    }
    let header_version = api_key.request_header_version(version);
    let mut header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| ConnectionError::Malformed(format!("{api_key:?} v{version} header: {e}")))?;
    let request = match wire::legacy::modern_equivalent(api_key, version) {
        // Below the codec's floor: decoded here, handled as its modern equivalent.
        Some(modern) => {
            header.request_api_version = modern;
            wire::legacy::decode(api_key, version, &mut frame)
                .map_err(|e| ConnectionError::Malformed(e.to_string()))?
        }
        None if wire::topic_ids::decodes(api_key, version) => {
            wire::topic_ids::decode(api_key, &mut frame).map_err(ConnectionError::Malformed)?
        }
        None => RequestKind::decode(api_key, &mut frame, version)
            .map_err(|e| ConnectionError::Malformed(format!("{api_key:?} v{version} body: {e}")))?,
    };
    if frame.has_remaining() {
        tracing::debug!(
            ?api_key,
            version,
            extra = frame.remaining(),
            "trailing bytes after request body"
        );
    }
    Ok(Decoded::Request {
        api_key,
        version,
        header,
        request: Box::new(request),
    })
}

/// Decodes one frame, handles it, and returns the encoded response frame as parts (bytes and
/// file slices to sendfile); `None`: no response, as for acks=0 produce.
pub async fn handle_frame(
    ctx: &Arc<Context>,
    frame: Bytes,
) -> Result<Option<Vec<Part>>, ConnectionError> {
    handle_frame_throttled(ctx, frame)
        .await
        .map(|(parts, _)| parts)
}

/// [`handle_frame`], and how long the connection is to be throttled for its client's
/// consumer quota (zero but for a consumer's Fetch over its quota).
async fn handle_frame_throttled(
    ctx: &Arc<Context>,
    frame: Bytes,
) -> Result<(Option<Vec<Part>>, std::time::Duration), ConnectionError> {
    let (api_key, version, header, request) = match decode_request(frame) {
        Ok(Decoded::UnsupportedApiVersions { correlation_id }) => {
            let body = handler::api_versions::unsupported_response();
            return encode(
                ctx,
                ApiKey::ApiVersions,
                0,
                correlation_id,
                None,
                body,
                Vec::new(),
            )
            .map(|p| (Some(p), std::time::Duration::ZERO));
        }
        Ok(Decoded::Request {
            api_key,
            version,
            header,
            request,
        }) => (api_key, version, header, *request),
        Err(e) => {
            ctx.metrics.malformed_requests.inc();
            return Err(e);
        }
    };
    // Replicas' fetches are not clients': no quota applies to them (as in Kafka).
    let consumer_fetch = match &request {
        RequestKind::Fetch(f) => {
            let replica = if header.request_api_version >= 15 {
                f.replica_state.replica_id.0
            } else {
                f.replica_id.0
            };
            replica < 0
        }
        _ => false,
    };
    let started = std::time::Instant::now();
    let principal = principal();
    let user = crate::quota::user_of(&principal);
    let client_id = header.client_id.as_deref().unwrap_or("");
    let mut throttle = std::time::Duration::ZERO;
    // Clients under a request_percentage quota have their requests' CPU measured.
    let response = match ctx.quotas.request_quota(user, client_id) {
        None => handler::handle(ctx, &header, request).await,
        Some(q) => {
            let (response, cpu) =
                crate::quota::CpuTimed::new(handler::handle(ctx, &header, request)).await;
            throttle = ctx.quotas.record_request(&q, cpu);
            if !throttle.is_zero() {
                ctx.metrics.quota_request_throttled.inc();
            }
            response
        }
    };
    ctx.metrics.observe_request(api_key, started.elapsed());
    let Some((mut response, files)) = response else {
        return Ok((None, std::time::Duration::ZERO));
    };
    if consumer_fetch && let ResponseKind::Fetch(f) = &mut response {
        let bytes: usize = files.iter().map(strata_engine::FileSlice::len).sum();
        let t = ctx.quotas.record_bytes(
            crate::quota::CONSUMER_BYTE_RATE,
            user,
            client_id,
            bytes as u64,
        );
        if !t.is_zero() {
            ctx.metrics.quota_fetch_throttled.inc();
        }
        throttle = throttle.max(t);
        f.throttle_time_ms = throttle_ms(throttle);
    }
    if !throttle.is_zero() {
        handler::set_throttle_time(&mut response, throttle_ms(throttle));
    }
    encode(
        ctx,
        api_key,
        version,
        header.correlation_id,
        header.client_id.as_deref(),
        response,
        files,
    )
    .map(|p| (Some(p), throttle))
}

/// Encodes a response at the request's version. One that does not encode is a bug of ours:
/// it is logged at error with the API, version and client, counted
/// (`strata_response_encode_errors_total`), and answered with the API's error response; the
/// connection closes only when even that does not encode.
fn encode(
    ctx: &Context,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    response: ResponseKind,
    files: Vec<strata_engine::FileSlice>,
) -> Result<Vec<Part>, ConnectionError> {
    let (failure, parts) =
        match wire::frame::response(api_key, version, correlation_id, response, files) {
            Ok(encoded) => (encoded.failure, Some(encoded.parts)),
            Err(e) => (Some(e), None),
        };
    if let Some(failure) = &failure {
        ctx.metrics.response_encode_error(api_key);
        tracing::error!(
            api = ?api_key,
            version,
            client_id = client_id.unwrap_or(""),
            error = %failure,
            answered = parts.is_some(),
            "response does not encode; answered UNKNOWN_SERVER_ERROR, or closing the \
             connection when that does not encode either"
        );
    }
    match (parts, failure) {
        (Some(parts), _) => Ok(parts),
        (None, failure) => Err(ConnectionError::Malformed(
            failure.map_or_else(String::new, |e| e.to_string()),
        )),
    }
}
