//! The `retry` layer (work in progress; see doc/architecture.md).
