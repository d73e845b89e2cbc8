//! Sparse per-segment indexes, kept in memory and mirrored to `.index` / `.timeindex` files.
//!
//! Offset index entry (8 bytes): offset relative to the segment base (u32) + file position (u32).
//! Time index entry (12 bytes): max timestamp so far (i64) + relative offset (u32).
//! Entries are strictly increasing; a file that breaks that, or points past the segment's end,
//! is damaged and gets rebuilt from the segment itself.

use bytes::{BufMut, Bytes, BytesMut};

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

impl OffsetEntry {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(OFFSET_ENTRY_BYTES);
        b.put_u32(self.relative_offset);
        b.put_u32(self.position);
        b.freeze()
    }
}

impl TimeEntry {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(TIME_ENTRY_BYTES);
        b.put_i64(self.timestamp);
        b.put_u32(self.relative_offset);
        b.freeze()
    }
}

impl SegmentIndex {
    /// Largest entry whose offset is ≤ `relative_offset`: where a scan for that offset starts.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.floor(relative_offset).map_or(0, |e| e.position)
    }

    /// The last entry at or below `relative_offset`: a batch starting at `position` with base
    /// offset `relative_offset` (`None`: start at the segment's first batch).
    pub fn floor(&self, relative_offset: u32) -> Option<&OffsetEntry> {
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        i.checked_sub(1).and_then(|i| self.offsets.get(i))
    }

    /// First entry whose timestamp is ≥ `timestamp`: the relative offset where a search by time starts.
    pub fn lookup_time(&self, timestamp: i64) -> Option<u32> {
        let i = self.times.partition_point(|e| e.timestamp < timestamp);
        self.times.get(i).map(|e| e.relative_offset)
    }

    /// Drops entries at or beyond `relative_offset` / `position` (after a truncation).
    pub fn truncate(&mut self, relative_offset: u32, position: u32) {
        self.offsets
            .retain(|e| e.relative_offset < relative_offset && e.position < position);
        self.times.retain(|e| e.relative_offset < relative_offset);
    }

    /// Parses index files; `None` when either is damaged (not a whole number of entries, not
    /// strictly increasing, or pointing at or past `segment_len`).
    pub fn parse(offset_file: &[u8], time_file: &[u8], segment_len: u64) -> Option<SegmentIndex> {
        if offset_file.len() % OFFSET_ENTRY_BYTES != 0 || time_file.len() % TIME_ENTRY_BYTES != 0 {
            return None;
        }
        let mut index = SegmentIndex::default();
        for chunk in offset_file.chunks_exact(OFFSET_ENTRY_BYTES) {
            let (rel, pos) = chunk.split_at(4);
            let e = OffsetEntry {
                relative_offset: be_u32(rel)?,
                position: be_u32(pos)?,
            };
            let increasing = index
                .offsets
                .last()
                .is_none_or(|l| l.relative_offset < e.relative_offset && l.position < e.position);
            if !increasing || u64::from(e.position) >= segment_len {
                return None;
            }
            index.offsets.push(e);
        }
        for chunk in time_file.chunks_exact(TIME_ENTRY_BYTES) {
            let (ts, rel) = chunk.split_at(8);
            let e = TimeEntry {
                timestamp: i64::from_be_bytes(ts.try_into().ok()?),
                relative_offset: be_u32(rel)?,
            };
            let increasing = index.times.last().is_none_or(|l| {
                l.timestamp < e.timestamp && l.relative_offset <= e.relative_offset
            });
            if !increasing {
                return None;
            }
            index.times.push(e);
        }
        Some(index)
    }
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_floor_entry() {
        let mut idx = SegmentIndex::default();
        for (rel, pos) in [(10, 100), (20, 200), (30, 300)] {
            idx.offsets.push(OffsetEntry {
                relative_offset: rel,
                position: pos,
            });
        }
        assert_eq!(idx.lookup(5), 0);
        assert_eq!(idx.lookup(10), 100);
        assert_eq!(idx.lookup(25), 200);
        assert_eq!(idx.lookup(99), 300);
    }

    #[test]
    fn damaged_files_are_rejected() {
        let a = OffsetEntry {
            relative_offset: 5,
            position: 50,
        }
        .encode();
        let b = OffsetEntry {
            relative_offset: 4,
            position: 60,
        }
        .encode();
        let ok = [
            a.as_ref(),
            OffsetEntry {
                relative_offset: 9,
                position: 90,
            }
            .encode()
            .as_ref(),
        ]
        .concat();
        assert!(SegmentIndex::parse(&ok, &[], 100).is_some());
        assert!(
            SegmentIndex::parse(&ok, &[], 90).is_none(),
            "position past the end"
        );
        assert!(SegmentIndex::parse(&[a.as_ref(), b.as_ref()].concat(), &[], 100).is_none());
        assert!(
            SegmentIndex::parse(&ok[..7], &[], 100).is_none(),
            "torn entry"
        );
    }
}
