//! A broker's connection to the active controller. It tries the voters in turn, follows
//! `NotController` hints, and reconnects after failures. One call at a time per client: the
//! broker keeps separate clients for heartbeats, metadata watching and administration, so a
//! slow one never delays another.

use std::net::SocketAddr;
use std::time::Duration;

use super::link::{LinkSecurity, LinkStream};
use super::wire::{ControllerRequest, ControllerResponse, Frame, WireError};

/// Why a controller call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerCallError {
    /// No controller answered in time.
    #[error("no active controller answered within {0:?}")]
    Timeout(Duration),
}

#[derive(Debug, Default)]
struct Conn {
    target: usize,
    stream: Option<LinkStream>,
}

/// A client of the controller quorum.
#[derive(Debug)]
pub struct ControllerClient {
    voters: Vec<(i32, SocketAddr)>,
    link: LinkSecurity,
    conn: tokio::sync::Mutex<Conn>,
}

impl ControllerClient {
    /// A client of the voters of `config`, over its controller listener's security.
    pub fn new(config: &crate::config::BrokerConfig) -> ControllerClient {
        // `validate` refused settings that do not load before the node started; should they
        // fail to load now, the plaintext fallback cannot reach an SSL controller listener.
        let link = LinkSecurity::controller(config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the controller link's TLS settings do not load");
            LinkSecurity::default()
        });
        ControllerClient {
            voters: config.controller_quorum_voters.clone(),
            link,
            conn: tokio::sync::Mutex::new(Conn::default()),
        }
    }

    /// Sends `req` to the active controller, retrying until `timeout`.
    pub async fn call(
        &self,
        req: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, ControllerCallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let n = self.voters.len().max(1);
        let mut c = self.conn.lock().await;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ControllerCallError::Timeout(timeout));
            }
            let remaining = deadline - now;
            if c.stream.is_none() {
                let Some((_, addr)) = self.voters.get(c.target % n) else {
                    return Err(ControllerCallError::Timeout(timeout));
                };
                match self
                    .link
                    .connect(&addr.to_string(), remaining.min(Duration::from_millis(300)))
                    .await
                {
                    Ok(s) => c.stream = Some(s),
                    Err(e) => {
                        tracing::debug!(controller = %addr, error = %e, "connecting to a controller");
                        c.target = (c.target + 1) % n;
                        tokio::time::sleep(Duration::from_millis(20).min(remaining)).await;
                        continue;
                    }
                }
            }
            let Some(stream) = c.stream.as_mut() else {
                continue;
            };
            let exchange = async {
                Frame::Request(req.clone()).write(stream).await?;
                Frame::read(stream).await
            };
            let outcome = tokio::time::timeout(remaining.min(Duration::from_secs(3)), exchange)
                .await
                .map_err(|_| WireError::Malformed("timed out".into()))
                .and_then(|r| r);
            match outcome {
                Ok(Frame::Response(ControllerResponse::NotController { leader })) => {
                    c.stream = None;
                    let hinted =
                        leader.and_then(|l| self.voters.iter().position(|(id, _)| *id == l));
                    c.target = hinted.unwrap_or((c.target + 1) % n);
                    if hinted.is_none() {
                        tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
                    }
                }
                Ok(Frame::Response(resp)) => return Ok(resp),
                Ok(_) | Err(_) => {
                    c.stream = None;
                    c.target = (c.target + 1) % n;
                    tokio::time::sleep(Duration::from_millis(20).min(remaining)).await;
                }
            }
        }
    }
}
