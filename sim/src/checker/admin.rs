//! Checkers for the broker workload's admin client: topics it created, grew and deleted while
//! faults ran, judged against the topics the broker shows after its last crash and restart.
//!
//! The admin client is one sequential client, so its acknowledged operations on a topic name are
//! totally ordered. A call without an answer (timeout, lost connection) is *unknown*: it may take
//! effect at any moment until the broker process that may hold it dies, that is until the first
//! kill after the client gave up (the final crash is such a kill). The properties:
//! - an acknowledged create or add-partitions is durable: unless an unknown delete could have come
//!   after it, the topic exists at the end with the created topic id and at least the acknowledged
//!   partition count;
//! - an acknowledged delete is durable: unless an unknown create could have come after it, the
//!   topic does not come back;
//! - a topic id never changes while the topic lives: every Metadata answer seen during the run
//!   agrees with the last acknowledged create when nothing unknown could have intervened;
//! - an `acks=all` record written to a topic incarnation that still exists at the end is at its
//!   offset; a record written to an incarnation that was deleted never shows up in a topic
//!   re-created under the same name;
//! - each final topic partition holds every value once.

use std::collections::{BTreeMap, BTreeSet};

pub type TopicId = [u8; 16];

/// An administrative operation on one topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOp {
    Create { partitions: i32 },
    AddPartitions { count: i32 },
    Delete,
}

/// What came of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// Answered without error; a create names the new topic id.
    Acked { id: Option<TopicId> },
    /// Answered with an error: it did not happen.
    Refused,
    /// No answer; the client gave up at `gave_up_ms`.
    Unknown { gave_up_ms: u64 },
}

/// One call of the admin client, in the order it issued them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCall {
    pub topic: String,
    pub op: AdminOp,
    pub issued_ms: u64,
    pub outcome: AdminOutcome,
}

/// An acknowledged `acks=all` record written to an admin topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub acked_ms: u64,
}

/// A topic as one Metadata answer showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSeen {
    pub topic: String,
    pub at_ms: u64,
    pub id: TopicId,
    pub partitions: i32,
}

/// An admin topic as read at the end: its id, partition count and every record per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalTopic {
    pub id: TopicId,
    pub partitions: i32,
    pub records: BTreeMap<i32, Vec<(i64, String)>>,
}

/// What the admin client saw during the run.
#[derive(Debug, Clone, Default)]
pub struct AdminHistory {
    pub calls: Vec<AdminCall>,
    pub records: Vec<AdminRecord>,
    pub seen: Vec<TopicSeen>,
}

/// What a topic name must look like at some moment, as far as acknowledged calls decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// It exists; with `id` and at least `partitions` when those are known for sure.
    Present {
        id: Option<TopicId>,
        partitions: i32,
    },
    Absent,
    /// Unknown calls leave it open.
    Open,
}

/// When an unknown call stops being able to take effect: the first kill at or after the client
/// gave up on it (`kills_ms` sorted; none means never).
fn settles(gave_up_ms: u64, kills_ms: &[u64]) -> u64 {
    kills_ms
        .iter()
        .copied()
        .find(|&kill| kill >= gave_up_ms)
        .unwrap_or(u64::MAX)
}

