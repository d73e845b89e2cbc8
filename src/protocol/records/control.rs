//! Control records: records in a control batch whose key says what they mean. Transaction
//! markers (ABORT, COMMIT) end a producer's transaction in a partition; the other types are
//! KRaft's own (leader change, snapshot header and footer, kraft.version, voters).
//!
//! Key: version i16 (0), type i16. A transaction marker's value: version i16 (0),
//! coordinator epoch i32.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::batch::{TimestampType, NO_SEQUENCE};
use super::builder::BatchBuilder;
use super::compression::Compression;
use super::{RecordsError, RecordsResult};

/// What a control record is. Unknown types are kept: consumers skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    LeaderChange,
    SnapshotHeader,
    SnapshotFooter,
    KRaftVersion,
    KRaftVoters,
    Unknown(i16),
}

impl ControlRecordType {
    pub fn from_i16(v: i16) -> Self {
        match v {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            2 => ControlRecordType::LeaderChange,
            3 => ControlRecordType::SnapshotHeader,
            4 => ControlRecordType::SnapshotFooter,
            5 => ControlRecordType::KRaftVersion,
            6 => ControlRecordType::KRaftVoters,
            other => ControlRecordType::Unknown(other),
        }
    }

    pub fn as_i16(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::LeaderChange => 2,
            ControlRecordType::SnapshotHeader => 3,
            ControlRecordType::SnapshotFooter => 4,
            ControlRecordType::KRaftVersion => 5,
            ControlRecordType::KRaftVoters => 6,
            ControlRecordType::Unknown(v) => v,
        }
    }
}

/// The key of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecordKey {
    pub version: i16,
    pub kind: ControlRecordType,
}

impl ControlRecordKey {
    pub const CURRENT_VERSION: i16 = 0;
    pub const LEN: usize = 4;

    pub fn new(kind: ControlRecordType) -> Self {
        ControlRecordKey {
            version: Self::CURRENT_VERSION,
            kind,
        }
    }

    /// Parses a control record's key. A newer version is read as far as version 0 goes.
    pub fn parse(key: &[u8]) -> RecordsResult<Self> {
        if key.len() < Self::LEN {
            return Err(RecordsError::InvalidRecord(
                "control record key shorter than 4 bytes",
            ));
        }
        let mut b = key;
        let version = b.get_i16();
        if version < 0 {
            return Err(RecordsError::InvalidRecord(
                "negative control record key version",
            ));
        }
        Ok(ControlRecordKey {
            version,
            kind: ControlRecordType::from_i16(b.get_i16()),
        })
    }

    pub fn to_bytes(self) -> Bytes {
        let mut out = BytesMut::with_capacity(Self::LEN);
        out.put_i16(self.version);
        out.put_i16(self.kind.as_i16());
        out.freeze()
    }
}

/// The value of an ABORT or COMMIT control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub coordinator_epoch: i32,
}

impl EndTxnMarker {
    pub const CURRENT_VERSION: i16 = 0;
    pub const LEN: usize = 6;

    pub fn parse(value: &[u8]) -> RecordsResult<Self> {
        if value.len() < Self::LEN {
            return Err(RecordsError::InvalidRecord(
                "transaction marker value shorter than 6 bytes",
            ));
        }
        let mut b = value;
        let version = b.get_i16();
        if version < 0 {
            return Err(RecordsError::InvalidRecord(
                "negative transaction marker version",
            ));
        }
        Ok(EndTxnMarker {
            coordinator_epoch: b.get_i32(),
        })
    }

    pub fn to_bytes(self) -> Bytes {
        let mut out = BytesMut::with_capacity(Self::LEN);
        out.put_i16(Self::CURRENT_VERSION);
        out.put_i32(self.coordinator_epoch);
        out.freeze()
    }
}

/// The control batch that ends a transaction in one partition, as the broker writes it for
/// WriteTxnMarkers: transactional, control, one record whose key is COMMIT or ABORT.
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> RecordsResult<Bytes> {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let mut b = BatchBuilder::new(Compression::None)
        .with_producer(producer_id, producer_epoch, NO_SEQUENCE)
        .with_transactional(true)
        .with_control(true)
        .with_timestamp_type(TimestampType::CreateTime);
    b.push(
        timestamp_ms,
        Some(ControlRecordKey::new(kind).to_bytes()),
        Some(EndTxnMarker { coordinator_epoch }.to_bytes()),
        Vec::new(),
    )?;
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::batch::Batch;

    #[test]
    fn key_and_marker_round_trip() {
        let k = ControlRecordKey::new(ControlRecordType::Commit);
        assert_eq!(&k.to_bytes()[..], &[0, 0, 0, 1]);
        assert_eq!(ControlRecordKey::parse(&k.to_bytes()).unwrap(), k);
        assert_eq!(
            ControlRecordKey::parse(&[0, 0, 0, 9]).unwrap().kind,
            ControlRecordType::Unknown(9)
        );
        assert!(ControlRecordKey::parse(&[0, 0, 0]).is_err());
        assert!(ControlRecordKey::parse(&[0xff, 0xff, 0, 0]).is_err());
        let m = EndTxnMarker {
            coordinator_epoch: 17,
        };
        assert_eq!(EndTxnMarker::parse(&m.to_bytes()).unwrap(), m);
        assert!(EndTxnMarker::parse(&[0, 0, 0]).is_err());
    }

    #[test]
    fn marker_batch_is_a_valid_control_batch() {
        let bytes = end_txn_marker_batch(99, 4, false, 12, 1_000).unwrap();
        let batch = Batch::parse(bytes).unwrap();
        batch.validate().unwrap();
        let h = batch.header();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (99, 4, -1)
        );
        // Clients may not produce control batches.
        assert!(batch.validate_for_produce().is_err());
        let records: Vec<_> = batch
            .records(1 << 20)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 1);
        let key = ControlRecordKey::parse(records[0].key.as_deref().unwrap()).unwrap();
        assert_eq!(key.kind, ControlRecordType::Abort);
        let value = EndTxnMarker::parse(records[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(value.coordinator_epoch, 12);
    }
}
