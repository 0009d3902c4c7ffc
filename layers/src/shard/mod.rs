//! The `shard` layer (work in progress; see doc/architecture.md).
