//! Storage interface (placeholder until the storage module lands).
