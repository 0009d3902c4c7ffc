//! The `replica` layer (work in progress; see doc/architecture.md).
