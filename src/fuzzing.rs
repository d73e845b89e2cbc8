//! Fuzz targets, kept in the library so they build and run on stable: `fuzz/` (cargo-fuzz,
//! nightly) calls them with libFuzzer's inputs, and `tests/fuzz_corpus.rs` replays the committed
//! corpora through them on every `cargo test`.
//!
//! Every target accepts any byte string. Besides "never panics", each asserts properties that are
//! cheap to check (round trips, limits, idempotence); a failed assertion is a finding, like a
//! panic inside a decoder. Parameters (limits, flags, offsets) are read off the front of the
//! input by [`Params`], so the fuzzer explores them along with the data.

use bytes::{Bytes, BytesMut};

use crate::core::broker::metadata::{decode_batches, MetadataRecord};
use crate::core::broker::producer_snapshot;
use crate::core::broker::producer_state::SequenceCheck;
use crate::core::log::index::{SegmentIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::core::log::recovery::{chained_prefix, scan_segment, sealed_segment, trim_to_offset};
use crate::protocol::frame::{encode_frame, FrameDecoder, FrameError, FRAME_PREFIX_LEN};
use crate::protocol::generated::{ApiKey, RequestBody, ResponseBody};
use crate::protocol::header::{
    decode_request, decode_response, request_header_version, response_header_version,
};
use crate::protocol::message::Message;
use crate::protocol::records::batch::{
    assign_offsets, Batch, BatchAttributes, BatchHeader, OffsetAssignment, RecordBatches,
    BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH,
};
use crate::protocol::records::builder::BatchBuilder;
use crate::protocol::records::compression::{self, Compression};
use crate::protocol::records::control::{ControlRecordKey, ControlRecordType, EndTxnMarker};
use crate::protocol::records::record::Record;
use crate::protocol::records::RecordsError;

mod seeds;
pub use seeds::seeds;

/// A target: any bytes in, a panic if a property fails.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus folders name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("request_frame", request_frame),
    ("response_frame", response_frame),
    ("frame", frame),
    ("record_batch", record_batch),
    ("log_segment", log_segment),
    ("metadata_record", metadata_record),
    ("producer_snapshot", producer_snapshot),
];

/// The target function called `name`, if there is one.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Reads fixed-size parameters off the front of a fuzz input; zeros once it runs out, so any
/// input is a valid one.
#[derive(Debug)]
pub struct Params<'a> {
    data: &'a [u8],
}

impl<'a> Params<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Params { data }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        out[..n].copy_from_slice(head);
        self.data = tail;
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    pub fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }

    /// Everything not taken yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Rewrites the CRC of every whole batch in `blob`, so the fuzzer gets past the checksum to the
/// checks behind it. Stops at the first length that does not fit.
pub fn fix_crcs(blob: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(rest) = blob.get_mut(pos..) {
        let Some(len_field) = rest.get(8..LOG_OVERHEAD) else {
            return;
        };
        let batch_length =
            i32::from_be_bytes([len_field[0], len_field[1], len_field[2], len_field[3]]);
        if batch_length < MIN_BATCH_LENGTH {
            return;
        }
        let size = batch_length as usize + LOG_OVERHEAD;
        let Some(batch) = rest.get_mut(..size) else {
            return;
        };
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        pos += size;
    }
}

// ---------------------------------------------------------------------------------------------
// request_frame, response_frame

