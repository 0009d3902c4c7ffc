//! The `resolve_lock` layer (work in progress; see doc/architecture.md).
