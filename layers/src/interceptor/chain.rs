//! The [`Interceptor`] hook, named interceptors and the [`InterceptorChain`] (client-go's
//! `tikvrpc/interceptor/interceptor.go`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::request::{CmdType, EndpointType, RpcRequest, RpcResponse};

/// A per-attempt hook around the RPC (client-go's `RPCInterceptor`).
///
/// [`before`](Self::before) runs right before the attempt is sent, with the attempt's
/// request: the target is chosen (`req.target.addr`, `store_id`, `peer`) and the context is
/// filled. It may read and change the request (request source, resource group, tags,
/// flags) or reject the attempt by returning an error, which then becomes the attempt's
/// error. [`after`](Self::after) runs when the attempt's outcome is known and may inspect
/// or replace it.
///
/// In a chain the hooks nest like client-go's `Wrap(next)` onion: `before` hooks run in
/// link order, `after` hooks in reverse order, and an interceptor's `after` runs only if
/// its `before` accepted the attempt (it then sees the rejections of the interceptors
/// inside it, as a Go interceptor sees `next`'s error).
///
/// Hooks are synchronous and must be cheap: they run on every attempt, on the task that
/// drives the request. A hook that needs to wait (for quota, for I/O) or to wrap the
/// response future should be a tower layer placed next to the `interceptor` layer instead,
/// as tonic's interceptor docs advise.
///
/// Any `Fn(&mut RpcRequest) -> Result<()>` closure is an (anonymous) interceptor; give it a
/// name with [`named`].
///
/// ```
/// use tikv_layers::interceptor::{Interceptor, InterceptorChain, named};
/// use tikv_layers::{ErrorDetail, RpcRequest};
///
/// // Tag every attempt's request source; reject attempts to a store under maintenance.
/// let chain = InterceptorChain::new()
///     .link(named("tag", |req: &mut RpcRequest| {
///         req.context.request_source = "audited".into();
///         Ok(())
///     }))
///     .link(named("fence", |req: &mut RpcRequest| {
///         if req.target.store_id == 13 {
///             return Err(ErrorDetail::InvalidArgument("store 13 is fenced".into()).into());
///         }
///         Ok(())
///     }));
/// assert_eq!(chain.names().collect::<Vec<_>>(), ["tag", "fence"]);
/// ```
#[doc(alias = "RPCInterceptor")]
pub trait Interceptor: Send + Sync + 'static {
    /// The interceptor's name (client-go's `Name`). In a chain, linking an interceptor with
    /// the name of one already present replaces it.
    ///
    /// The default is the empty name, which marks an anonymous interceptor: anonymous
    /// interceptors never replace one another.
    fn name(&self) -> &str {
        ""
    }

    /// Runs before the attempt is sent; may change the request or reject the attempt.
    ///
    /// # Errors
    ///
    /// The error rejects the attempt: the inner service is not called and the attempt
    /// fails with this error (after the `after` hooks of the interceptors outside this one
    /// have seen it). The retry layer treats it like any other error of that kind.
    fn before(&self, attempt: &mut RpcRequest) -> Result<()>;

    /// Runs once the attempt's outcome is known; may inspect or replace it. Does nothing by
    /// default.
    fn after(&self, attempt: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        let _ = (attempt, outcome);
    }

    /// The chain behind this interceptor, if it is one; [`InterceptorChain::link`] uses it
    /// to flatten nested chains.
    #[doc(hidden)]
    fn as_chain(&self) -> Option<&InterceptorChain> {
        None
    }
}

impl<F> Interceptor for F
where
    F: Fn(&mut RpcRequest) -> Result<()> + Send + Sync + 'static,
{
    fn before(&self, attempt: &mut RpcRequest) -> Result<()> {
        self(attempt)
    }
}

impl<I: Interceptor + ?Sized> Interceptor for Arc<I> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn before(&self, attempt: &mut RpcRequest) -> Result<()> {
        (**self).before(attempt)
    }

    fn after(&self, attempt: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        (**self).after(attempt, outcome);
    }

    fn as_chain(&self) -> Option<&InterceptorChain> {
        (**self).as_chain()
    }
}

