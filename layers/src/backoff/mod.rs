//! Placeholder: replaced by the backoff module (client-go's `config/retry`).

use std::sync::{Arc, Mutex};

/// The per-request backoff state (placeholder).
#[derive(Debug, Clone, Default)]
pub struct Backoffer {}

/// A handle to a request's [`Backoffer`], shared by its attempts.
#[derive(Debug, Clone, Default)]
pub struct SharedBackoffer {
    inner: Arc<Mutex<Backoffer>>,
}
