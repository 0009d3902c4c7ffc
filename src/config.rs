//! Client configuration.
