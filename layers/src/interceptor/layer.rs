//! [`InterceptorLayer`]: the client-level interceptor chain as a tower layer.

use tower_layer::Layer;

use super::chain::{Interceptor, InterceptorChain};
use super::service::Intercept;

/// Runs the client-level [`InterceptorChain`], then each request's own chain, around every
/// attempt; see the [module docs](super).
#[derive(Debug, Clone, Default)]
pub struct InterceptorLayer {
    chain: InterceptorChain,
}

impl InterceptorLayer {
    /// A layer running `chain` on every attempt (an empty chain only runs the per-request
    /// chains).
    pub fn new(chain: InterceptorChain) -> InterceptorLayer {
        InterceptorLayer { chain }
    }

    /// Links one more client-level interceptor (same rules as [`InterceptorChain::link`]).
    #[must_use]
    pub fn link(mut self, interceptor: impl Interceptor) -> Self {
        self.chain.push(interceptor);
        self
    }

    /// The client-level chain.
    pub fn chain(&self) -> &InterceptorChain {
        &self.chain
    }
}

impl<S> Layer<S> for InterceptorLayer {
    type Service = Intercept<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Intercept::new(inner, self.chain.clone())
    }
}
