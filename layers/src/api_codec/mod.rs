//! The `api_codec` layer (work in progress; see doc/architecture.md).
