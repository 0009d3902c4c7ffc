//! Server-streaming calls (TP-18; client-go `internal/client/client.go`
//! `getCopStreamResponse` and `tikvrpc.Lease`): the call reads the first message before it
//! returns, then every receive has the attempt's timeout as its own lease.
//!
//! A loopback TiKV server whose `CoprocessorStream` the test feeds by hand stands in for
//! the store. Real sockets mean real time here, so the leases are short and the gaps the
//! tests leave are far from them in both directions.

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use tikv_layers::request::ResponseStream;
use tikv_layers::{Command, CommandResponse, Error, ErrorDetail, ErrorKind, RpcRequest};
use tikv_proto::tikvpb::tikv_server::{Tikv, TikvServer};
use tikv_proto::{coprocessor, kvrpcpb, mpp, tikvpb};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use crate::config::TikvClientConfig;
use crate::mock::grpc::{BoxStream, Running, bind, chan_stream, spawn_server, with_tikv_methods};
use crate::transport::{Transport, TransportConfig};

/// The sending end of one `CoprocessorStream` response.
type Feed = mpsc::Sender<Result<coprocessor::Response, Status>>;

/// A TiKV face that hands the test the response feed of every `CoprocessorStream` call;
/// every other method is `Unimplemented`.
#[derive(Clone)]
struct StreamFace {
    calls: mpsc::UnboundedSender<Feed>,
}

macro_rules! stream_face_impl {
    (
        unary { $($m:ident: $req:ty => $v:ident => $resp:ty;)* }
        unimpl { $($um:ident: $ureq:ty => $uresp:ty;)* }
        rest { $($rest:tt)* }
    ) => {
        #[tonic::async_trait]
        impl Tikv for StreamFace {
            $(
                async fn $m(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(stringify!($m)))
                }
            )*
            $(
                async fn $um(&self, _: Request<$ureq>) -> Result<Response<$uresp>, Status> {
                    Err(Status::unimplemented(stringify!($um)))
                }
            )*
            $($rest)*
        }
    };
}

with_tikv_methods! {
    stream_face_impl {}
    rest {
    type CoprocessorStreamStream = BoxStream<coprocessor::Response>;
    async fn coprocessor_stream(
        &self,
        _: Request<coprocessor::Request>,
    ) -> Result<Response<Self::CoprocessorStreamStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let _ = self.calls.send(tx);
        Ok(Response::new(chan_stream(rx)))
    }

    type BatchCoprocessorStream = BoxStream<coprocessor::BatchResponse>;
    async fn batch_coprocessor(
        &self,
        _: Request<coprocessor::BatchRequest>,
    ) -> Result<Response<Self::BatchCoprocessorStream>, Status> {
        Err(Status::unimplemented("batch_coprocessor"))
    }

    type EstablishMPPConnectionStream = BoxStream<mpp::MppDataPacket>;
    async fn establish_mpp_connection(
        &self,
        _: Request<mpp::EstablishMppConnectionRequest>,
    ) -> Result<Response<Self::EstablishMPPConnectionStream>, Status> {
        Err(Status::unimplemented("establish_mpp_connection"))
    }

    type BatchCommandsStream = BoxStream<tikvpb::BatchCommandsResponse>;
    async fn batch_commands(
        &self,
        _: Request<Streaming<tikvpb::BatchCommandsRequest>>,
    ) -> Result<Response<Self::BatchCommandsStream>, Status> {
        Err(Status::unimplemented("batch_commands"))
    }
    }
}

/// The running server; dropping it stops it.
struct StreamServer {
    addr: String,
    calls: mpsc::UnboundedReceiver<Feed>,
    running: Running,
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.running.stop();
    }
}

impl StreamServer {
    fn start() -> StreamServer {
        let handle = tokio::runtime::Handle::current();
        let (l, addr) = bind(&handle, "127.0.0.1:0").unwrap();
        let (tx, calls) = mpsc::unbounded_channel();
        let face = StreamFace { calls: tx };
        let running = spawn_server(
            &handle,
            move |_, _| tonic::transport::Server::builder().add_service(TikvServer::new(face)),
            l,
        );
        StreamServer {
            addr,
            calls,
            running,
        }
    }

    /// The feed of the next stream call.
    async fn next_call(&mut self) -> Feed {
        tokio::time::timeout(Duration::from_secs(10), self.calls.recv())
            .await
            .expect("no stream call reached the server")
            .unwrap()
    }
}

fn transport() -> Transport {
    Transport::new(
        TransportConfig::new(TikvClientConfig::default().with_max_batch_size(0))
            .with_dial_timeout(Duration::from_secs(5)),
    )
}

fn cop_stream(addr: &str, timeout: Duration) -> RpcRequest {
    let mut r = RpcRequest::new(Command::CopStream(coprocessor::Request::default()));
    r.target.addr = addr.to_owned();
    r.options.timeout = Some(timeout);
    r
}

/// A response tagged with `n`.
fn msg(n: u8) -> coprocessor::Response {
    coprocessor::Response {
        data: vec![n],
        ..Default::default()
    }
}

type CopStream = ResponseStream<coprocessor::Response>;

fn into_stream(resp: CommandResponse) -> CopStream {
    match resp {
        CommandResponse::CopStream(s) => s,
        other => panic!("not a coprocessor stream: {:?}", other.cmd_type()),
    }
}

