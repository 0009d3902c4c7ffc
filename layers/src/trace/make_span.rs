//! How the request span is made: the [`MakeSpan`] hook, [`DefaultMakeSpan`] and the key
//! privacy switch [`KeyLogging`].

use std::fmt::Write as _;

use tikv_proto::kvrpcpb;
use tracing::field::Empty;
use tracing::{Level, Span};

use crate::request::RpcRequest;
use crate::shard::{RouteKey, route_key};

/// The name of the request span (the crate's name).
pub const REQUEST_SPAN_NAME: &str = "tikv";
/// The name of the attempt span.
pub const ATTEMPT_SPAN_NAME: &str = "tikv.attempt";

/// Makes the span of one logical request (tower-http's `MakeSpan`, for [`RpcRequest`]).
///
/// Implemented by [`DefaultMakeSpan`] and by every `FnMut(&RpcRequest) -> Span` closure.
///
/// When the request finishes, [`TraceLayer`](super::TraceLayer) records `region_id`,
/// `store_id`, `addr`, `server.address`, `attempt`, `backoff_kind`, `backoff_ms`,
/// `result` and `error.kind` on the span. A custom span that wants them declares them as
/// [`Empty`] fields; fields it does not declare are skipped (that is how `tracing`
/// treats unknown fields).
pub trait MakeSpan {
    /// The span for `req`. Called once per request, before the inner service.
    fn make_span(&mut self, req: &RpcRequest) -> Span;
}

impl<F> MakeSpan for F
where
    F: FnMut(&RpcRequest) -> Span,
{
    fn make_span(&mut self, req: &RpcRequest) -> Span {
        self(req)
    }
}

/// What a span may say about the keys of a request.
///
/// Keys are user data: by default no key byte is ever recorded, at any level. Only the
/// length of the request's routing key is (`key.len`), unless even that is turned off.
/// Showing keys is an explicit opt-in ([`Hex`](Self::Hex)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyLogging {
    /// Nothing about keys.
    Off,
    /// The byte length of the routing key (`key.len`), never its content. The default.
    #[default]
    Length,
    /// The length, and the routing key in upper-case hex (`key`), cut after
    /// [`MAX_LOGGED_KEY_BYTES`] bytes. Opt-in: logs then contain user data.
    Hex,
}

/// How many bytes of a key [`KeyLogging::Hex`] shows; longer keys end in `..`.
pub const MAX_LOGGED_KEY_BYTES: usize = 64;

/// The default span: `tikv` at DEBUG level (configurable) with OpenTelemetry-style
/// database attributes and the request's routing fields.
///
/// Fields set when the span is made: `cmd` and `db.operation.name` (the command's
/// client-go name), `db.system.name` (`"tikv"`), `keyspace` and `region_id` when the
/// request already carries them, and `key.len` / `key` as [`KeyLogging`] allows. The
/// others are declared empty and recorded when the request finishes (see [`MakeSpan`]).
#[derive(Debug, Clone)]
pub struct DefaultMakeSpan {
    level: Level,
    keys: KeyLogging,
}

impl DefaultMakeSpan {
    /// Spans at [`Level::DEBUG`], keys as [`KeyLogging::default`].
    pub fn new() -> DefaultMakeSpan {
        DefaultMakeSpan {
            level: Level::DEBUG,
            keys: KeyLogging::default(),
        }
    }

    /// The level of the spans.
    #[must_use]
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// What the spans may say about keys.
    #[must_use]
    pub fn key_logging(mut self, keys: KeyLogging) -> Self {
        self.keys = keys;
        self
    }
}

impl Default for DefaultMakeSpan {
    fn default() -> Self {
        DefaultMakeSpan::new()
    }
}

/// `tracing::span!` needs a constant level, so the level is matched once per level.
macro_rules! request_span {
    ($level:expr, $cmd:expr) => {
        match $level {
            Level::ERROR => request_span!(@ Level::ERROR, $cmd),
            Level::WARN => request_span!(@ Level::WARN, $cmd),
            Level::INFO => request_span!(@ Level::INFO, $cmd),
            Level::DEBUG => request_span!(@ Level::DEBUG, $cmd),
            Level::TRACE => request_span!(@ Level::TRACE, $cmd),
        }
    };
    (@ $level:expr, $cmd:expr) => {
        tracing::span!(
            $level,
            REQUEST_SPAN_NAME,
            cmd = $cmd,
            db.system.name = "tikv",
            db.operation.name = $cmd,
            keyspace = Empty,
            region_id = Empty,
            store_id = Empty,
            addr = Empty,
            server.address = Empty,
            attempt = Empty,
            backoff_kind = Empty,
            backoff_ms = Empty,
            result = Empty,
            error.kind = Empty,
            key.len = Empty,
            key = Empty,
        )
    };
}

