//! The record codecs and reader on arbitrary bytes: decompression never panics and never
//! inflates past its limit; reading records from any batch whose CRC matches (the CRC is
//! restamped, so the fuzzer reaches the record parser) never panics and yields only offsets
//! inside the batch; and records built from the input in the chosen codec read back as built.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::compression::{self, Compression};
use strata_engine::{BatchBuilder, Offset, Record, RecordReader, batch};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let codec = Compression::from_attributes(i16::from(selector));
    if let Ok(out) = compression::decompress(codec, rest, LIMIT) {
        assert!(out.len() <= LIMIT);
    }

    let mut bytes = rest.to_vec();
    if let Ok(h) = batch::parse_header(&bytes, 0)
        && h.size() <= bytes.len()
    {
        batch::restamp_crc(&mut bytes[..h.size()]);
        for record in RecordReader::new(bytes, Offset(0)) {
            let Ok(r) = record else { break };
            assert!(r.offset >= h.base_offset && r.offset <= h.last_offset());
        }
    }

    if matches!(codec, Compression::Unknown(_)) || rest.is_empty() {
        return;
    }
    let values: Vec<&[u8]> = rest.chunks(usize::from(selector >> 3) + 1).collect();
    let built = BatchBuilder::new()
        .compression(codec)
        .records(values.iter().map(|v| Record::new(v.to_vec()).header("h", v.to_vec())))
        .build()
        .expect("a non-empty batch in a known codec builds");
    let read: Vec<_> = RecordReader::new(built.freeze(), Offset(0))
        .collect::<Result<_, _>>()
        .expect("a built batch reads back");
    assert_eq!(read.len(), values.len());
    for (r, v) in read.iter().zip(&values) {
        assert_eq!(r.value.as_deref(), Some(*v));
        assert_eq!(r.headers[0].value.as_deref(), Some(*v));
    }
});
