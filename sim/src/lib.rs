//! Deterministic simulation of gregor clusters (placeholder).
