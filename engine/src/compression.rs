//! The four codecs Kafka clients compress record batches with, as Kafka frames them.
//!
//! The log stores batches as they come and never needs these; they serve the record builder and
//! reader ([`crate::record`]) and compaction. Formats, as Kafka's own clients write them:
//!
//! - gzip: one or more gzip members (RFC 1952);
//! - snappy: the Xerial stream framing that Kafka's Java client writes (a 16-byte header, then
//!   blocks each prefixed by its big-endian compressed length); raw snappy, as some clients
//!   write it, is read too;
//! - lz4: one LZ4 frame (64 KiB independent blocks, no checksums), as Kafka's clients write it;
//! - zstd: one or more zstd frames.
//!
//! Decompression is bounded: input that would inflate past the caller's limit is refused with
//! [`CodecError::TooLarge`] rather than filling memory, since a stored batch may be corrupt or
//! hostile even when its CRC matches.

use std::io::{Read, Write};

/// Compression codecs in the attributes' low three bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
    /// A codec id this engine does not know; stored untouched.
    Unknown(u8),
}

impl Compression {
    /// Kafka's codecs, `None` first.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by the low three attribute bits of a batch.
    pub fn from_attributes(attributes: i16) -> Compression {
        match attributes & 0x7 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => Compression::Unknown(other as u8),
        }
    }

    /// The codec's id in the attribute bits.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
            Compression::Unknown(id) => id,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Gzip => f.write_str("gzip"),
            Compression::Snappy => f.write_str("snappy"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd => f.write_str("zstd"),
            Compression::Unknown(id) => write!(f, "unknown codec {id}"),
        }
    }
}

/// Why bytes could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The codec id is not one of Kafka's four.
    #[error("compression codec {0} is not supported")]
    Unsupported(u8),
    /// The compressed bytes are not valid for the codec.
    #[error("{codec} data is invalid: {detail}")]
    Invalid {
        /// The codec.
        codec: Compression,
        /// What the decoder said.
        detail: String,
    },
    /// The decompressed bytes would exceed the limit.
    #[error("{codec} data inflates past the limit of {limit} bytes")]
    TooLarge {
        /// The codec.
        codec: Compression,
        /// The limit.
        limit: usize,
    },
}

/// Xerial snappy stream header: magic, then version 1 and minimum compatible version 1.
const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];
/// Uncompressed bytes per Xerial block, as Kafka's Java client writes them.
const XERIAL_BLOCK: usize = 32 << 10;

/// Compresses `input` with `codec`. [`Compression::None`] returns the input unchanged.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CodecError> {
    let invalid = |e: &dyn std::fmt::Display| CodecError::Invalid {
        codec,
        detail: e.to_string(),
    };
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(input).map_err(|e| invalid(&e))?;
            enc.finish().map_err(|e| invalid(&e))
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(input.len() / 2 + XERIAL_HEADER.len());
            out.extend_from_slice(&XERIAL_HEADER);
            let mut enc = snap::raw::Encoder::new();
            for block in input.chunks(XERIAL_BLOCK) {
                let packed = enc.compress_vec(block).map_err(|e| invalid(&e))?;
                let len = u32::try_from(packed.len()).map_err(|e| invalid(&e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&packed);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            enc.write_all(input).map_err(|e| invalid(&e))?;
            enc.finish().map_err(|e| invalid(&e))
        }
        Compression::Zstd => zstd::bulk::compress(input, 3).map_err(|e| invalid(&e)),
        Compression::Unknown(id) => Err(CodecError::Unsupported(id)),
    }
}

