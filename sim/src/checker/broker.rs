//! Checkers for the `broker` workload: what producers and the consumer saw during the run,
//! judged against the log every partition holds at the end (read after a last crash and
//! restart, with faults off).
//!
//! Every record value is unique in the run (`client:counter`), so a value names one record.
//! The properties:
//! - every `acks=-1` record is in the final log at exactly the offset the broker returned;
//! - an `acks=1` record is at its acknowledged offset or absent (it may be lost in a crash, but
//!   never moves);
//! - each partition's final log holds offsets `0..high watermark`, each exactly once;
//! - no value appears twice (the idempotent producer's retries are deduplicated; nobody else
//!   resends);
//! - every value in the final log was sent by a producer;
//! - whatever the consumer read at an offset is what the final log holds there (the consumer
//!   reads only below the high watermark, which must be durable, so offsets are never reused);
//! - the high watermark a client saw never goes back.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// What a client observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A producer sent these values to `partition` (whatever happens to them).
    Sent {
        client: String,
        partition: i32,
        /// Shared with the `Acked` event of the same batch.
        values: Arc<[String]>,
    },
    /// The broker acknowledged a produce: `values[i]` got offset `base_offset + i`.
    Acked {
        client: String,
        acks: i16,
        partition: i32,
        base_offset: i64,
        values: Arc<[String]>,
    },
    /// The consumer read `value` at `offset`.
    Consumed {
        partition: i32,
        offset: i64,
        value: String,
    },
    /// A fetch response reported this high watermark.
    HighWatermark { partition: i32, hw: i64 },
}

/// One partition as read at the end: every record from offset 0 up to the high watermark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalPartition {
    pub high_watermark: i64,
    /// `(offset, value)` in log order.
    pub records: Vec<(i64, String)>,
}

/// Every partition of the topic as read at the end.
pub type FinalLog = BTreeMap<i32, FinalPartition>;

/// At most this many violations of one kind are listed; the rest are counted.
const LIST_AT_MOST: usize = 5;

/// Collects violations of one property, listing the first few and counting the rest.
struct Findings {
    what: &'static str,
    listed: Vec<String>,
    count: usize,
}

impl Findings {
    fn new(what: &'static str) -> Findings {
        Findings {
            what,
            listed: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, detail: String) {
        self.count += 1;
        if self.listed.len() < LIST_AT_MOST {
            self.listed.push(detail);
        }
    }

    fn into_violations(self) -> Vec<String> {
        let mut out: Vec<String> = self
            .listed
            .into_iter()
            .map(|detail| format!("{}: {detail}", self.what))
            .collect();
        if self.count > LIST_AT_MOST {
            out.push(format!("{}: {} more", self.what, self.count - LIST_AT_MOST));
        }
        out
    }
}

/// The final log indexed by partition and offset, and by value. Hash maps are only looked up,
/// never iterated, so their order cannot reach a report.
struct Index<'a> {
    log: &'a FinalLog,
    /// Partitions whose offsets do not strictly increase (a dense-offsets violation): looked up
    /// through a map instead of a binary search.
    unordered: BTreeMap<(i32, i64), &'a str>,
    /// Each value's first place.
    first: HashMap<&'a str, (i32, i64)>,
    /// Every place of the values found more than once.
    repeated: BTreeMap<&'a str, Vec<(i32, i64)>>,
}

impl<'a> Index<'a> {
    fn new(log: &'a FinalLog) -> Index<'a> {
        let records = log.values().map(|p| p.records.len()).sum();
        let mut first: HashMap<&str, (i32, i64)> = HashMap::with_capacity(records);
        let mut repeated: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        let mut unordered = BTreeMap::new();
        for (&partition, p) in log {
            let ordered = p.records.windows(2).all(|w| w[0].0 < w[1].0);
            for (offset, value) in &p.records {
                if !ordered {
                    unordered.insert((partition, *offset), value.as_str());
                }
                let place = (partition, *offset);
                match first.entry(value.as_str()) {
                    Entry::Vacant(entry) => {
                        entry.insert(place);
                    }
                    Entry::Occupied(entry) => repeated
                        .entry(value.as_str())
                        .or_insert_with(|| vec![*entry.get()])
                        .push(place),
                }
            }
        }
        Index {
            log,
            unordered,
            first,
            repeated,
        }
    }

    /// The value the final log holds at `offset` of `partition`.
    fn at(&self, partition: i32, offset: i64) -> Option<&'a str> {
        if let Some(value) = self.unordered.get(&(partition, offset)) {
            return Some(value);
        }
        let records = &self.log.get(&partition)?.records;
        let i = records.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
        records.get(i).map(|(_, value)| value.as_str())
    }

