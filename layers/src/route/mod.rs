//! The `route` layer (work in progress; see doc/architecture.md).
