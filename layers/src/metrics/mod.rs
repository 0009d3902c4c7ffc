//! The `metrics` layer (work in progress; see doc/architecture.md).