    /// Every place of `value` in the final log (`None`: nowhere).
    fn places(&self, value: &str) -> Option<Vec<(i32, i64)>> {
        match self.repeated.get(value) {
            Some(places) => Some(places.clone()),
            None => self.first.get(value).map(|place| vec![*place]),
        }
    }
}

/// Runs every check; returns one line per violation.
pub fn check(events: &[BrokerEvent], log: &FinalLog) -> Vec<String> {
    let index = Index::new(log);
    let mut violations = Vec::new();
    violations.extend(dense_offsets(log));
    violations.extend(acknowledged_records(events, &index));
    violations.extend(unique_and_known_values(events, &index));
    violations.extend(consumed_records(events, &index));
    violations.extend(high_watermarks(events, log));
    violations
}

/// Each partition holds offsets `0..high_watermark`, in order, each once.
fn dense_offsets(log: &FinalLog) -> Vec<String> {
    let mut found = Findings::new("offsets not dense");
    for (partition, p) in log {
        let mut expected = 0i64;
        for (offset, value) in &p.records {
            if *offset != expected {
                found.push(format!(
                    "partition {partition} holds {value:?} at offset {offset}, expected offset {expected}"
                ));
                expected = *offset;
            }
            expected += 1;
        }
        if expected != p.high_watermark {
            found.push(format!(
                "partition {partition} records end at {expected} but its high watermark is {}",
                p.high_watermark
            ));
        }
    }
    found.into_violations()
}

/// acks=-1 records sit at their acknowledged offsets; acks=1 records there or nowhere.
fn acknowledged_records(events: &[BrokerEvent], index: &Index<'_>) -> Vec<String> {
    let mut lost = Findings::new("acknowledged record lost or changed");
    let mut moved = Findings::new("acks=1 record moved");
    for event in events {
        let BrokerEvent::Acked {
            client,
            acks,
            partition,
            base_offset,
            values,
        } = event
        else {
            continue;
        };
        for (offset, value) in (*base_offset..).zip(values.iter()) {
            let found = index.at(*partition, offset);
            if found == Some(value.as_str()) {
                continue;
            }
            let now_at = index.places(value);
            let detail = format!(
                "{client} (acks={acks}) got offset {offset} of partition {partition} for {value:?}; \
                 the final log holds {found:?} there and the value at {now_at:?}"
            );
            match acks {
                -1 => lost.push(detail),
                _ if now_at.is_some() => moved.push(detail),
                _ => {}
            }
        }
    }
    let mut out = lost.into_violations();
    out.extend(moved.into_violations());
    out
}

