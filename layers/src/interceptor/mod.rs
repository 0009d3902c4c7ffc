//! The `interceptor` layer (work in progress; see doc/architecture.md).