macro_rules! attempt_span {
    ($level:expr, $cmd:expr) => {
        match $level {
            Level::ERROR => attempt_span!(@ Level::ERROR, $cmd),
            Level::WARN => attempt_span!(@ Level::WARN, $cmd),
            Level::INFO => attempt_span!(@ Level::INFO, $cmd),
            Level::DEBUG => attempt_span!(@ Level::DEBUG, $cmd),
            Level::TRACE => attempt_span!(@ Level::TRACE, $cmd),
        }
    };
    (@ $level:expr, $cmd:expr) => {
        tracing::span!(
            $level,
            ATTEMPT_SPAN_NAME,
            cmd = $cmd,
            region_id = Empty,
            peer_id = Empty,
            store_id = Empty,
            addr = Empty,
            server.address = Empty,
            forwarded_host = Empty,
            attempt = Empty,
            result = Empty,
            error.kind = Empty,
        )
    };
}

impl MakeSpan for DefaultMakeSpan {
    fn make_span(&mut self, req: &RpcRequest) -> Span {
        let span = request_span!(self.level, req.cmd_type().name());
        if span.is_disabled() {
            return span;
        }
        if let Some(id) = keyspace_of(&req.context) {
            span.record("keyspace", id);
        }
        if let Some(id) = region_of(req) {
            span.record("region_id", id);
        }
        record_key(&span, req, self.keys);
        span
    }
}

/// The attempt span: `tikv.attempt` at `level`, with the target the pipeline chose.
pub(crate) fn attempt_span(level: Level, req: &RpcRequest, attempt: Option<u32>) -> Span {
    let span = attempt_span!(level, req.cmd_type().name());
    if span.is_disabled() {
        return span;
    }
    let t = &req.target;
    if let Some(id) = region_of(req) {
        span.record("region_id", id);
    }
    if let Some(peer) = &t.peer {
        span.record("peer_id", peer.id);
    }
    if t.store_id != 0 {
        span.record("store_id", t.store_id);
    }
    if !t.addr.is_empty() {
        span.record("addr", t.addr.as_str());
        span.record("server.address", t.addr.as_str());
    }
    if let Some(host) = &t.forwarded_host {
        span.record("forwarded_host", host.as_str());
    }
    if let Some(n) = attempt {
        span.record("attempt", n);
    }
    span
}

/// The region the request is routed to, when already known.
fn region_of(req: &RpcRequest) -> Option<u64> {
    match &req.target.region {
        Some(r) => Some(r.ver.id),
        None => (req.context.region_id != 0).then_some(req.context.region_id),
    }
}

/// The keyspace id the context carries, if any.
fn keyspace_of(ctx: &kvrpcpb::Context) -> Option<u32> {
    match &ctx.keyspace {
        Some(kvrpcpb::context::Keyspace::KeyspaceId(id)) => Some(*id),
        Some(kvrpcpb::context::Keyspace::KeyspaceIdentity(k)) => Some(k.keyspace_id),
        None => None,
    }
}

/// Records the routing key as `keys` allows (the key `route` locates the request by).
fn record_key(span: &Span, req: &RpcRequest, keys: KeyLogging) {
    if keys == KeyLogging::Off {
        return;
    }
    let key = match route_key(&req.cmd) {
        RouteKey::Key(k) | RouteKey::EndKey(k) => k,
        _ => return,
    };
    span.record("key.len", key.len());
    if keys == KeyLogging::Hex {
        span.record("key", hex(key).as_str());
    }
}

/// Upper-case hex of at most [`MAX_LOGGED_KEY_BYTES`] bytes, `..` marking a cut.
pub(crate) fn hex(key: &[u8]) -> String {
    let shown = &key[..key.len().min(MAX_LOGGED_KEY_BYTES)];
    let mut out = String::with_capacity(shown.len() * 2 + 2);
    for b in shown {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02X}");
    }
    if key.len() > shown.len() {
        out.push_str("..");
    }
    out
}
