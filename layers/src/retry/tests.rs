//! Retry layer unit tests.
