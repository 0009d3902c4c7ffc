//! [`TraceLayer`] and [`AttemptTraceLayer`], the configuration values of the `trace`
//! layer.

use tower_layer::Layer;
use tracing::Level;

use super::make_span::{DefaultMakeSpan, KeyLogging, MakeSpan};
use super::service::{AttemptTrace, Trace};

/// Opens one span per logical request and runs the request inside it; see the
/// [module docs](super).
///
/// The span comes from a [`MakeSpan`] (by default [`DefaultMakeSpan`]).
#[derive(Debug, Clone)]
pub struct TraceLayer<M = DefaultMakeSpan> {
    make_span: M,
}

impl TraceLayer {
    /// A layer with [`DefaultMakeSpan`]: `tikv` spans at DEBUG, key lengths only.
    pub fn new() -> TraceLayer {
        TraceLayer {
            make_span: DefaultMakeSpan::new(),
        }
    }

    /// The level of the default spans.
    #[must_use]
    pub fn level(self, level: Level) -> Self {
        TraceLayer {
            make_span: self.make_span.level(level),
        }
    }

    /// What the default spans may say about keys.
    #[must_use]
    pub fn key_logging(self, keys: KeyLogging) -> Self {
        TraceLayer {
            make_span: self.make_span.key_logging(keys),
        }
    }
}

impl Default for TraceLayer {
    fn default() -> Self {
        TraceLayer::new()
    }
}

impl<M> TraceLayer<M> {
    /// Makes the request spans with `make_span` instead.
    pub fn make_span_with<M2: MakeSpan>(self, make_span: M2) -> TraceLayer<M2> {
        TraceLayer { make_span }
    }
}

impl<S, M: Clone> Layer<S> for TraceLayer<M> {
    type Service = Trace<S, M>;

    fn layer(&self, inner: S) -> Trace<S, M> {
        Trace::with_make_span(inner, self.make_span.clone())
    }
}

/// Opens a child span per RPC attempt, for the per-attempt stage of the pipeline (after
/// `replica`, next to the interceptors); see the [module docs](super).
#[derive(Debug, Clone)]
pub struct AttemptTraceLayer {
    level: Level,
}

impl AttemptTraceLayer {
    /// A layer opening `tikv.attempt` spans at [`Level::TRACE`].
    pub fn new() -> AttemptTraceLayer {
        AttemptTraceLayer {
            level: Level::TRACE,
        }
    }

    /// The level of the attempt spans.
    #[must_use]
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

impl Default for AttemptTraceLayer {
    fn default() -> Self {
        AttemptTraceLayer::new()
    }
}

impl<S> Layer<S> for AttemptTraceLayer {
    type Service = AttemptTrace<S>;

    fn layer(&self, inner: S) -> AttemptTrace<S> {
        AttemptTrace::with_level(inner, self.level)
    }
}
