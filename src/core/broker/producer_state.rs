//! Idempotent producer state of one partition: per producer id, its epoch and the last few
//! batches' sequence ranges, so a retried batch is answered with its original offset and a gap in
//! sequences is refused (KIP-98). Saved in a snapshot at each segment roll
//! ([`super::producer_snapshot`]) and rebuilt at start-up from the newest valid snapshot plus the
//! batches after it. A producer idle for `producer.id.expiration.ms` is forgotten; idle is
//! measured from the broker's clock when its last batch was appended (Kafka uses the batch's max
//! timestamp, which a client with a skewed clock sets), so a client clock cannot expire it early.

use crate::protocol::error::ErrorCode;
use std::collections::{BTreeMap, VecDeque};

/// How many recent batches per producer are remembered for duplicate detection; it matches the
/// client's `max.in.flight.requests.per.connection` limit of 5 with idempotence.
pub const BATCHES_REMEMBERED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What is remembered of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`BATCHES_REMEMBERED`].
    pub batches: VecDeque<BatchRange>,
    /// Wall-clock ms the producer was last seen (drives `producer.id.expiration.ms`).
    pub last_timestamp: i64,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Accept,
    /// Already appended: answer with its original base offset, do not append again.
    Duplicate {
        base_offset: i64,
    },
    Reject(ErrorCode),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
}

/// Sequence numbers wrap at i32::MAX back to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn seq_after(seq: i32, delta: i32) -> i32 {
    ((i64::from(seq) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
    /// Checks a batch with producer id `pid` (≥ 0), `epoch`, `first_seq` and `record_count - 1`
    /// = `last_offset_delta`.
    pub fn check(
        &self,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        last_offset_delta: i32,
    ) -> SequenceCheck {
        let last_seq = seq_after(first_seq, last_offset_delta);
        let Some(entry) = self.producers.get(&pid) else {
            // Unknown producer (new, or its state expired): only a fresh sequence may start it.
            return if first_seq == 0 {
                SequenceCheck::Accept
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        };
        if epoch < entry.epoch {
            return SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                SequenceCheck::Accept
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: b.base_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if first_seq != next_seq(last.last_seq) => {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            }
            _ => SequenceCheck::Accept,
        }
    }

    /// Records an appended batch (after `check` accepted it, or while replaying the log), seen at
    /// wall-clock `timestamp`.
    pub fn record(
        &mut self,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        base_offset: i64,
        last_offset: i64,
        timestamp: i64,
    ) {
        let delta = i32::try_from(last_offset.saturating_sub(base_offset)).unwrap_or(i32::MAX);
        let range = BatchRange {
            first_seq,
            last_seq: seq_after(first_seq, delta),
            base_offset,
            last_offset,
        };
        let entry = self.producers.entry(pid).or_insert_with(|| ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: timestamp,
        });
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(range);
    }

    /// Forgets batches at or beyond `offset` (after the log was truncated there).
    pub fn truncate(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// Forgets producers last seen `expiration_ms` or longer before `now_ms`
    /// (`producer.id.expiration.ms`). Returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// Every producer, by id.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> + '_ {
        self.producers.iter().map(|(pid, e)| (*pid, e))
    }

    /// Puts back a producer read from a snapshot.
    pub fn insert_entry(&mut self, pid: i64, entry: ProducerEntry) {
        self.producers.insert(pid, entry);
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_duplicates_and_fencing() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(7, 0, 0, 4), SequenceCheck::Accept);
        s.record(7, 0, 0, 100, 104, 0);
        assert_eq!(s.check(7, 0, 5, 0), SequenceCheck::Accept);
        s.record(7, 0, 5, 105, 105, 0);
        // A retry of the first batch is answered with its original offset.
        assert_eq!(
            s.check(7, 0, 0, 4),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        // A gap is refused.
        assert_eq!(
            s.check(7, 0, 9, 0),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        // An older epoch is fenced; a newer one must start at 0.
        assert_eq!(
            s.check(7, -1, 6, 0),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            s.check(7, 1, 6, 0),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(7, 1, 0, 0), SequenceCheck::Accept);
        // An unknown producer must start at 0.
        assert_eq!(
            s.check(8, 0, 3, 0),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn sequence_wraps_and_truncation_forgets() {
        let mut s = ProducerStates::default();
        s.record(1, 0, i32::MAX - 1, 0, 1, 0);
        assert_eq!(s.check(1, 0, 0, 0), SequenceCheck::Accept);
        s.truncate(0);
        assert!(s.is_empty());
    }

    #[test]
    fn idle_producers_expire() {
        let mut s = ProducerStates::default();
        s.record(1, 0, 0, 0, 0, 1_000);
        s.record(2, 0, 0, 1, 1, 5_000);
        // Seen again later: the newest sighting counts, even if a replayed batch is older.
        s.record(1, 0, 1, 2, 2, 9_000);
        s.record(1, 0, 2, 3, 3, 8_000);
        assert_eq!(s.expire(14_999, 10_000), 0);
        assert_eq!(s.expire(15_000, 10_000), 1);
        assert_eq!(s.entries().map(|(pid, _)| pid).collect::<Vec<_>>(), [1]);
        assert_eq!(s.expire(19_000, 10_000), 1);
        assert!(s.is_empty());
    }
}
