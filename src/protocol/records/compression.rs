//! The five batch compression codecs, in the formats the Java client and librdkafka use.
//!
//! - gzip: a gzip stream (RFC 1952), level 6 like Java's default; several members are read.
//! - snappy: read both raw snappy (librdkafka writes it) and the xerial framing that the Java
//!   client's snappy-java writes (`0x82 "SNAPPY" 0`, version, compatible version, then
//!   `[i32 length][raw snappy block]` chunks); write xerial with 32 KiB blocks like Java.
//! - lz4: the LZ4 frame format with independent 64 KiB blocks and no checksums, which is what
//!   Java writes and all Java reads (it rejects linked blocks).
//! - zstd: a standard zstd frame, level 3 (zstd's and Kafka's default).
//!
//! Decompression never trusts a declared size. The streaming codecs are read through a reader
//! capped at `limit + 1` bytes, so a bomb stops at the cap; snappy blocks announce their size
//! up front and are refused before allocation when the total would pass the limit (the decoder
//! cannot write past the buffer it is given). Either way going over is
//! [`RecordsError::DecompressedTooLarge`] (`CORRUPT_MESSAGE`).

use std::cell::RefCell;
use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};

use super::{RecordsError, RecordsResult};

/// A batch's compression codec (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec with this attribute id; 5-7 are not codecs.
    pub fn from_id(id: i16) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name, as in `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec named as in `compression.type` (`"producer"` is not a codec).
    pub fn from_name(name: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Gzip level the Java client uses by default (`Deflater.DEFAULT_COMPRESSION`).
pub const GZIP_DEFAULT_LEVEL: u32 = 6;
/// Zstd level Kafka uses by default.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
/// Uncompressed bytes per xerial snappy chunk, as snappy-java writes.
pub const SNAPPY_XERIAL_BLOCK: usize = 32 * 1024;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic plus version and compatible version (both i32 1).
const XERIAL_HEADER_LEN: usize = 16;

fn compress_error(codec: Compression, e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Compression {
        codec: codec.name(),
        reason: e.to_string(),
    }
}

fn decompress_error(codec: Compression, e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Decompression {
        codec: codec.name(),
        reason: e.to_string(),
    }
}

/// Appends `input` compressed with `codec` to `out` (`None` copies it).
pub fn compress(codec: Compression, input: &[u8], out: &mut BytesMut) -> RecordsResult<()> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip_compress(input, out).map_err(|e| compress_error(codec, e)),
        Compression::Snappy => {
            snappy_xerial_compress(input, out).map_err(|e| compress_error(codec, e))
        }
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out.writer());
            enc.write_all(input).map_err(|e| compress_error(codec, e))?;
            enc.finish().map_err(|e| compress_error(codec, e))?;
            Ok(())
        }
        Compression::Zstd => zstd_compress(input, out).map_err(|e| compress_error(codec, e)),
    }
}

thread_local! {
    /// One deflate compressor per thread, reset and reused: a new one allocates and zeroes
    /// about 300 KiB of tables.
    static DEFLATE: RefCell<Option<flate2::Compress>> = const { RefCell::new(None) };
    /// One zstd compression context per thread, reused: creating one allocates and clears
    /// tables far larger than a typical batch.
    static ZSTD_CCTX: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// One zstd decompression context per thread, reused for the same reason.
    static ZSTD_DCTX: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// A reused decompression context that grew past this (a frame with a large window) is dropped
/// rather than kept for the thread's lifetime.
const ZSTD_DCTX_KEEP_BYTES: usize = 4 << 20;

/// The gzip header flate2's `GzEncoder` writes at level 6: no name, no mtime, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One gzip member of `input` (header, raw deflate at [`GZIP_DEFAULT_LEVEL`], CRC-32 and length
/// trailer), the same bytes `flate2::write::GzEncoder` writes, with a reused compressor.
fn gzip_compress(input: &[u8], out: &mut BytesMut) -> std::io::Result<()> {
    let new_deflate = || flate2::Compress::new(flate2::Compression::new(GZIP_DEFAULT_LEVEL), false);
    DEFLATE.with(|cell| {
        let mut fresh = None;
        let mut cached = cell.try_borrow_mut().ok();
        let deflate = match cached.as_deref_mut() {
            Some(Some(deflate)) => deflate,
            Some(slot @ None) => slot.insert(new_deflate()),
            None => fresh.insert(new_deflate()),
        };
        deflate.reset();
        let mut body = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            let status = deflate
                .compress_vec(rest, &mut body, flate2::FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                break;
            }
            // Out of room: give the compressor as much again.
            body.reserve(body.capacity().max(64));
        }
        let mut crc = flate2::Crc::new();
        crc.update(input);
        out.reserve(GZIP_HEADER.len() + body.len() + 8);
        out.put_slice(&GZIP_HEADER);
        out.put_slice(&body);
        out.put_u32_le(crc.sum());
        out.put_u32_le(crc.amount());
        Ok(())
    })
}

/// One zstd frame of `input`, compressed in one call so that zstd knows the input's size: it
/// sizes its window and tables to the batch (and records the size in the frame header) instead
/// of preparing for an unbounded stream.
fn zstd_compress(input: &[u8], out: &mut BytesMut) -> std::io::Result<()> {
    ZSTD_CCTX.with(|cell| {
        let mut fresh = None;
        let mut cached = cell.try_borrow_mut().ok();
        let compressor = match cached.as_deref_mut() {
            Some(Some(compressor)) => compressor,
            Some(slot @ None) => slot.insert(zstd::bulk::Compressor::new(ZSTD_DEFAULT_LEVEL)?),
            None => fresh.insert(zstd::bulk::Compressor::new(ZSTD_DEFAULT_LEVEL)?),
        };
        let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(input.len()));
        compressor.compress_to_buffer(input, &mut frame)?;
        out.extend_from_slice(&frame);
        Ok(())
    })
}

fn snappy_xerial_compress(input: &[u8], out: &mut BytesMut) -> Result<(), snap::Error> {
    out.put_slice(&XERIAL_MAGIC);
    out.put_i32(1); // version
    out.put_i32(1); // compatible version
    let mut enc = snap::raw::Encoder::new();
    let mut block = vec![0u8; snap::raw::max_compress_len(input.len().min(SNAPPY_XERIAL_BLOCK))];
    for chunk in input.chunks(SNAPPY_XERIAL_BLOCK) {
        let n = enc.compress(chunk, &mut block)?;
        // n <= max_compress_len(32 KiB), far below i32::MAX.
        out.put_i32(n as i32);
        out.put_slice(&block[..n]);
    }
    Ok(())
}

/// Decompresses `input`, refusing to produce more than `limit` bytes.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> RecordsResult<Vec<u8>> {
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(RecordsError::DecompressedTooLarge { limit });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            input.len(),
            limit,
        ),
        Compression::Snappy => {
            if input.starts_with(&XERIAL_MAGIC) {
                snappy_xerial_decompress(input, limit)
            } else {
                snappy_raw_decompress(input, limit, Vec::new())
            }
        }
        Compression::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            input.len(),
            limit,
        ),
        Compression::Zstd => ZSTD_DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            let context = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
            // `with_context` starts a fresh session; the window limit is set for every input.
            let mut dec = zstd::stream::read::Decoder::with_context(input, context);
            let out = dec
                .window_log_max(zstd_window_log_max(limit))
                .map_err(|e| decompress_error(codec, e))
                .and_then(|()| read_bounded(codec, dec, input.len(), limit));
            if slot
                .as_ref()
                .is_some_and(|c| c.sizeof() > ZSTD_DCTX_KEEP_BYTES)
            {
                *slot = None;
            }
            out
        }),
    }
}

/// The largest zstd window a frame may ask for. The decoder allocates the window a frame
/// declares before producing any output, so a 20-byte frame could otherwise cost 128 MiB. A
/// window larger than the output limit is never needed to produce that output; 2^23 (8 MiB)
/// stays allowed so frames from streaming compressors up to level 19, which declare their
/// window without knowing the data's size, still decode under small limits.
fn zstd_window_log_max(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(23, 27)
}

/// Reads `reader` to its end, or fails once it yields more than `limit` bytes.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    input_len: usize,
    limit: usize,
) -> RecordsResult<Vec<u8>> {
    // A modest first guess; the Vec grows as real output arrives, never past limit + 1 bytes
    // of content.
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(limit).min(1 << 20));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| decompress_error(codec, e))?;
    if out.len() > limit {
        return Err(RecordsError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

/// One raw snappy block appended to `out`, refused before allocation if `out` would pass
/// `limit`.
fn snappy_raw_decompress(block: &[u8], limit: usize, mut out: Vec<u8>) -> RecordsResult<Vec<u8>> {
    let codec = Compression::Snappy;
    let declared = snap::raw::decompress_len(block).map_err(|e| decompress_error(codec, e))?;
    let start = out.len();
    let end = start
        .checked_add(declared)
        .filter(|&end| end <= limit)
        .ok_or(RecordsError::DecompressedTooLarge { limit })?;
    out.resize(end, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| decompress_error(codec, e))?;
    out.truncate(start + written);
    Ok(out)
}

fn snappy_xerial_decompress(input: &[u8], limit: usize) -> RecordsResult<Vec<u8>> {
    let codec = Compression::Snappy;
    let truncated = || decompress_error(codec, "truncated xerial snappy stream");
    let mut rest = input.get(XERIAL_HEADER_LEN..).ok_or_else(truncated)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        // snappy-java reads a stream concatenated to another one, header and all.
        if rest.starts_with(&XERIAL_MAGIC) {
            rest = rest.get(XERIAL_HEADER_LEN..).ok_or_else(truncated)?;
            continue;
        }
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| decompress_error(codec, "negative xerial chunk length"))?;
        if len > tail.len() {
            return Err(truncated());
        }
        let (block, tail) = tail.split_at(len);
        out = snappy_raw_decompress(block, limit, out)?;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 7) % 251) as u8 ^ ((i / 300) as u8))
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in Compression::ALL {
            for len in [0usize, 1, 100, 70_000, 200_000] {
                let input = sample(len);
                let mut out = BytesMut::new();
                compress(codec, &input, &mut out).unwrap();
                let back = decompress(codec, &out, len).unwrap();
                assert_eq!(back, input, "{codec:?} {len}");
                if len > 0 {
                    assert_eq!(
                        decompress(codec, &out, len - 1),
                        Err(RecordsError::DecompressedTooLarge { limit: len - 1 }),
                        "{codec:?} {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn gzip_writes_what_flate2s_encoder_writes() {
        for len in [0usize, 1, 100, 70_000, 200_000] {
            let input = sample(len);
            let mut expected = flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_DEFAULT_LEVEL),
            );
            expected.write_all(&input).unwrap();
            let expected = expected.finish().unwrap();
            // Twice: the second call reuses the thread's compressor.
            for _ in 0..2 {
                let mut out = BytesMut::new();
                compress(Compression::Gzip, &input, &mut out).unwrap();
                assert_eq!(&out[..], &expected[..], "{len}");
            }
        }
    }

    #[test]
    fn reused_zstd_contexts_forget_an_interrupted_frame() {
        let input = sample(300_000);
        let mut frame = BytesMut::new();
        compress(Compression::Zstd, &input, &mut frame).unwrap();
        // Stopped at the limit halfway through the frame, then a whole one on the same thread.
        assert!(decompress(Compression::Zstd, &frame, 1000).is_err());
        assert_eq!(
            decompress(Compression::Zstd, &frame, input.len()).unwrap(),
            input
        );
        let mut small = BytesMut::new();
        compress(Compression::Zstd, b"tiny", &mut small).unwrap();
        assert_eq!(decompress(Compression::Zstd, &small, 4).unwrap(), b"tiny");
        // A frame cut short, then garbage, then a whole frame again.
        assert!(decompress(Compression::Zstd, &frame[..frame.len() / 2], input.len()).is_err());
        assert!(decompress(Compression::Zstd, b"\x28\xb5\x2f\xfdgarbage", 100).is_err());
        assert_eq!(decompress(Compression::Zstd, &small, 4).unwrap(), b"tiny");
    }

    #[test]
    fn names_and_ids() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_id(c.id()), Some(c));
            assert_eq!(Compression::from_name(c.name()), Some(c));
        }
        assert_eq!(Compression::from_id(5), None);
        assert_eq!(Compression::from_name("producer"), None);
    }

    #[test]
    fn snappy_writes_the_xerial_header_and_reads_raw_too() {
        let input = sample(100_000);
        let mut out = BytesMut::new();
        compress(Compression::Snappy, &input, &mut out).unwrap();
        assert_eq!(&out[..8], &XERIAL_MAGIC);
        assert_eq!(&out[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // Four chunks of at most 32 KiB each.
        let first = i32::from_be_bytes(out[16..20].try_into().unwrap()) as usize;
        let first_block = &out[20..20 + first];
        assert_eq!(
            snap::raw::decompress_len(first_block).unwrap(),
            SNAPPY_XERIAL_BLOCK
        );

        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, input.len()).unwrap(),
            input
        );
        assert!(decompress(Compression::Snappy, &raw, input.len() - 1).is_err());
    }

    #[test]
    fn xerial_streams_concatenate() {
        let mut both = BytesMut::new();
        compress(Compression::Snappy, b"hello ", &mut both).unwrap();
        compress(Compression::Snappy, b"world", &mut both).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &both, 100).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn zstd_frames_asking_for_a_huge_window_are_refused_under_a_small_limit() {
        let mut frame = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut frame, 3).unwrap();
        enc.window_log(27).unwrap();
        enc.long_distance_matching(true).unwrap();
        enc.write_all(b"tiny").unwrap();
        enc.finish().unwrap();
        assert!(matches!(
            decompress(Compression::Zstd, &frame, 1 << 20),
            Err(RecordsError::Decompression { .. })
        ));
        assert_eq!(
            decompress(Compression::Zstd, &frame, 128 << 20).unwrap(),
            b"tiny"
        );
        assert_eq!(zstd_window_log_max(1), 23);
        assert_eq!(zstd_window_log_max(16 << 20), 24);
        assert_eq!(zstd_window_log_max((16 << 20) + 1), 25);
        assert_eq!(zstd_window_log_max(usize::MAX), 27);
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let junk = [
            0x82u8, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1,
        ];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let err = decompress(codec, &junk, 1000).unwrap_err();
            assert_eq!(
                err.error_code(),
                crate::protocol::error::ErrorCode::CorruptMessage,
                "{codec:?}"
            );
            assert!(decompress(codec, &junk[3..], 1000).is_err(), "{codec:?}");
        }
    }
}
