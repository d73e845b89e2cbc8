//! What clients observed, in order, with simulated timestamps. Workloads record into a
//! [`History`]; checkers judge it against the state recovered at the end.

use crate::trace::sim_now;
use std::time::Duration;

/// One observed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<E> {
    pub at: Duration,
    pub event: E,
}

/// The events a workload's clients observed, in the order they observed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History<E> {
    entries: Vec<Entry<E>>,
}

impl<E> Default for History<E> {
    fn default() -> Self {
        History {
            entries: Vec::new(),
        }
    }
}

impl<E> History<E> {
    /// Records `event` at the current simulated time.
    pub fn record(&mut self, event: E) {
        self.entries.push(Entry {
            at: sim_now(),
            event,
        });
    }

    pub fn entries(&self) -> &[Entry<E>] {
        &self.entries
    }

    pub fn events(&self) -> impl Iterator<Item = &E> {
        self.entries.iter().map(|entry| &entry.event)
    }

    /// Takes every event out, in order, leaving the history empty (checkers take the history
    /// once the run is over, rather than copying it).
    pub fn take_events(&mut self) -> Vec<E> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|entry| entry.event)
            .collect()
    }
}
