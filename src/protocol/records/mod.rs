//! Record batches, magic v2: the unit producers send, the log stores and consumers fetch.
//!
//! A `records` field is a run of batches. Each batch is a 61-byte header followed by its records,
//! optionally compressed as one blob. The broker never re-encodes a client's records: it
//! validates the header and CRC ([`Batch::validate_for_produce`]), then assigns offsets by
//! rewriting header fields in place ([`assign_offsets`]). Records are only decoded where the
//! broker must look inside (compacted topics, control records, timestamps), through
//! [`Batch::records`], which decompresses under a hard output limit.
//!
//! - [`batch`]: the header, the batch iterator over a `records` blob, validation, offset assignment
//! - [`record`]: one record inside a batch (varint framing, key, value, headers)
//! - [`compression`]: the five codecs, with bounded decompression
//! - [`control`]: control records (transaction markers and KRaft control types)
//! - [`builder`]: building a batch from records (clients, tests, internal topics)

pub mod batch;
pub mod builder;
pub mod compression;
pub mod control;
mod crc;
pub mod record;

pub use batch::{
    assign_offsets, Batch, BatchAttributes, BatchHeader, OffsetAssignment, RecordBatches,
    TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};
pub use builder::BatchBuilder;
pub use compression::Compression;
pub use control::{ControlRecordKey, ControlRecordType, EndTxnMarker};
pub use record::{Record, RecordHeader};

use crate::protocol::error::ErrorCode;

/// Why a batch or a record was rejected. [`RecordsError::error_code`] gives the Kafka error the
/// broker answers with: corruption (bad CRC, impossible sizes, undecodable compressed data) is
/// `CORRUPT_MESSAGE`; a well-formed batch that breaks the format's rules is `INVALID_RECORD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    #[error("batch truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is out of range")]
    BatchLengthOutOfRange(i64),
    #[error("CRC mismatch: header says {stored:#010x}, batch has {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unsupported magic {0} (only magic 2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    #[error("cannot decompress {codec}: {reason}")]
    Decompression { codec: &'static str, reason: String },
    #[error("decompressed data exceeds the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("cannot compress {codec}: {reason}")]
    Compression { codec: &'static str, reason: String },
    #[error("invalid batch: {0}")]
    InvalidBatch(&'static str),
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
}

impl RecordsError {
    /// The Kafka error code a produce response carries for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            RecordsError::Truncated { .. }
            | RecordsError::BatchLengthOutOfRange(_)
            | RecordsError::CrcMismatch { .. }
            | RecordsError::Decompression { .. }
            | RecordsError::DecompressedTooLarge { .. } => ErrorCode::CorruptMessage,
            RecordsError::UnsupportedMagic(_)
            | RecordsError::UnknownCompression(_)
            | RecordsError::InvalidBatch(_)
            | RecordsError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            RecordsError::Compression { .. } => ErrorCode::UnknownServerError,
        }
    }
}

pub type RecordsResult<T> = Result<T, RecordsError>;

#[cfg(test)]
mod tests;
