//! [`ResolveLockLayer`]: lock resolution for transactional reads as a tower layer.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::policy::LockResolver;
use super::service::ResolveLock;

/// Resolves the locks transactional reads meet and resends them; see the
/// [module docs](super).
#[derive(Clone)]
pub struct ResolveLockLayer {
    resolver: Arc<dyn LockResolver>,
}

impl ResolveLockLayer {
    /// A layer resolving locks with `resolver`.
    pub fn new(resolver: Arc<dyn LockResolver>) -> ResolveLockLayer {
        ResolveLockLayer { resolver }
    }

    /// The resolver.
    pub fn resolver(&self) -> &Arc<dyn LockResolver> {
        &self.resolver
    }
}

impl<S> Layer<S> for ResolveLockLayer {
    type Service = ResolveLock<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveLock::new(inner, Arc::clone(&self.resolver))
    }
}

impl fmt::Debug for ResolveLockLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolveLockLayer").finish_non_exhaustive()
    }
}
