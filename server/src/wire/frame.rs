//! A response as the bytes of one frame: `size: i32`, the response header, the body, encoded at
//! the request's version, with Fetch record bytes left as file slices for sendfile
//! ([`crate::wire_out`]).
//!
//! Every response passes [`super::fit::fit`] first. A response that still does not encode is a
//! bug of ours: [`response`] then encodes the API's error response
//! ([`super::error_response`]) and returns the failure beside it, for the caller to log and
//! count; only when even that fails is there nothing to send.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use strata_engine::FileSlice;

use super::{error_response, fit, legacy};
use crate::wire_out::{Part, SegmentedFrame};

/// A response that did not encode at its version.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{api:?} v{version} response does not encode: {reason}")]
pub struct EncodeError {
    /// The API.
    pub api: ApiKey,
    /// The version it was encoded at.
    pub version: i16,
    /// The codec's complaint.
    pub reason: String,
}

/// An encoded response frame.
#[derive(Debug)]
pub struct Encoded {
    /// The frame: bytes and file slices, in order.
    pub parts: Vec<Part>,
    /// Set when the handler's response did not encode and `parts` is the API's error response.
    pub failure: Option<EncodeError>,
}

/// Encodes `body` as the response to request `correlation_id` of `api` at `version`; `files`
/// are the slices a Fetch response's record markers stand for. `Err` only when neither the
/// response nor the API's error response encodes.
pub fn response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    mut body: ResponseKind,
    files: Vec<FileSlice>,
) -> Result<Encoded, EncodeError> {
    fit::fit(&mut body, version);
    let failure = match encode(api, version, correlation_id, &body, files) {
        Ok(parts) => {
            return Ok(Encoded {
                parts,
                failure: None,
            });
        }
        Err(reason) => EncodeError {
            api,
            version,
            reason,
        },
    };
    let Some(mut fallback) = error_response::for_response(&body) else {
        return Err(failure);
    };
    fit::fit(&mut fallback, version);
    match encode(api, version, correlation_id, &fallback, Vec::new()) {
        Ok(parts) => Ok(Encoded {
            parts,
            failure: Some(failure),
        }),
        Err(reason) => Err(EncodeError {
            reason: format!("{}; its error response too: {reason}", failure.reason),
            ..failure
        }),
    }
}

fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    files: Vec<FileSlice>,
) -> Result<Vec<Part>, String> {
    let header_version = api.response_header_version(version);
    match body {
        ResponseKind::Fetch(fetch) if !files.is_empty() => {
            segmented(correlation_id, header_version, fetch, version, files)
        }
        _ => Ok(vec![Part::Bytes(bytes(
            api,
            correlation_id,
            header_version,
            body,
            version,
        )?)]),
    }
}

/// Encodes a Fetch response whose record fields are markers for `files`.
fn segmented(
    correlation_id: i32,
    header_version: i16,
    fetch: &FetchResponse,
    version: i16,
    files: Vec<FileSlice>,
) -> Result<Vec<Part>, String> {
    let mut frame = SegmentedFrame::new(files);
    frame.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, header_version)
        .map_err(|e| format!("header: {e}"))?;
    fetch
        .encode(&mut frame, version)
        .map_err(|e| format!("body: {e}"))?;
    let size = (frame.len() - 4) as i32;
    if !frame.patch_prefix(0, &size.to_be_bytes()) {
        return Err("could not patch the frame size".into());
    }
    frame
        .finish()
        .ok_or_else(|| "record markers did not match the file slices".into())
}

fn bytes(
    api: ApiKey,
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // size, patched below
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| format!("header: {e}"))?;
    if legacy::modern_equivalent(api, version).is_some() {
        legacy::encode(body, version, &mut buf).map_err(|e| e.to_string())?;
    } else {
        body.encode(&mut buf, version)
            .map_err(|e| format!("body: {e}"))?;
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// A response with a field its version cannot carry and `fit` does not know (InitProducerId's
    /// v6+ `ongoing_txn_producer_id` at v5: this broker never sets it) is answered with the API's
    /// error response, UNKNOWN_SERVER_ERROR, and the failure is returned beside it.
    #[test]
    fn an_unencodable_response_becomes_the_apis_error_response() {
        use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
        use kafka_protocol::protocol::Decodable;
        let mut r = InitProducerIdResponse::default();
        r.producer_id = 77.into();
        r.ongoing_txn_producer_id = 78.into();
        let out = response(
            ApiKey::InitProducerId,
            5,
            9,
            ResponseKind::InitProducerId(r.clone()),
            vec![],
        )
        .unwrap();
        let failure = out.failure.expect("the failure is reported");
        assert_eq!((failure.api, failure.version), (ApiKey::InitProducerId, 5));
        let [Part::Bytes(frame)] = &out.parts[..] else {
            panic!("one byte part")
        };
        let mut body = frame.slice(4..);
        let header = ResponseHeader::decode(&mut body, 1).unwrap();
        assert_eq!(header.correlation_id, 9);
        let decoded = InitProducerIdResponse::decode(&mut body, 5).unwrap();
        assert_eq!(decoded.error_code, -1, "UNKNOWN_SERVER_ERROR");
        assert_eq!(decoded.producer_id, -1i64);

        // A version the codec does not know: neither encodes, so there is nothing to send.
        let e = response(
            ApiKey::InitProducerId,
            99,
            9,
            ResponseKind::InitProducerId(r),
            vec![],
        )
        .unwrap_err();
        assert_eq!(e.version, 99);
    }
}