/// The expectation for `calls` (one name, in order) at `at_ms`: only calls issued before then
/// count, and an unknown call counts from its issue until it settles.
fn expect_at(calls: &[&AdminCall], at_ms: u64, kills_ms: &[u64]) -> Expect {
    let issued: Vec<&AdminCall> = calls
        .iter()
        .copied()
        .filter(|c| c.issued_ms < at_ms)
        .collect();
    // Could an unknown call of this kind have taken effect after `since`?
    let unknown_after = |since: u64, kind: fn(&AdminOp) -> bool| {
        issued.iter().any(|c| match c.outcome {
            AdminOutcome::Unknown { gave_up_ms } => {
                kind(&c.op) && settles(gave_up_ms, kills_ms) >= since
            }
            _ => false,
        })
    };
    let acked = |c: &&&AdminCall| matches!(c.outcome, AdminOutcome::Acked { .. });
    let Some(last) = issued.iter().rev().find(acked) else {
        return Expect::Open;
    };
    let is_delete = |op: &AdminOp| matches!(op, AdminOp::Delete);
    let is_create = |op: &AdminOp| matches!(op, AdminOp::Create { .. });
    match last.op {
        AdminOp::Delete if unknown_after(last.issued_ms, is_create) => Expect::Open,
        AdminOp::Delete => Expect::Absent,
        _ if unknown_after(last.issued_ms, is_delete) => Expect::Open,
        _ => {
            // Present; its id and size come from the last acknowledged create, if no unknown
            // delete (and re-create) could have slipped in since. After an acknowledged delete,
            // the topic that exists now was made by a create whose answer was lost: its id is
            // unknown.
            let create = issued
                .iter()
                .rev()
                .filter(acked)
                .find(|c| matches!(c.op, AdminOp::Create { .. } | AdminOp::Delete));
            match create {
                Some(create)
                    if matches!(create.op, AdminOp::Create { .. })
                        && !unknown_after(create.issued_ms, is_delete) =>
                {
                    let since: Vec<&&AdminCall> = issued
                        .iter()
                        .filter(|c| c.issued_ms >= create.issued_ms)
                        .filter(acked)
                        .collect();
                    let partitions = since
                        .iter()
                        .map(|c| match c.op {
                            AdminOp::Create { partitions } => partitions,
                            AdminOp::AddPartitions { count } => count,
                            AdminOp::Delete => 0,
                        })
                        .max()
                        .unwrap_or(0);
                    let id = match create.outcome {
                        AdminOutcome::Acked { id } => id,
                        _ => None,
                    };
                    Expect::Present { id, partitions }
                }
                // Re-created by a create whose answer was lost: at least what acknowledged
                // add-partitions since the delete asked for.
                Some(delete) if matches!(delete.op, AdminOp::Delete) => Expect::Present {
                    id: None,
                    partitions: issued
                        .iter()
                        .filter(|c| c.issued_ms >= delete.issued_ms)
                        .filter(acked)
                        .map(|c| match c.op {
                            AdminOp::AddPartitions { count } => count,
                            _ => 0,
                        })
                        .max()
                        .unwrap_or(0),
                },
                _ => Expect::Present {
                    id: None,
                    partitions: 0,
                },
            }
        }
    }
}

/// Runs every admin check; `kills_ms` are the times the broker was killed (including the final
/// crash), `finals` the admin topics that exist at the end.
pub fn check(
    history: &AdminHistory,
    kills_ms: &[u64],
    finals: &BTreeMap<String, FinalTopic>,
) -> Vec<String> {
    let mut kills: Vec<u64> = kills_ms.to_vec();
    kills.sort_unstable();
    let mut by_topic: BTreeMap<&str, Vec<&AdminCall>> = BTreeMap::new();
    for call in &history.calls {
        by_topic.entry(call.topic.as_str()).or_default().push(call);
    }
    let mut violations = Vec::new();
    for (topic, calls) in &by_topic {
        let found = finals.get(*topic);
        match (expect_at(calls, u64::MAX, &kills), found) {
            (Expect::Present { .. }, None) => violations.push(format!(
                "admin: acknowledged topic {topic:?} is gone after the final restart"
            )),
            (Expect::Present { id, partitions }, Some(f)) => {
                if id.is_some_and(|id| id != f.id) {
                    violations.push(format!(
                        "admin: topic {topic:?} changed id: created as {:?}, {:?} at the end",
                        id.map(hex),
                        hex(f.id)
                    ));
                }
                if f.partitions < partitions {
                    violations.push(format!(
                        "admin: topic {topic:?} has {} partitions at the end, {partitions} acknowledged",
                        f.partitions
                    ));
                }
            }
            (Expect::Absent, Some(f)) => violations.push(format!(
                "admin: deleted topic {topic:?} is back after the final restart (id {})",
                hex(f.id)
            )),
            _ => {}
        }
    }
    violations.extend(ids_seen(history, &by_topic, &kills));
    violations.extend(records(history, &by_topic, &kills, finals));
    violations
}