/// What an [`after`](Interceptor::after) hook learns about the attempt whose outcome it
/// sees (the request itself has been consumed by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptInfo {
    /// The command type.
    pub cmd: CmdType,
    /// The region the attempt was routed to (0 for store-level commands).
    pub region_id: u64,
    /// The store the attempt was sent to (0 when unknown).
    pub store_id: u64,
    /// The kind of endpoint targeted.
    pub endpoint: EndpointType,
}

impl AttemptInfo {
    /// The summary of an attempt's request.
    pub fn of(req: &RpcRequest) -> AttemptInfo {
        AttemptInfo {
            cmd: req.cmd_type(),
            region_id: req.context.region_id,
            store_id: req.target.store_id,
            endpoint: req.options.endpoint,
        }
    }
}

/// Gives an interceptor a name (client-go's `NewRPCInterceptor(name, fn)`).
#[doc(alias = "NewRPCInterceptor")]
pub fn named<I: Interceptor>(name: impl Into<Cow<'static, str>>, interceptor: I) -> Named<I> {
    Named {
        name: name.into(),
        inner: interceptor,
    }
}

/// An interceptor with a name; see [`named`].
///
/// A named chain is opaque: linking it adds one entry instead of flattening it.
#[derive(Clone)]
pub struct Named<I> {
    name: Cow<'static, str>,
    inner: I,
}

impl<I> Named<I> {
    /// The wrapped interceptor.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// Unwraps the interceptor.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<I: Interceptor> Interceptor for Named<I> {
    fn name(&self) -> &str {
        &self.name
    }

    fn before(&self, attempt: &mut RpcRequest) -> Result<()> {
        self.inner.before(attempt)
    }

    fn after(&self, attempt: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        self.inner.after(attempt, outcome);
    }
}

impl<I> fmt::Debug for Named<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .field("interceptor", &std::any::type_name::<I>())
            .finish()
    }
}

/// Interceptors run as one, in link order, as an onion (client-go's
/// `RPCInterceptorChain`).
///
/// - The first linked interceptor is the outermost: its `before` runs first and its
///   `after` last.
/// - Linking a chain links its members one by one (nested chains are flattened).
/// - Linking an interceptor whose (non-empty) name is already present removes the old one
///   and appends the new one at the end.
///
/// A chain is cheap to clone (one `Arc`); linking into a clone copies the member list
/// first, so other clones never change. This is what makes it safe to carry a chain in a
/// request and extend it per request ([`with_rpc_interceptor`]).
///
/// ```
/// use tikv_layers::interceptor::{InterceptorChain, named};
/// use tikv_layers::RpcRequest;
///
/// let noop = |_: &mut RpcRequest| Ok(());
/// let outer = InterceptorChain::new().link(named("a", noop)).link(named("b", noop));
/// let inner = InterceptorChain::new().link(named("c", noop));
/// let all = outer.link(inner).link(named("a", noop));
/// assert_eq!(all.names().collect::<Vec<_>>(), ["b", "c", "a"]);
/// ```
#[doc(alias = "RPCInterceptorChain")]
#[derive(Clone, Default)]
pub struct InterceptorChain {
    entries: Arc<Vec<Arc<dyn Interceptor>>>,
}

/// The name client-go gives a chain (`RPCInterceptorChain.Name`).
const CHAIN_NAME: &str = "interceptor-chain";

impl InterceptorChain {
    /// An empty chain.
    #[doc(alias = "NewRPCInterceptorChain")]
    pub fn new() -> InterceptorChain {
        InterceptorChain::default()
    }

    /// Links `interceptor` at the end (client-go's `Link`); see the type docs for the
    /// flattening and replacement rules.
    #[must_use]
    #[doc(alias = "Link")]
    pub fn link(mut self, interceptor: impl Interceptor) -> Self {
        self.push(interceptor);
        self
    }

    /// [`link`](Self::link) in place.
    pub fn push(&mut self, interceptor: impl Interceptor) {
        if let Some(chain) = interceptor.as_chain() {
            self.push_members(chain);
            return;
        }
        self.push_shared(Arc::new(interceptor));
    }