/// No value twice; no value nobody sent.
fn unique_and_known_values(events: &[BrokerEvent], index: &Index<'_>) -> Vec<String> {
    let sent: HashSet<&str> = events
        .iter()
        .filter_map(|event| match event {
            BrokerEvent::Sent { values, .. } => Some(values.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    let mut duplicates = Findings::new("duplicate record");
    for (value, places) in &index.repeated {
        duplicates.push(format!("{value:?} at (partition, offset) {places:?}"));
    }
    let mut unknown: Vec<&str> = index
        .first
        .keys()
        .filter(|value| !sent.contains(*value))
        .copied()
        .collect();
    unknown.sort_unstable();
    let mut nobody = Findings::new("record nobody sent");
    for value in unknown {
        let places = index.places(value).unwrap_or_default();
        nobody.push(format!("{value:?} at (partition, offset) {places:?}"));
    }
    let mut out = duplicates.into_violations();
    out.extend(nobody.into_violations());
    out
}

/// What the consumer read is what the final log holds at that offset.
fn consumed_records(events: &[BrokerEvent], index: &Index<'_>) -> Vec<String> {
    let mut found = Findings::new("consumer read data the final log does not hold");
    for event in events {
        if let BrokerEvent::Consumed {
            partition,
            offset,
            value,
        } = event
        {
            let now = index.at(*partition, *offset);
            if now != Some(value.as_str()) {
                found.push(format!(
                    "partition {partition} offset {offset}: read {value:?}, final log holds {now:?}"
                ));
            }
        }
    }
    found.into_violations()
}

/// High watermarks seen by clients never go back, and the final one is at least as high.
fn high_watermarks(events: &[BrokerEvent], log: &FinalLog) -> Vec<String> {
    let mut found = Findings::new("high watermark went back");
    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    for event in events {
        if let BrokerEvent::HighWatermark { partition, hw } = event {
            let seen = highest.entry(*partition).or_insert(*hw);
            if *hw < *seen {
                found.push(format!("partition {partition}: {seen} then {hw}"));
            }
            *seen = (*seen).max(*hw);
        }
    }
    for (partition, seen) in highest {
        let last = log.get(&partition).map_or(0, |p| p.high_watermark);
        if last < seen {
            found.push(format!(
                "partition {partition}: {seen} seen during the run, {last} at the end"
            ));
        }
    }
    found.into_violations()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(values: &[&str]) -> BrokerEvent {
        BrokerEvent::Sent {
            client: "p".into(),
            partition: 0,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn acked(acks: i16, base_offset: i64, values: &[&str]) -> BrokerEvent {
        BrokerEvent::Acked {
            client: "p".into(),
            acks,
            partition: 0,
            base_offset,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn log(values: &[&str]) -> FinalLog {
        let records: Vec<(i64, String)> = (0..)
            .zip(values)
            .map(|(offset, value)| (offset, value.to_string()))
            .collect();
        let high_watermark = records.len() as i64;
        FinalLog::from([(
            0,
            FinalPartition {
                high_watermark,
                records,
            },
        )])
    }

    #[test]
    fn a_consistent_history_passes() {
        let events = vec![
            sent(&["a", "b", "c"]),
            acked(-1, 0, &["a", "b"]),
            acked(1, 2, &["c"]),
            BrokerEvent::HighWatermark {
                partition: 0,
                hw: 2,
            },
            BrokerEvent::Consumed {
                partition: 0,
                offset: 1,
                value: "b".into(),
            },
        ];
        assert_eq!(check(&events, &log(&["a", "b", "c"])), Vec::<String>::new());
        // An acks=1 record may be lost.
        assert_eq!(check(&events, &log(&["a", "b"])), Vec::<String>::new());
    }

    #[test]
    fn lost_moved_duplicated_and_reused_records_are_caught() {
        let events = vec![sent(&["a", "b", "c"]), acked(-1, 0, &["a", "b"])];
        assert_eq!(check(&events, &log(&["a"])).len(), 1, "lost");
        assert_eq!(check(&events, &log(&["b", "a"])).len(), 2, "reordered");
        let v = check(&events, &log(&["a", "b", "a"]));
        assert!(v.iter().any(|v| v.starts_with("duplicate")), "{v:?}");
        let v = check(&events, &log(&["a", "b", "x"]));
        assert!(
            v.iter().any(|v| v.starts_with("record nobody sent")),
            "{v:?}"
        );
        let moved = vec![sent(&["a", "c"]), acked(1, 1, &["c"])];
        assert_eq!(check(&moved, &log(&["c", "a"])).len(), 1, "acks=1 moved");
        let consumed = vec![
            sent(&["a", "b", "c"]),
            BrokerEvent::Consumed {
                partition: 0,
                offset: 1,
                value: "c".into(),
            },
        ];
        assert_eq!(
            check(&consumed, &log(&["a", "b"])).len(),
            1,
            "offset reused"
        );
    }

    #[test]
    fn holes_and_watermarks_going_back_are_caught() {
        let mut holey = log(&["a", "b"]);
        if let Some(p) = holey.get_mut(&0) {
            p.records[1].0 = 2;
            p.high_watermark = 3;
        }
        assert_eq!(check(&[sent(&["a", "b"])], &holey).len(), 1);
        let hw = |hw| BrokerEvent::HighWatermark { partition: 0, hw };
        let events = vec![sent(&["a"]), hw(1), hw(3), hw(2)];
        assert_eq!(check(&events, &log(&["a"])).len(), 2);
    }

    #[test]
    fn long_lists_are_capped() {
        let values: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let events = vec![sent(&refs), acked(-1, 0, &refs)];
        let v = check(&events, &log(&[]));
        assert_eq!(v.len(), LIST_AT_MOST + 1, "{v:?}");
    }
}
