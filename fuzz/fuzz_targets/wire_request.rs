//! Request decoding on arbitrary frames, as the broker does it: never panics and never aborts on
//! a huge allocation (hostile array lengths; see `strata_server::alloc`).
//!
//! Whatever decodes is encoded again at the version the handler sees, which must not panic
//! (`server/tests/request_codec.rs` asserts more, on generated inputs: that it decodes again).
//! Round-tripping is not asserted here: the crate's re-encoding of some inputs (unknown tagged
//! fields) does not decode again, and the broker never re-encodes a request.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_server::connection::{Decoded, decode_request};

/// The broker's allocator, so that huge capacity reservations from hostile array lengths behave
/// as in the `strata` binary (lazily mapped, never touched).
#[global_allocator]
static ALLOCATOR: strata_server::alloc::NoReserveLarge = strata_server::alloc::NoReserveLarge;

fuzz_target!(|data: &[u8]| {
    if let Ok(Decoded::Request {
        header, request, ..
    }) = decode_request(Bytes::copy_from_slice(data))
    {
        let mut out = bytes::BytesMut::new();
        let _ = request.encode(&mut out, header.request_api_version);
    }
});
