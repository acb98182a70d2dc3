//! A minimal Kafka protocol client for broker-to-broker requests (a follower's Fetch and
//! OffsetForLeaderEpoch to its leader): one request at a time on one connection, over the
//! inter-broker listener's security (`link`): TLS, and a SASL login before anything else.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::link::{LinkSecurity, LinkStream};

/// Errors of a broker-to-broker request.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    /// The connection failed or timed out.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The response did not decode.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The leader refused this broker's SASL login.
    #[error("SASL login refused: {0}")]
    Authentication(String),
}

/// One connection to a broker.
#[derive(Debug)]
pub struct KafkaConnection {
    stream: LinkStream,
    correlation: i32,
    client_id: StrBytes,
}

impl KafkaConnection {
    /// Connects to `endpoint` (`host:port`) and logs in, as `link` says.
    pub async fn connect(
        endpoint: &str,
        client_id: &str,
        link: &LinkSecurity,
    ) -> Result<Self, KafkaClientError> {
        let stream = link.connect(endpoint, Duration::from_secs(1)).await?;
        let mut conn = KafkaConnection {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
        };
        if let Some(login) = &link.sasl {
            conn.login(login.clone()).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 until the exchange completes.
    async fn login(&mut self, login: crate::sasl::Login) -> Result<(), KafkaClientError> {
        use kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
            SaslHandshakeResponse,
        };
        let timeout = Duration::from_secs(5);
        let refused = |e: &str| KafkaClientError::Authentication(e.to_string());
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = StrBytes::from_static_str(login.mechanism.name());
        let r: SaslHandshakeResponse = self
            .request(ApiKey::SaslHandshake, 1, &handshake, timeout)
            .await?;
        if r.error_code != 0 {
            return Err(refused(&format!(
                "the leader does not enable {} (error {})",
                login.mechanism.name(),
                r.error_code
            )));
        }
        let mut exchange = crate::sasl::ClientExchange::new(login);
        let mut token = exchange.first();
        loop {
            let mut req = SaslAuthenticateRequest::default();
            req.auth_bytes = Bytes::from(token);
            let r: SaslAuthenticateResponse = self
                .request(ApiKey::SaslAuthenticate, 2, &req, timeout)
                .await?;
            if r.error_code != 0 {
                return Err(refused(
                    r.error_message
                        .as_deref()
                        .unwrap_or("authentication failed"),
                ));
            }
            match exchange.next(&r.auth_bytes).map_err(|e| refused(&e))? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }

    /// Sends a request and reads its response, within `timeout`.
    pub async fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, KafkaClientError> {
        let proto = |e: &dyn std::fmt::Display| KafkaClientError::Protocol(e.to_string());
        self.correlation = self.correlation.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(self.client_id.clone());
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .map_err(|e| proto(&e))?;
        req.encode(&mut body, version).map_err(|e| proto(&e))?;
        let exchange = async {
            let len = u32::try_from(body.len())
                .map_err(|_| KafkaClientError::Protocol("request too large".into()))?;
            self.stream.write_all(&len.to_be_bytes()).await?;
            self.stream.write_all(&body).await?;
            let len = self.stream.read_u32().await? as usize;
            if len > 256 << 20 {
                return Err(KafkaClientError::Protocol(format!(
                    "response of {len} bytes"
                )));
            }
            let mut buf = vec![0u8; len];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, KafkaClientError>(buf)
        };
        let buf = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let mut b = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut b, key.response_header_version(version))
            .map_err(|e| proto(&e))?;
        if h.correlation_id != self.correlation {
            return Err(KafkaClientError::Protocol(format!(
                "correlation id {} for request {}",
                h.correlation_id, self.correlation
            )));
        }
        Resp::decode(&mut b, version).map_err(|e| proto(&e))
    }
}