/// A request frame (what follows the size prefix), as a client sends it: header and body for any
/// API key and version. A frame that decodes re-encodes, and the re-encoding decodes to an equal
/// header and body and re-encodes to the same bytes.
pub fn request_frame(data: &[u8]) {
    let Ok((header, body)) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    let version = header.request_api_version;
    assert_eq!(body.api_key().as_i16(), header.request_api_key);
    let header_version = request_header_version(header.request_api_key, version);
    let encode = |header: &crate::protocol::generated::RequestHeader, body: &RequestBody| {
        let size = header
            .compute_size(header_version)
            .expect("decoded header sizes")
            + body.compute_size(version).expect("decoded body sizes");
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, header_version)
            .expect("decoded header re-encodes");
        body.encode(&mut buf, version)
            .expect("decoded body re-encodes");
        assert_eq!(buf.len(), size, "compute_size is exact");
        buf.freeze()
    };
    let bytes = encode(&header, &body);
    let (header2, body2) = decode_request(bytes.clone()).expect("re-encoded request decodes");
    assert_eq!(header2, header);
    assert_same(&body2, &body);
    assert_eq!(encode(&header2, &body2), bytes, "encoding is a fixed point");
}

/// A response frame to a request of the API key and version the first two bytes name, as a
/// client (or a broker reading a peer) receives it. Same round-trip properties as
/// [`request_frame`].
pub fn response_frame(data: &[u8]) {
    let mut p = Params::new(data);
    let api_key = ApiKey::ALL[usize::from(p.u8()) % ApiKey::ALL.len()];
    let version = i16::from(p.u8() as i8);
    let frame = Bytes::copy_from_slice(p.rest());
    let Ok((header, body)) = decode_response(api_key, version, frame) else {
        return;
    };
    assert_eq!(body.api_key(), api_key);
    let header_version = response_header_version(api_key.as_i16(), version);
    let encode = |header: &crate::protocol::generated::ResponseHeader, body: &ResponseBody| {
        let size = header
            .compute_size(header_version)
            .expect("decoded header sizes")
            + body.compute_size(version).expect("decoded body sizes");
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, header_version)
            .expect("decoded header re-encodes");
        body.encode(&mut buf, version)
            .expect("decoded body re-encodes");
        assert_eq!(buf.len(), size, "compute_size is exact");
        buf.freeze()
    };
    let bytes = encode(&header, &body);
    let (header2, body2) =
        decode_response(api_key, version, bytes.clone()).expect("re-encoded response decodes");
    assert_eq!(header2, header);
    assert_same(&body2, &body);
    assert_eq!(encode(&header2, &body2), bytes, "encoding is a fixed point");
}

