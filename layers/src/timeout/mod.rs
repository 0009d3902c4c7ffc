//! The `timeout` layer (work in progress; see doc/architecture.md).
