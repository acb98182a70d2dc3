//! Every advertised (API, version), decoded from bytes as the broker receives them and encoded
//! back at that version: never a panic, whatever the bytes. Each pair starts from a body of zero
//! or one bytes (which decode, for most requests, to empty arrays and strings) and runs a few hundred
//! deterministic mutations of it: random bytes, small and huge lengths, truncations. Whatever
//! decodes must encode without panicking, and what encodes must decode again at the same
//! version. No broker: this is the codec path of `connection::decode_request`.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strata_server::connection::{Decoded, decode_request};

/// As in the `strata` binary: hostile array lengths reserve address space, not memory.
#[global_allocator]
static ALLOCATOR: strata_server::alloc::NoReserveLarge = strata_server::alloc::NoReserveLarge;

/// A small deterministic generator (the test must be reproducible on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = 9;
    header.client_id = Some(StrBytes::from_static_str("codec-test"));
    header
        .encode(&mut out, api.request_header_version(version))
        .unwrap();
    out.extend_from_slice(body);
    out.freeze()
}

/// A mutation of a body of zeros (empty arrays and strings of the fixed-width encodings) or
/// ones (empty compact arrays and strings of the flexible ones): some random bytes, some
/// lengths, maybe cut short.
fn mutate(rng: &mut Lcg, round: usize) -> Vec<u8> {
    let mut body = vec![(round % 2) as u8; 4 + rng.below(160)];
    let len = body.len();
    for _ in 0..rng.below(6) {
        let at = rng.below(len);
        body[at] = match rng.below(4) {
            0 => 0xff,
            1 => 1 + rng.below(4) as u8,
            2 => 0x7f,
            _ => rng.next() as u8,
        };
    }
    if round % 5 == 4 {
        body.truncate(rng.below(len));
    }
    body
}

#[test]
fn every_advertised_request_decodes_and_encodes_back_without_panicking() {
    let mut rng = Lcg(0x5eed);
    let (mut pairs, mut decoded, mut reencoded) = (0usize, 0usize, 0usize);
    for key in 0..=i16::MAX {
        let Ok(api) = ApiKey::try_from(key) else {
            if key > 100 {
                break;
            }
            continue;
        };
        let Some((min, max)) = strata_server::handler::supported_versions(api) else {
            continue;
        };
        // Produce v0-2 are advertised but never decoded (the connection closes).
        let min = min.max(if api == ApiKey::Produce { 3 } else { min });
        for version in min..=max {
            pairs += 1;
            let mut pair_decoded = 0;
            for round in 0..400 {
                let body = if round == 0 {
                    vec![0u8; 64]
                } else {
                    mutate(&mut rng, round)
                };
                let Ok(Decoded::Request {
                    header, request, ..
                }) = decode_request(frame(api, version, &body))
                else {
                    continue;
                };
                decoded += 1;
                pair_decoded += 1;
                // The handler sees `header.request_api_version` (the modern equivalent for
                // versions below the codec's floor); that is the version re-encoded.
                let at = header.request_api_version;
                let mut out = BytesMut::new();
                if request.encode(&mut out, at).is_ok() {
                    reencoded += 1;
                    let again = RequestKind::decode(api, &mut out.freeze(), at);
                    assert!(
                        again.is_ok(),
                        "{api:?} v{version} (as v{at}): re-encoded request does not decode: {:?}",
                        again.err()
                    );
                }
            }
            assert!(
                pair_decoded > 0,
                "{api:?} v{version}: no input decoded; the test exercises nothing"
            );
        }
    }
    assert!(pairs > 150, "{pairs} (API, version) pairs");
    println!("{pairs} pairs, {decoded} requests decoded, {reencoded} re-encoded and decoded again");
}