/// Decompresses `input` compressed with `codec`, refusing to produce more than `limit` bytes.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let invalid = |e: &dyn std::fmt::Display| CodecError::Invalid {
        codec,
        detail: e.to_string(),
    };
    match codec {
        Compression::None => bounded(codec, input, limit),
        Compression::Gzip => bounded(codec, flate2::read::MultiGzDecoder::new(input), limit),
        Compression::Snappy => match input.strip_prefix(&XERIAL_HEADER[..8]) {
            Some(rest) => {
                let mut blocks = rest.get(8..).ok_or_else(|| invalid(&"truncated header"))?;
                let mut out = Vec::new();
                let mut dec = snap::raw::Decoder::new();
                while !blocks.is_empty() {
                    let (len, rest) = blocks
                        .split_first_chunk::<4>()
                        .ok_or_else(|| invalid(&"truncated block length"))?;
                    let len = u32::from_be_bytes(*len) as usize;
                    let block = rest
                        .get(..len)
                        .ok_or_else(|| invalid(&"truncated block"))?;
                    blocks = rest.get(len..).unwrap_or_default();
                    raw_snappy(&mut dec, block, limit, &mut out)?;
                }
                Ok(out)
            }
            None => {
                let mut out = Vec::new();
                raw_snappy(&mut snap::raw::Decoder::new(), input, limit, &mut out)?;
                Ok(out)
            }
        },
        Compression::Lz4 => bounded(codec, lz4_flex::frame::FrameDecoder::new(input), limit),
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(input).map_err(|e| invalid(&e))?;
            bounded(codec, dec, limit)
        }
        Compression::Unknown(id) => Err(CodecError::Unsupported(id)),
    }
}

/// Appends one raw snappy block to `out`, checking its declared length against `limit` before
/// allocating.
fn raw_snappy(
    dec: &mut snap::raw::Decoder,
    block: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let codec = Compression::Snappy;
    let invalid = |e: snap::Error| CodecError::Invalid {
        codec,
        detail: e.to_string(),
    };
    let len = snap::raw::decompress_len(block).map_err(invalid)?;
    if out.len().saturating_add(len) > limit {
        return Err(CodecError::TooLarge { codec, limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = dec
        .decompress(block, out.get_mut(start..).unwrap_or_default())
        .map_err(invalid)?;
    out.truncate(start + written);
    Ok(())
}

/// Reads `reader` to its end, refusing to read more than `limit` bytes.
fn bounded(codec: Compression, reader: impl Read, limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Invalid {
            codec,
            detail: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { codec, limit });
    }
    Ok(out)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = Compression::ALL;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn every_codec_round_trips_small_empty_and_multi_block_inputs() {
        for codec in CODECS {
            for len in [0, 1, 100, XERIAL_BLOCK, 3 * XERIAL_BLOCK + 7, 200_000] {
                let input = sample(len);
                let packed = compress(codec, &input).unwrap();
                assert_eq!(
                    decompress(codec, &packed, usize::MAX).unwrap(),
                    input,
                    "{codec} {len}"
                );
            }
        }
    }

    #[test]
    fn raw_snappy_without_the_xerial_framing_is_read_too() {
        let input = sample(5000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, usize::MAX).unwrap(),
            input
        );
    }

    #[test]
    fn inflating_past_the_limit_is_refused_by_every_codec() {
        let input = vec![0u8; 1 << 20];
        for codec in CODECS {
            let packed = compress(codec, &input).unwrap();
            assert!(
                matches!(
                    decompress(codec, &packed, 1000),
                    Err(CodecError::TooLarge { limit: 1000, .. })
                ),
                "{codec}"
            );
            assert_eq!(decompress(codec, &packed, 1 << 20).unwrap().len(), 1 << 20);
        }
    }

    #[test]
    fn garbage_is_an_error_for_every_codec_never_a_panic() {
        let mut rng = 0x9e37_79b9_u32;
        for codec in &CODECS[1..] {
            let packed = compress(*codec, &sample(10_000)).unwrap();
            for cut in [0, 1, 5, 17, packed.len() / 2, packed.len() - 1] {
                let _ = decompress(*codec, &packed[..cut], 1 << 20);
            }
            for _ in 0..200 {
                let mut bytes = packed.clone();
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = rng as usize % bytes.len();
                bytes[at] ^= (rng >> 24) as u8 | 1;
                let _ = decompress(*codec, &bytes, 1 << 20);
            }
        }
        assert!(decompress(Compression::Gzip, b"not gzip", 100).is_err());
        assert!(matches!(
            compress(Compression::Unknown(6), b"x"),
            Err(CodecError::Unsupported(6))
        ));
    }
}