/// Metadata answers seen during the run agree with the acknowledged calls.
fn ids_seen(
    history: &AdminHistory,
    by_topic: &BTreeMap<&str, Vec<&AdminCall>>,
    kills: &[u64],
) -> Vec<String> {
    let mut out = Vec::new();
    for seen in &history.seen {
        let Some(calls) = by_topic.get(seen.topic.as_str()) else {
            continue;
        };
        match expect_at(calls, seen.at_ms, kills) {
            Expect::Present { id: Some(id), .. } if id != seen.id => out.push(format!(
                "admin: at {} ms Metadata showed {:?} with id {}, created as {}",
                seen.at_ms,
                seen.topic,
                hex(seen.id),
                hex(id)
            )),
            Expect::Present { partitions, .. } if seen.partitions < partitions => {
                out.push(format!(
                    "admin: at {} ms Metadata showed {:?} with {} partitions, {partitions} acknowledged",
                    seen.at_ms, seen.topic, seen.partitions
                ))
            }
            Expect::Absent => out.push(format!(
                "admin: at {} ms Metadata showed deleted topic {:?}",
                seen.at_ms, seen.topic
            )),
            _ => {}
        }
        if out.len() >= 5 {
            break;
        }
    }
    out
}

/// Records of live incarnations are kept; records of deleted ones never come back.
fn records(
    history: &AdminHistory,
    by_topic: &BTreeMap<&str, Vec<&AdminCall>>,
    kills: &[u64],
    finals: &BTreeMap<String, FinalTopic>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (topic, f) in finals {
        let mut values = BTreeSet::new();
        for (partition, records) in &f.records {
            for (offset, value) in records {
                if !values.insert(value.as_str()) {
                    out.push(format!(
                        "admin: {value:?} twice in {topic:?} (again at p{partition}@{offset})"
                    ));
                }
            }
        }
    }
    for record in &history.records {
        let Some(calls) = by_topic.get(record.topic.as_str()) else {
            continue;
        };
        // Which incarnation took it, if certain.
        let Expect::Present { id: Some(id), .. } = expect_at(calls, record.acked_ms, kills) else {
            continue;
        };
        let Some(f) = finals.get(&record.topic) else {
            continue;
        };
        let at = f
            .records
            .get(&record.partition)
            .and_then(|r| r.iter().find(|(offset, _)| *offset == record.offset))
            .map(|(_, value)| value.as_str());
        let anywhere = f
            .records
            .values()
            .flatten()
            .any(|(_, value)| value == &record.value);
        if f.id == id && at != Some(record.value.as_str()) {
            out.push(format!(
                "admin: acknowledged record {:?} at {}-{}@{} lost; the final log holds {at:?}",
                record.value, record.topic, record.partition, record.offset
            ));
        } else if f.id != id && anywhere {
            out.push(format!(
                "admin: record {:?} of a deleted incarnation of {:?} shows in the re-created topic",
                record.value, record.topic
            ));
        }
        if out.len() >= 10 {
            break;
        }
    }
    out
}