async fn recv(s: &mut CopStream) -> Option<Result<coprocessor::Response, Error>> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

async fn recv_msg(s: &mut CopStream) -> u8 {
    let m = recv(s).await.unwrap().unwrap();
    m.data[0]
}

/// Opens a stream on `t` and lets `feed` see the call: returns the pending call and the
/// feed of its response.
async fn open(
    t: &Transport,
    server: &mut StreamServer,
    timeout: Duration,
) -> (
    tokio::task::JoinHandle<Result<tikv_layers::RpcResponse, Error>>,
    Feed,
) {
    let call = tokio::spawn(t.send_request(cop_stream(&server.addr, timeout)));
    let feed = server.next_call().await;
    (call, feed)
}

// The call returns once the first message arrived; the stream then yields every later
// message in order and ends when the server ends it, and stays ended.
#[tokio::test]
async fn stream_yields_every_message_then_ends() {
    let mut server = StreamServer::start();
    let t = transport();
    let (call, feed) = open(&t, &mut server, Duration::from_secs(10)).await;
    feed.send(Ok(msg(1))).await.unwrap();
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.details.addr, server.addr);
    let mut s = into_stream(resp.resp);
    assert_eq!(recv_msg(&mut s).await, 1);
    feed.send(Ok(msg(2))).await.unwrap();
    feed.send(Ok(msg(3))).await.unwrap();
    assert_eq!(recv_msg(&mut s).await, 2);
    assert_eq!(recv_msg(&mut s).await, 3);
    drop(feed);
    assert!(recv(&mut s).await.is_none());
    assert!(recv(&mut s).await.is_none());
}

// The lease is per receive, not per stream: messages spaced closer than the timeout keep
// the stream alive well past one timeout, and a receive that waits longer than the
// timeout fails with a timeout naming the store, ends the stream and releases the call on
// the server.
#[tokio::test]
async fn each_receive_has_its_own_lease() {
    const LEASE: Duration = Duration::from_millis(1000);
    const GAP: Duration = Duration::from_millis(600);
    let mut server = StreamServer::start();
    let t = transport();
    let (call, feed) = open(&t, &mut server, LEASE).await;
    feed.send(Ok(msg(1))).await.unwrap();
    let mut s = into_stream(call.await.unwrap().unwrap().resp);
    let opened = Instant::now();
    assert_eq!(recv_msg(&mut s).await, 1);

    let feeder = tokio::spawn(async move {
        for n in [2, 3] {
            tokio::time::sleep(GAP).await;
            feed.send(Ok(msg(n))).await.unwrap();
        }
        // Keep the stream open, silent, until the client lets it go.
        feed.closed().await;
    });
    assert_eq!(recv_msg(&mut s).await, 2);
    assert_eq!(recv_msg(&mut s).await, 3);
    assert!(opened.elapsed() > LEASE);

    let stalled = Instant::now();
    let err = recv(&mut s).await.unwrap().unwrap_err();
    assert!(stalled.elapsed() >= LEASE);
    assert!(err.is_timeout(), "{err}");
    match err.detail() {
        ErrorDetail::AttemptTimeout { addr } => assert_eq!(addr, &server.addr),
        other => panic!("not a timeout: {other:?}"),
    }
    assert!(recv(&mut s).await.is_none());
    drop(s);
    tokio::time::timeout(Duration::from_secs(10), feeder)
        .await
        .expect("the server-side stream was not released")
        .unwrap();
}

// A status the server ends the stream with reaches the reader as a gRPC error, once; the
// stream is over afterwards.
#[tokio::test]
async fn server_error_ends_the_stream() {
    let mut server = StreamServer::start();
    let t = transport();
    let (call, feed) = open(&t, &mut server, Duration::from_secs(10)).await;
    feed.send(Ok(msg(1))).await.unwrap();
    let mut s = into_stream(call.await.unwrap().unwrap().resp);
    assert_eq!(recv_msg(&mut s).await, 1);
    feed.send(Err(Status::internal("region is gone")))
        .await
        .unwrap();
    let err = recv(&mut s).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Grpc);
    let status = err.grpc_status().unwrap();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), "region is gone");
    assert!(recv(&mut s).await.is_none());
}

// Opening a stream reads its first message within the request's deadline: a status as the
// first message fails the call, a first message that never comes times the call out, and
// a stream that ends at once is an empty stream, not an error.
#[tokio::test]
async fn opening_a_stream_waits_for_its_first_message() {
    let mut server = StreamServer::start();
    let t = transport();

    let (call, feed) = open(&t, &mut server, Duration::from_secs(10)).await;
    feed.send(Err(Status::unavailable("not leader")))
        .await
        .unwrap();
    let err = call.await.unwrap().unwrap_err();
    let status = err.grpc_status().unwrap();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "not leader");

    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let (call, _silent) = open(&t, &mut server, timeout).await;
    let err = call.await.unwrap().unwrap_err();
    assert!(start.elapsed() >= timeout);
    assert!(err.is_timeout(), "{err}");
    match err.detail() {
        ErrorDetail::AttemptTimeout { addr } => assert_eq!(addr, &server.addr),
        other => panic!("not a timeout: {other:?}"),
    }

    let (call, feed) = open(&t, &mut server, Duration::from_secs(10)).await;
    drop(feed);
    let mut s = into_stream(call.await.unwrap().unwrap().resp);
    assert!(recv(&mut s).await.is_none());
}
