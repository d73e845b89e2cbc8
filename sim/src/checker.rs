//! Checkers: pure functions from what clients saw (a history) and what the system holds at the
//! end (recovered state) to violations. They know nothing about madsim, nodes or faults, so a
//! broker workload can reuse them per partition.

pub mod admin;
pub mod broker;

/// An append-only sequence: the recovered entries must be exactly `1, 2, ..., n` (in order, no
/// duplicate, no hole), and every acknowledged entry must be among them.
pub fn acked_prefix_survives(
    acked: impl IntoIterator<Item = u64>,
    recovered: &[u64],
) -> Vec<String> {
    let mut violations = Vec::new();
    let mut dense = 0u64;
    for (position, &entry) in recovered.iter().enumerate() {
        let expected = dense + 1;
        if entry != expected {
            violations.push(format!(
                "recovered log holds {entry} at position {position}, expected {expected} \
                 (duplicate, hole or reordering)"
            ));
            break;
        }
        dense = expected;
    }
    let lost: Vec<u64> = acked.into_iter().filter(|&entry| entry > dense).collect();
    if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
        violations.push(format!(
            "{} acknowledged records lost ({first}..={last}); the recovered log ends at {dense}",
            lost.len()
        ));
    }
    violations
}

/// Liveness: once faults stop, the workload must finish.
pub fn finished(done: u64, wanted: u64, what: &str) -> Option<String> {
    (done < wanted)
        .then(|| format!("liveness: only {done} of {wanted} {what} after faults stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dense_log_with_every_ack_passes() {
        assert!(acked_prefix_survives([1, 2, 3], &[1, 2, 3, 4]).is_empty());
        assert!(acked_prefix_survives([], &[]).is_empty());
    }

    #[test]
    fn lost_acks_holes_and_duplicates_are_caught() {
        assert_eq!(acked_prefix_survives([1, 2, 3], &[1, 2]).len(), 1);
        assert_eq!(acked_prefix_survives([1], &[1, 3]).len(), 1);
        assert_eq!(acked_prefix_survives([1, 2], &[1, 1, 2]).len(), 2);
        assert!(finished(3, 4, "records").is_some());
        assert!(finished(4, 4, "records").is_none());
    }
}
