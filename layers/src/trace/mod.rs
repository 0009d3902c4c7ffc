//! The `trace` layer (work in progress; see doc/architecture.md).