    /// Links an interceptor that is already shared.
    pub fn push_shared(&mut self, interceptor: Arc<dyn Interceptor>) {
        if let Some(chain) = interceptor.as_chain() {
            self.push_members(chain);
            return;
        }
        let entries = Arc::make_mut(&mut self.entries);
        let name = interceptor.name();
        if !name.is_empty()
            && let Some(pos) = entries.iter().position(|e| e.name() == name)
        {
            entries.remove(pos);
        }
        entries.push(interceptor);
    }

    fn push_members(&mut self, chain: &InterceptorChain) {
        // Hold our own handle on the members: `chain` may share them with `self`.
        let members = Arc::clone(&chain.entries);
        for m in members.iter() {
            self.push_shared(Arc::clone(m));
        }
    }

    /// How many interceptors the chain holds (client-go's `Len`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the chain holds no interceptor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members' names, in link order (anonymous members have an empty name).
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|e| e.name())
    }

    /// The members, in link order.
    pub fn members(&self) -> &[Arc<dyn Interceptor>] {
        &self.entries
    }
}

impl Interceptor for InterceptorChain {
    fn name(&self) -> &str {
        CHAIN_NAME
    }

    /// Runs the members' `before` hooks in order. When member `k` rejects, the `after`
    /// hooks of members `k-1 .. 0` see the rejection first; the chain then rejects with the
    /// error they leave (or the original error, if one of them replaced it with a response:
    /// a `before` hook cannot answer for the chain). The `interceptor` layer runs the
    /// members itself and honors such a response.
    fn before(&self, attempt: &mut RpcRequest) -> Result<()> {
        for (k, m) in self.entries.iter().enumerate() {
            if let Err(e) = m.before(attempt) {
                if k == 0 {
                    return Err(e);
                }
                let kept = Error::new(e.detail().clone());
                let info = AttemptInfo::of(attempt);
                let mut outcome = Err(e);
                for m in self.entries[..k].iter().rev() {
                    m.after(&info, &mut outcome);
                }
                return match outcome {
                    Err(e) => Err(e),
                    Ok(_) => Err(kept),
                };
            }
        }
        Ok(())
    }

    /// Runs the members' `after` hooks in reverse link order.
    fn after(&self, attempt: &AttemptInfo, outcome: &mut Result<RpcResponse>) {
        for m in self.entries.iter().rev() {
            m.after(attempt, outcome);
        }
    }

    fn as_chain(&self) -> Option<&InterceptorChain> {
        Some(self)
    }
}

impl fmt::Debug for InterceptorChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Chains two interceptors (client-go's `ChainRPCInterceptors(first, rest...)`; link more
/// with [`InterceptorChain::link`]). Always builds a new chain.
#[doc(alias = "ChainRPCInterceptors")]
pub fn chain(first: impl Interceptor, second: impl Interceptor) -> InterceptorChain {
    InterceptorChain::new().link(first).link(second)
}

/// Adds an interceptor to this request's own chain (client-go's
/// `WithRPCInterceptor(ctx, interceptor)`).
///
/// The chain rides in the request's extensions, so it follows the request through every
/// attempt and into every sub-request cloned from it; the `interceptor` layer runs it
/// inside the client-level chain. An interceptor already attached stays outside the new
/// one (unless the new one replaces it by name).
#[doc(alias = "WithRPCInterceptor")]
pub fn with_rpc_interceptor(req: &mut RpcRequest, interceptor: impl Interceptor) {
    match req.extensions.get_mut::<InterceptorChain>() {
        Some(chain) => chain.push(interceptor),
        None => {
            req.extensions
                .insert(InterceptorChain::new().link(interceptor));
        }
    }
}

/// The request's own chain, if interceptors were attached to it (client-go's
/// `GetRPCInterceptorFromCtx`).
#[doc(alias = "GetRPCInterceptorFromCtx")]
pub fn rpc_interceptor(req: &RpcRequest) -> Option<&InterceptorChain> {
    req.extensions.get::<InterceptorChain>()
}