fn hex(id: TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(topic: &str, op: AdminOp, issued_ms: u64, outcome: AdminOutcome) -> AdminCall {
        AdminCall {
            topic: topic.into(),
            op,
            issued_ms,
            outcome,
        }
    }

    fn acked(id: u8) -> AdminOutcome {
        AdminOutcome::Acked { id: Some([id; 16]) }
    }

    const OK: AdminOutcome = AdminOutcome::Acked { id: None };
    const CREATE: AdminOp = AdminOp::Create { partitions: 2 };

    fn topic(id: u8, partitions: i32) -> FinalTopic {
        FinalTopic {
            id: [id; 16],
            partitions,
            records: BTreeMap::new(),
        }
    }

    fn history(calls: Vec<AdminCall>) -> AdminHistory {
        AdminHistory {
            calls,
            ..Default::default()
        }
    }

    #[test]
    fn acknowledged_changes_must_survive() {
        let h = history(vec![
            call("a", CREATE, 10, acked(1)),
            call("a", AdminOp::AddPartitions { count: 3 }, 20, OK),
            call("b", CREATE, 30, acked(2)),
            call("b", AdminOp::Delete, 40, OK),
        ]);
        let good = BTreeMap::from([("a".to_string(), topic(1, 3))]);
        assert_eq!(check(&h, &[100], &good), Vec::<String>::new());
        let lost = BTreeMap::new();
        assert_eq!(check(&h, &[100], &lost).len(), 1, "a is gone");
        let small = BTreeMap::from([("a".to_string(), topic(1, 2))]);
        assert_eq!(check(&h, &[100], &small).len(), 1, "partitions lost");
        let renamed = BTreeMap::from([("a".to_string(), topic(9, 3))]);
        assert_eq!(check(&h, &[100], &renamed).len(), 1, "id changed");
        let back = BTreeMap::from([
            ("a".to_string(), topic(1, 3)),
            ("b".to_string(), topic(2, 2)),
        ]);
        assert_eq!(check(&h, &[100], &back).len(), 1, "b came back");
    }

    #[test]
    fn unknown_calls_leave_the_outcome_open_until_a_kill() {
        let unknown = AdminOutcome::Unknown { gave_up_ms: 15 };
        // An unknown delete issued before an acked add-partitions may still land after it.
        let h = history(vec![
            call("a", CREATE, 1, acked(1)),
            call("a", AdminOp::Delete, 10, unknown),
            call("a", AdminOp::AddPartitions { count: 3 }, 20, OK),
        ]);
        assert_eq!(check(&h, &[100], &BTreeMap::new()), Vec::<String>::new());
        // ... unless the broker was killed between the give-up and the add.
        assert_eq!(check(&h, &[17, 100], &BTreeMap::new()).len(), 1);
        // An unknown create after an acked delete: the topic may exist.
        let h = history(vec![
            call("a", CREATE, 1, acked(1)),
            call("a", AdminOp::Delete, 10, OK),
            call("a", CREATE, 20, AdminOutcome::Unknown { gave_up_ms: 30 }),
        ]);
        let back = BTreeMap::from([("a".to_string(), topic(4, 2))]);
        assert_eq!(check(&h, &[100], &back), Vec::<String>::new());
        // ... and once an acked add-partitions shows it exists, it has a new id (found by seed
        // 36: the old create's id was expected) and at least the added partitions.
        let h = history(vec![
            call("a", CREATE, 1, acked(1)),
            call("a", AdminOp::Delete, 10, OK),
            call("a", CREATE, 20, AdminOutcome::Unknown { gave_up_ms: 30 }),
            call("a", AdminOp::AddPartitions { count: 3 }, 40, OK),
        ]);
        let grown = BTreeMap::from([("a".to_string(), topic(4, 3))]);
        assert_eq!(check(&h, &[100], &grown), Vec::<String>::new());
        let small = BTreeMap::from([("a".to_string(), topic(4, 2))]);
        assert_eq!(check(&h, &[100], &small).len(), 1, "partitions lost");
        // Refused calls change nothing.
        let h = history(vec![
            call("a", CREATE, 1, acked(1)),
            call("a", AdminOp::Delete, 10, AdminOutcome::Refused),
        ]);
        assert_eq!(check(&h, &[100], &BTreeMap::new()).len(), 1);
    }

    #[test]
    fn records_of_deleted_incarnations_stay_deleted() {
        let mut h = history(vec![
            call("a", CREATE, 1, acked(1)),
            call("a", AdminOp::Delete, 10, OK),
            call("a", CREATE, 20, acked(2)),
        ]);
        let record = |value: &str, offset, acked_ms| AdminRecord {
            topic: "a".into(),
            partition: 0,
            offset,
            value: value.into(),
            acked_ms,
        };
        h.records = vec![record("old", 0, 5), record("new", 0, 25)];
        let mut f = topic(2, 2);
        f.records.insert(0, vec![(0, "new".to_string())]);
        let finals = BTreeMap::from([("a".to_string(), f.clone())]);
        assert_eq!(check(&h, &[100], &finals), Vec::<String>::new());
        f.records.insert(0, vec![(0, "old".to_string())]);
        let finals = BTreeMap::from([("a".to_string(), f)]);
        assert_eq!(check(&h, &[100], &finals).len(), 2, "old back, new lost");
    }

    #[test]
    fn metadata_seen_during_the_run_must_agree() {
        let mut h = history(vec![
            call("a", CREATE, 1, acked(1)),
            call("a", AdminOp::Delete, 50, OK),
        ]);
        let seen = |at_ms, id| TopicSeen {
            topic: "a".into(),
            at_ms,
            id: [id; 16],
            partitions: 2,
        };
        h.seen = vec![seen(10, 1), seen(20, 1)];
        assert_eq!(check(&h, &[100], &BTreeMap::new()), Vec::<String>::new());
        h.seen.push(seen(30, 7));
        h.seen.push(seen(60, 1));
        assert_eq!(check(&h, &[100], &BTreeMap::new()).len(), 2);
    }
}