/// Equal values; a float field holding NaN is never equal to itself, so fall back to comparing
/// the debug forms (which print every NaN alike).
fn assert_same<T: PartialEq + std::fmt::Debug>(a: &T, b: &T) {
    if a != b {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// metadata_record

/// A stretch of the metadata log as read back from disk: every record that decodes re-encodes
/// to a record that decodes equal, and replaying them into an image never panics (records that
/// contradict it are refused); a single record value decodes the same way on its own.
pub fn metadata_record(data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let rest = data.get(1..).unwrap_or_default();
    let mut log = rest.to_vec();
    if flags & FLAG_FIX_CRC != 0 {
        fix_crcs(&mut log);
    }
    if let Ok(records) = decode_batches(&Bytes::from(log)) {
        let mut image = crate::core::broker::metadata::MetadataImage::default();
        for r in &records {
            assert_eq!(MetadataRecord::decode(r.encode()).as_ref(), Ok(r));
            let _ = image.apply(r);
        }
    }
    // The same bytes as one record value.
    if let Ok(r) = MetadataRecord::decode(Bytes::copy_from_slice(rest)) {
        assert_eq!(MetadataRecord::decode(r.encode()), Ok(r));
    }
}

// ---------------------------------------------------------------------------------------------
// producer_snapshot

/// A producer state snapshot file as read back from disk, after a flag byte (`FLAG_FIX_CRC`:
/// rewrite the CRC so the fuzzer reaches the checks behind it). A file that decodes re-encodes
/// to exactly its bytes (the format has one encoding per state), and the state it holds answers
/// a retry of every batch it remembers as a duplicate.
pub fn producer_snapshot(data: &[u8]) {
    let flags = data.first().copied().unwrap_or(0);
    let mut file = data.get(1..).unwrap_or_default().to_vec();
    if flags & FLAG_FIX_CRC != 0 && file.len() >= 6 {
        let crc = crc32c::crc32c(&file[6..]);
        file[2..6].copy_from_slice(&crc.to_be_bytes());
    }
    let Ok(snapshot) = producer_snapshot::decode(&file) else {
        return;
    };
    let again = producer_snapshot::encode(snapshot.offset, &snapshot.producers);
    assert_eq!(again.as_ref(), file.as_slice());
    for (pid, entry) in snapshot.producers.entries() {
        for b in &entry.batches {
            let delta = i32::try_from(b.last_offset - b.base_offset).unwrap_or(i32::MAX);
            let verdict = snapshot
                .producers
                .check(pid, entry.epoch, b.first_seq, delta);
            if i64::from(delta) == b.last_offset - b.base_offset
                && (i64::from(b.first_seq) + i64::from(delta)) % (i64::from(i32::MAX) + 1)
                    == i64::from(b.last_seq)
            {
                assert!(
                    matches!(verdict, SequenceCheck::Duplicate { .. }),
                    "{verdict:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// frame

/// Frames from `pieces` fed to `decoder` one after the other: the frames, then either the bytes
/// left waiting for more input or the error that stopped decoding.
fn decode_frames<'a>(
    decoder: FrameDecoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Bytes>, Result<usize, FrameError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    (frames, Ok(buf.len()))
}

/// `FrameDecoder` over a stream fed whole and fed in chunks: the same frames come out either way,
/// none larger than the limit, and they re-frame to exactly the bytes consumed.
pub fn frame(data: &[u8]) {
    let mut p = Params::new(data);
    let max = usize::from(p.u16());
    let chunk = usize::from(p.u8()).max(1);
    let stream = p.rest();
    let decoder = FrameDecoder::new(max);

    let (frames, end) = decode_frames(decoder, [stream]);
    let (split_frames, split_end) = decode_frames(decoder, stream.chunks(chunk));
    assert_eq!(
        frames, split_frames,
        "frames depend on how the input was split"
    );
    assert_eq!(end, split_end, "outcome depends on how the input was split");

    let mut reframed = BytesMut::new();
    for f in &frames {
        assert!(
            f.len() <= max,
            "frame of {} bytes over the limit {max}",
            f.len()
        );
        encode_frame(f, &mut reframed).expect("a decoded frame re-encodes");
    }
    assert_eq!(&reframed[..], &stream[..reframed.len()]);
    let rest = &stream[reframed.len()..];
    match end {
        Ok(left) => {
            assert_eq!(left, rest.len());
            // What is left is an incomplete frame: its prefix, if whole, announces more.
            if let Some(prefix) = rest.get(..FRAME_PREFIX_LEN) {
                let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                let size = usize::try_from(size).expect("a negative size is an error");
                assert!(size <= max && FRAME_PREFIX_LEN + size > rest.len());
            }
        }
        Err(FrameError::NegativeSize(size)) => assert!(size < 0),
        Err(FrameError::TooLarge { size, max: m }) => assert!(m == max && size > max),
    }
}

// ---------------------------------------------------------------------------------------------
// record_batch

/// Flag bits of the first byte of a `record_batch` or `log_segment` input.
pub const FLAG_FIX_CRC: u8 = 0x01;
/// `record_batch`: iterate as fetched data (a partial last batch ends the iteration quietly).
pub const FLAG_PARTIAL_TAIL: u8 = 0x02;
/// `record_batch`: the rest of the input is a batch's records payload; a valid header is built
/// around it (codec, record count and attributes from the parameters).
pub const FLAG_WRAP_PAYLOAD: u8 = 0x04;

/// A run of record batches, as a produce request or the disk carries them: each batch is
/// parsed, validated, its records decoded (decompressed under a limit) and checked against
/// re-encodings; compression limits are probed around the exact output size.
pub fn record_batch(data: &[u8]) {
    let mut p = Params::new(data);
    let flags = p.u8();
    // 16 B .. 1 MiB: small enough to hit the limit, large enough to decode real batches.
    let limit = (usize::from(p.u16()) + 1) * 16;
    let blob = if flags & FLAG_WRAP_PAYLOAD != 0 {
        let attributes = p.u16() as i16;
        let record_count = i32::from(p.u16() as i16);
        wrap_payload(attributes, record_count, p.rest())
    } else {
        let mut blob = p.rest().to_vec();
        if flags & FLAG_FIX_CRC != 0 {
            fix_crcs(&mut blob);
        }
        blob
    };
    let blob = Bytes::from(blob);
    let batches = if flags & FLAG_PARTIAL_TAIL != 0 {
        RecordBatches::allowing_partial_tail(blob.clone())
    } else {
        RecordBatches::new(blob.clone())
    };
    let mut pos = 0usize;
    for batch in batches {
        let Ok(batch) = batch else { break };
        assert_eq!(batch.as_bytes()[..], blob[pos..pos + batch.size()]);
        pos += batch.size();
        check_batch(&batch, limit);
    }
}

/// A batch with `payload` as its records and a correct CRC.
fn wrap_payload(attributes: i16, record_count: i32, payload: &[u8]) -> Vec<u8> {
    let header = BatchHeader {
        base_offset: 0,
        batch_length: (BATCH_HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32,
        partition_leader_epoch: -1,
        magic: MAGIC_V2,
        crc: 0,
        attributes: BatchAttributes(attributes),
        last_offset_delta: record_count.saturating_sub(1),
        base_timestamp: 1_700_000_000_000,
        max_timestamp: 1_700_000_000_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count,
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload);
    fix_crcs(&mut out);
    out
}

fn check_batch(batch: &Batch, limit: usize) {
    let h = *batch.header();
    let bytes = batch.as_bytes();
    assert_eq!(
        h.to_bytes()[..],
        bytes[..BATCH_HEADER_LEN],
        "header re-encodes"
    );
    assert_eq!(h.size_in_bytes(), Some(batch.size()));
    assert_eq!(Batch::parse(bytes.clone()).as_ref(), Ok(batch));

    let valid = batch.validate();
    if valid.is_ok() {
        assert!(h.record_count >= 0);
        assert!(h.compression().is_ok());
        assert_eq!(batch.compute_crc(), h.crc);
    }
    if batch.validate_for_produce().is_ok() {
        assert!(valid.is_ok());
        assert!(
            h.record_count > 0 && i64::from(h.record_count) == i64::from(h.last_offset_delta) + 1
        );
        assert!(!h.is_control());
    }
    check_assign_offsets(batch);

    if let Ok(codec) = h.compression() {
        if codec != Compression::None {
            check_decompress(codec, &batch.records_payload(), limit);
        }
    }

    // Decode every record; each must re-encode to a record that decodes equal.
    let mut records = Vec::new();
    let mut clean = false;
    if let Ok(iter) = batch.records(limit) {
        clean = true;
        for record in iter {
            match record {
                Ok(r) => {
                    check_record_round_trip(&r);
                    records.push(r);
                }
                Err(_) => {
                    clean = false;
                    break;
                }
            }
        }
    }
    assert!(records.len() <= usize::try_from(h.record_count).unwrap_or(0));
    if clean {
        assert_eq!(
            records.len(),
            h.record_count as usize,
            "a clean batch yields its count"
        );
    }
    let consecutive = records
        .iter()
        .enumerate()
        .all(|(i, r)| i64::from(r.offset_delta) == i as i64);
    assert_eq!(
        batch.validate_records(limit).is_ok(),
        clean && consecutive,
        "validate_records agrees with decoding the records"
    );

    if clean && h.is_control() {
        check_control_records(&records);
    }
    if clean {
        check_rebuild(&h, &records);
    }
}

/// Offset assignment rewrites only base offset, epoch (and for LogAppendTime the attributes and
/// max timestamp), never touches the records, and keeps a good CRC good and a bad one bad.
fn check_assign_offsets(batch: &Batch) {
    let before = batch.verify_crc().is_ok();
    for log_append_time in [None, Some(1_800_000_000_000)] {
        let a = OffsetAssignment {
            base_offset: 1_000,
            partition_leader_epoch: 7,
            log_append_time,
        };
        let mut buf = batch.as_bytes().to_vec();
        let h = assign_offsets(&mut buf, &a).expect("a parsed batch takes offsets");
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1_000, 7));
        assert_eq!(
            buf[BATCH_HEADER_LEN..],
            batch.as_bytes()[BATCH_HEADER_LEN..]
        );
        let after = Batch::parse(Bytes::from(buf)).expect("still one batch");
        assert_eq!(after.verify_crc().is_ok(), before, "CRC validity changed");
    }
}

/// Decompression never returns more than the limit, and the limit is exact: the output size
/// passes, one byte less fails with DecompressedTooLarge.
fn check_decompress(codec: Compression, input: &[u8], limit: usize) {
    match compression::decompress(codec, input, limit) {
        Ok(out) => {
            assert!(out.len() <= limit, "{codec:?} returned more than the limit");
            let exact = compression::decompress(codec, input, out.len());
            assert_eq!(exact.as_ref(), Ok(&out), "{codec:?} at the exact size");
            if let Some(less) = out.len().checked_sub(1) {
                assert_eq!(
                    compression::decompress(codec, input, less),
                    Err(RecordsError::DecompressedTooLarge { limit: less }),
                    "{codec:?} one byte under the size"
                );
            }
        }
        Err(RecordsError::DecompressedTooLarge { limit: l }) => assert_eq!(l, limit),
        Err(_) => {}
    }
}

fn check_record_round_trip(r: &Record) {
    let mut out = BytesMut::new();
    r.encode(&mut out).expect("a decoded record re-encodes");
    assert_eq!(Ok(out.len()), r.encoded_len());
    let mut bytes = out.freeze();
    assert_eq!(Record::decode(&mut bytes).as_ref(), Ok(r));
    assert!(bytes.is_empty());
}

fn check_control_records(records: &[Record]) {
    for r in records {
        let Some(Ok(key)) = r.key.as_deref().map(ControlRecordKey::parse) else {
            continue;
        };
        assert_eq!(ControlRecordKey::parse(&key.to_bytes()), Ok(key));
        if matches!(
            key.kind,
            ControlRecordType::Abort | ControlRecordType::Commit
        ) {
            if let Some(Ok(m)) = r.value.as_deref().map(EndTxnMarker::parse) {
                assert_eq!(EndTxnMarker::parse(&m.to_bytes()), Ok(m));
            }
        }
    }
}

/// Records that decoded cleanly, rebuilt into a batch with the same codec and header fields,
/// come back equal.
fn check_rebuild(h: &BatchHeader, records: &[Record]) {
    let Ok(codec) = h.compression() else { return };
    let increasing = records
        .windows(2)
        .all(|w| w[0].offset_delta < w[1].offset_delta);
    if records.is_empty() || records[0].offset_delta < 0 || !increasing {
        return; // the builder only writes increasing deltas from 0 up
    }
    let mut b = BatchBuilder::new(codec)
        .with_base_offset(h.base_offset)
        .with_partition_leader_epoch(h.partition_leader_epoch)
        .with_producer(h.producer_id, h.producer_epoch, h.base_sequence)
        .with_transactional(h.is_transactional())
        .with_control(h.is_control())
        .with_timestamp_type(h.timestamp_type())
        .with_base_timestamp(h.base_timestamp);
    for r in records {
        b.push_record(r).expect("a decoded record can be pushed");
    }
    let rebuilt = Batch::parse(b.build().expect("the batch builds")).expect("a built batch parses");
    rebuilt.validate().expect("a built batch validates");
    let rh = rebuilt.header();
    assert_eq!(rh.record_count, h.record_count);
    assert_eq!(
        rh.last_offset_delta,
        records[records.len() - 1].offset_delta
    );
    assert_eq!(rh.attributes.0, h.attributes.0 & 0x3f);
    let back: Vec<Record> = rebuilt
        .records(usize::MAX)
        .expect("a built batch decodes")
        .collect::<Result<_, _>>()
        .expect("built records decode");
    assert_eq!(back, records);
}

// ---------------------------------------------------------------------------------------------
// log_segment

/// Bytes read back from a segment file (and its index files): recovery's scan keeps a valid
/// prefix and is idempotent on it, the indexes it rebuilds survive their own file format, a
/// fetch trim returns whole batches at the requested offsets, and index files parse only when
/// they re-encode to themselves.
pub fn log_segment(data: &[u8]) {
    let mut p = Params::new(data);
    let flags = p.u8();
    // Segment base offsets come from 20-digit file names: any non-negative i64.
    let base_offset = match p.u8() % 4 {
        0 => 0,
        1 => i64::from(p.u32()),
        2 => i64::MAX - i64::from(p.u16()),
        _ => p.i64() & i64::MAX,
    };
    let index_interval = u32::from(p.u16());
    let fetch_offset = p.i64();
    let max_bytes = usize::from(p.u16());
    let high_watermark = p.i64();
    let index_split = usize::from(p.u16());
    let mut file = p.rest().to_vec();
    if flags & FLAG_FIX_CRC != 0 {
        fix_crcs(&mut file);
    }
    let file = Bytes::from(file);

    check_scan(base_offset, &file, index_interval);
    check_trim(&file, fetch_offset, max_bytes, high_watermark);

    // The same bytes as index files.
    let split = index_split.min(file.len());
    let (offset_file, time_file) = file.split_at(split);
    check_index_parse(offset_file, time_file, file.len() as u64);
}

fn check_scan(base_offset: i64, file: &Bytes, index_interval: u32) {
    let scanned = scan_segment(base_offset, file, index_interval, 0);
    let valid_len = usize::try_from(scanned.valid_len).expect("fits");
    assert!(valid_len <= file.len());
    assert_eq!(
        scanned.valid_len + scanned.truncated_bytes,
        file.len() as u64
    );
    assert_eq!(scanned.segment.size, scanned.valid_len);
    let seg = &scanned.segment;
    assert!(seg.next_offset >= base_offset);

    // Idempotent: the valid prefix scans to the same segment with nothing cut.
    let again = scan_segment(base_offset, &file.slice(..valid_len), index_interval, 0);
    assert_eq!(again.segment, scanned.segment);
    assert_eq!(
        (again.valid_len, again.truncated_bytes),
        (scanned.valid_len, 0)
    );

    // Every batch of the valid prefix is whole and CRC-clean.
    for batch in RecordBatches::new(file.slice(..valid_len)) {
        let batch = batch.expect("the valid prefix holds whole batches");
        batch
            .verify_crc()
            .expect("the valid prefix passes its CRCs");
    }

    // The rebuilt indexes written to their files parse back to themselves.
    let offset_file: Vec<u8> = seg.index.offsets.iter().flat_map(|e| e.encode()).collect();
    let time_file: Vec<u8> = seg.index.times.iter().flat_map(|e| e.encode()).collect();
    let parsed = SegmentIndex::parse(&offset_file, &time_file, scanned.valid_len);
    assert_eq!(
        parsed.as_ref(),
        Some(&seg.index),
        "rebuilt index round trip"
    );
    let sealed = sealed_segment(
        base_offset,
        seg.next_offset,
        seg.size,
        &offset_file,
        &time_file,
        0,
    )
    .expect("a scanned segment reopens sealed");
    assert_eq!(sealed.index, seg.index);
    assert_eq!(sealed.next_offset, seg.next_offset);
    assert_eq!(sealed.max_timestamp, seg.max_timestamp);
}

fn check_trim(file: &Bytes, offset: i64, max_bytes: usize, high_watermark: i64) {
    // The read starts at its first batch, as a read planned from the index does.
    let first_base = |data: &Bytes| BatchHeader::parse(data).map_or(offset, |h| h.base_offset);
    // Cutting at a break in the base offsets keeps a prefix.
    let chained = chained_prefix(file.clone(), first_base(file));
    assert!(file.starts_with(&chained));
    let out = trim_to_offset(
        file.clone(),
        first_base(file),
        offset,
        max_bytes,
        high_watermark,
    );
    if out.is_empty() {
        return;
    }
    // A slice of the input.
    let start = out.as_ptr() as usize - file.as_ptr() as usize;
    assert!(start + out.len() <= file.len());
    let whole: Result<Vec<Batch>, _> = RecordBatches::new(out.clone()).collect();
    match whole {
        Ok(batches) => {
            assert!(!batches.is_empty());
            for b in &batches {
                assert!(
                    b.header().last_offset() >= offset,
                    "batch below the fetch offset"
                );
                assert!(
                    b.header().base_offset < high_watermark,
                    "batch at or past the HW"
                );
            }
            assert!(
                out.len() <= max_bytes || batches.len() == 1,
                "{} bytes in {} batches over max_bytes {max_bytes}",
                out.len(),
                batches.len()
            );
            // Trimming what was sent again keeps it all.
            assert_eq!(
                trim_to_offset(
                    out.clone(),
                    first_base(&out),
                    offset,
                    max_bytes,
                    high_watermark
                ),
                out
            );
        }
        Err(_) => {
            // Only a lone partial batch may be sent, cut to max_bytes.
            assert!(out.len() <= max_bytes);
            if let Ok(h) = BatchHeader::parse(&out) {
                assert!(h.size_in_bytes().is_some_and(|s| s > out.len()));
            }
        }
    }
}

fn check_index_parse(offset_file: &[u8], time_file: &[u8], segment_len: u64) {
    let Some(index) = SegmentIndex::parse(offset_file, time_file, segment_len) else {
        return;
    };
    assert_eq!(index.offsets.len() * OFFSET_ENTRY_BYTES, offset_file.len());
    assert_eq!(index.times.len() * TIME_ENTRY_BYTES, time_file.len());
    let offsets: Vec<u8> = index.offsets.iter().flat_map(|e| e.encode()).collect();
    let times: Vec<u8> = index.times.iter().flat_map(|e| e.encode()).collect();
    assert_eq!(offsets, offset_file);
    assert_eq!(times, time_file);
    for e in &index.offsets {
        assert!(u64::from(e.position) < segment_len);
        assert_eq!(index.lookup(e.relative_offset), e.position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach past the checks they are meant to get past: batches validate and decode,
    /// segments scan to whole batches.
    #[test]
    fn seeds_are_valid_inputs() {
        for s in seeds() {
            match s.target {
                "record_batch" => {
                    let mut p = Params::new(&s.data);
                    let flags = p.u8();
                    p.u16();
                    let blob = if flags & FLAG_WRAP_PAYLOAD != 0 {
                        let attributes = p.u16() as i16;
                        let count = i32::from(p.u16() as i16);
                        wrap_payload(attributes, count, p.rest())
                    } else {
                        p.rest().to_vec()
                    };
                    let mut n = 0;
                    for batch in RecordBatches::allowing_partial_tail(Bytes::from(blob)) {
                        let batch = batch.unwrap();
                        batch.validate().unwrap();
                        assert_eq!(
                            batch.records(1 << 20).unwrap().count(),
                            batch.header().record_count as usize
                        );
                        n += 1;
                    }
                    assert!(n > 0, "{}", s.name);
                }
                "log_segment" if s.name != "index_files" => {
                    let file = Bytes::copy_from_slice(&s.data[24..]);
                    let scanned = scan_segment(0, &file, 128, 0);
                    assert!(scanned.segment.next_offset >= 6, "{}", s.name);
                }
                _ => {}
            }
        }
    }

    /// Writes request and response frames holding arbitrary (non-default) message values into
    /// the corpora, from the property tests' value generator, which only the crate's tests see.
    /// Run by hand: `cargo test -p gregor --lib fuzzing::tests::write_codec_seeds -- --ignored`.
    #[test]
    #[ignore]
    #[allow(clippy::disallowed_methods)] // writes the seed corpus to the real disk
    fn write_codec_seeds() {
        use crate::protocol::arbitrary::{Arbitrary, Entropy, MessageVisitor};
        use crate::protocol::generated::{visit_all_messages, RequestHeader, ResponseHeader};

        struct Writer {
            dir: std::path::PathBuf,
            written: usize,
        }
        impl MessageVisitor for Writer {
            fn visit<M: Message + Arbitrary + PartialEq + std::fmt::Debug>(&mut self) {
                let Some((key, request)) = ApiKey::ALL.iter().find_map(|k| {
                    if M::NAME == format!("{}Request", k.name()) {
                        Some((*k, true))
                    } else if M::NAME == format!("{}Response", k.name()) {
                        Some((*k, false))
                    } else {
                        None
                    }
                }) else {
                    return;
                };
                // A fixed pseudo-random byte string per message: the seeds are reproducible.
                let mut x = M::NAME.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let entropy: Vec<u8> = (0..384)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                for version in [M::VERSIONS.0, M::VERSIONS.1] {
                    let value = M::arbitrary(&mut Entropy::new(&entropy), version);
                    let mut buf = BytesMut::new();
                    let target = if request {
                        let header = RequestHeader {
                            request_api_key: key.as_i16(),
                            request_api_version: version,
                            correlation_id: 11,
                            client_id: Some("seed".into()),
                            unknown_tagged_fields: Vec::new(),
                        };
                        let hv = request_header_version(key.as_i16(), version);
                        header.encode(&mut buf, hv).unwrap();
                        "request_frame"
                    } else {
                        let index = ApiKey::ALL.iter().position(|k| *k == key).unwrap();
                        buf.extend_from_slice(&[index as u8, version as u8]);
                        let header = ResponseHeader {
                            correlation_id: 11,
                            unknown_tagged_fields: Vec::new(),
                        };
                        let hv = response_header_version(key.as_i16(), version);
                        header.encode(&mut buf, hv).unwrap();
                        "response_frame"
                    };
                    value.encode(&mut buf, version).unwrap();
                    let dir = self.dir.join(target);
                    std::fs::create_dir_all(&dir).unwrap();
                    let name = format!("arbitrary_{}_v{version}", M::NAME);
                    std::fs::write(dir.join(name), &buf).unwrap();
                    self.written += 1;
                }
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut w = Writer { dir, written: 0 };
        visit_all_messages(&mut w);
        assert!(w.written > 100);
    }

    #[test]
    fn params_pad_with_zeros() {
        let mut p = Params::new(&[1, 2, 3]);
        assert_eq!(p.u16(), 0x0102);
        assert_eq!(p.u32(), 0x0300_0000);
        assert_eq!(p.i64(), 0);
        assert!(p.rest().is_empty());
    }

    #[test]
    fn fixed_crcs_validate() {
        let mut b = BatchBuilder::new(Compression::None);
        b.push(1, None, Some(Bytes::from_static(b"v")), vec![])
            .unwrap();
        let mut raw = b.build().unwrap().to_vec();
        raw[17] ^= 0xff;
        fix_crcs(&mut raw);
        Batch::parse(Bytes::from(raw)).unwrap().validate().unwrap();
    }
}
