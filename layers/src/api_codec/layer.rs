//! [`ApiCodecLayer`].

use tower_layer::Layer;

use super::{ApiCodec, Codec};

/// Encodes each attempt for the cluster's API version and decodes the answer back to user
/// keys; see the [module docs](super).
///
/// Sits directly above the transport, below `timeout` (client-go encodes in
/// `RPCClient.SendRequest`, the last step before the wire, KS-10).
#[derive(Debug, Clone)]
pub struct ApiCodecLayer {
    codec: Codec,
}

impl ApiCodecLayer {
    /// A layer applying `codec` to every attempt.
    pub fn new(codec: Codec) -> ApiCodecLayer {
        ApiCodecLayer { codec }
    }

    /// The codec the layer applies.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }
}

impl<S> Layer<S> for ApiCodecLayer {
    type Service = ApiCodec<S>;

    fn layer(&self, inner: S) -> ApiCodec<S> {
        ApiCodec::new(inner, self.codec.clone())
    }
}
