//! Replica layer unit tests.
