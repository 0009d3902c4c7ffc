//! Unit tests of the `network` layer under paused time: request sizes, exec-details
//! traffic and the stale-read / read-bytes metrics (client-go's
//! `metrics_collector_test.go` cases, plus cross-zone, TiFlash and error attempts).

use ::metrics_util::debugging::DebuggingRecorder;
use tikv_proto::kvrpcpb;
use tower::{Layer, ServiceExt};
use tower_test::mock;

use super::{NetworkLayer, ReadInvariants, request_size};
use crate::exec_details::{ExecDetailsSink, TrafficDetails};
use crate::metrics::names::{self, labels};
use crate::request::{AccessLocation, EndpointType, ReplicaReadType, RpcRequest, RpcResponse};
use crate::test_support::recorded::{self, Observed, observed};
use crate::{Error, ErrorDetail};

/// The counter's value, 0 when it was never registered.
fn counter(obs: &Observed, name: &str, l: &[(&str, &str)]) -> u64 {
    recorded::counter(obs, name, l).unwrap_or(0)
}

/// The histogram's samples, empty when it was never registered.
fn histogram(obs: &Observed, name: &str, l: &[(&str, &str)]) -> Vec<f64> {
    recorded::histogram(obs, name, l).unwrap_or_default()
}

fn get(location: AccessLocation) -> (RpcRequest, ExecDetailsSink) {
    let mut req = RpcRequest::new(kvrpcpb::GetRequest {
        key: b"key".to_vec(),
        version: 5,
        ..Default::default()
    });
    req.context.region_id = 7;
    req.context.max_execution_duration_ms = 1000;
    req.target.access_location = location;
    let sink = ExecDetailsSink::new();
    req.extensions.insert(sink.clone());
    (req, sink)
}

fn value(v: &[u8]) -> RpcResponse {
    RpcResponse::new(kvrpcpb::GetResponse {
        value: v.to_vec(),
        ..Default::default()
    })
}

/// Sends `req` through the layer over a tower-test mock answering `answer`.
async fn send(req: RpcRequest, answer: Result<RpcResponse, Error>) -> Result<RpcResponse, Error> {
    let (svc, mut handle) = mock::pair::<RpcRequest, RpcResponse>();
    let svc = NetworkLayer::new().layer(svc.map_err(Error::from_boxed));
    let call = tokio::spawn(svc.oneshot(req));
    let (_, responder) = handle.next_request().await.expect("the attempt");
    match answer {
        Ok(r) => responder.send_response(r),
        Err(e) => responder.send_error(e),
    }
    call.await.expect("no panic")
}

#[test]
fn request_size_is_the_attached_message_size() {
    let (mut req, _) = get(AccessLocation::Unknown);
    let mut attached = req.clone();
    attached.attach_context();
    assert_eq!(request_size(&req), attached.cmd.encoded_len());

    // A stale context on the inner message is replaced, not added.
    req.cmd.set_context(&kvrpcpb::Context {
        region_id: 123_456,
        ..Default::default()
    });
    assert_eq!(request_size(&req), attached.cmd.encoded_len());

    // The default origin is stamped by attach_context, so it is counted.
    let mut req = req.default_origin(kvrpcpb::RequestOrigin::TiDb);
    req.context
        .set_request_origin(kvrpcpb::RequestOrigin::Unknown);
    let mut attached = req.clone();
    attached.attach_context();
    assert_eq!(request_size(&req), attached.cmd.encoded_len());

    // A command without a context is its own size.
    let req = RpcRequest::new(tikv_proto::mpp::EstablishMppConnectionRequest::default());
    assert_eq!(request_size(&req), req.cmd.encoded_len());
}

#[tokio::test(start_paused = true)]
async fn leader_read_counts_bytes_but_no_stale_read_traffic() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let (mut req, sink) = get(AccessLocation::LocalZone);
    req.context.busy_threshold_ms = 50;
    let sent = request_size(&req) as u64;
    send(req, Ok(value(b"value"))).await.unwrap();
    let t = sink.snapshot().traffic;
    assert_eq!(t.bytes_sent_kv_total, sent);
    assert_eq!(t.bytes_sent_kv_cross_zone, 0);
    assert_eq!(t.bytes_received_kv_total, 7);
    assert_eq!(t.bytes_received_kv_cross_zone, 0);

    let obs = observed(&snapshotter);
    assert_eq!(
        counter(
            &obs,
            names::STALE_READ_REQ_TOTAL,
            &[(labels::TYPE, labels::LOCAL)]
        ),
        0
    );
    assert_eq!(
        histogram(
            &obs,
            names::READ_REQUEST_BYTES,
            &[
                (labels::TYPE, labels::LEADER),
                (labels::RESULT, labels::LOCAL)
            ]
        ),
        vec![(sent + 7) as f64]
    );
}

#[tokio::test(start_paused = true)]
async fn local_stale_read_counts_request_and_both_directions() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let (mut req, sink) = get(AccessLocation::LocalZone);
    req.enable_stale_read();
    let sent = request_size(&req) as u64;
    send(req, Ok(value(b"stale-value"))).await.unwrap();

    let obs = observed(&snapshotter);
    let bytes = |zone: &str, dir: &str| {
        counter(
            &obs,
            names::STALE_READ_BYTES_TOTAL,
            &[(labels::RESULT, zone), (labels::DIRECTION, dir)],
        )
    };
    assert_eq!(
        counter(
            &obs,
            names::STALE_READ_REQ_TOTAL,
            &[(labels::TYPE, labels::LOCAL)]
        ),
        1
    );
    assert_eq!(bytes(labels::LOCAL, labels::OUT), sent);
    assert_eq!(bytes(labels::LOCAL, labels::IN), 13);
    assert_eq!(bytes(labels::CROSS_ZONE, labels::OUT), 0);
    assert_eq!(sink.snapshot().traffic.bytes_received_kv_total, 13);
}

#[tokio::test(start_paused = true)]
async fn cross_zone_attempt_of_a_stale_call_counts_as_remote_stale_traffic() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    // The call was a stale read; this retry fell back to a follower read in another zone.
    let (mut req, sink) = get(AccessLocation::CrossZone);
    req.call.invariants = Some(ReadInvariants {
        stale_read: true,
        replica_read: ReplicaReadType::Mixed,
    });
    req.set_replica_read(ReplicaReadType::Follower);
    let sent = request_size(&req) as u64;
    send(req, Ok(value(b"value"))).await.unwrap();

    let t = sink.snapshot().traffic;
    assert_eq!(
        (t.bytes_sent_kv_total, t.bytes_sent_kv_cross_zone),
        (sent, sent)
    );
    assert_eq!(
        (t.bytes_received_kv_total, t.bytes_received_kv_cross_zone),
        (7, 7)
    );
    let obs = observed(&snapshotter);
    assert_eq!(
        counter(
            &obs,
            names::STALE_READ_REQ_TOTAL,
            &[(labels::TYPE, labels::CROSS_ZONE)]
        ),
        1
    );
    assert_eq!(
        counter(
            &obs,
            names::STALE_READ_BYTES_TOTAL,
            &[
                (labels::RESULT, labels::CROSS_ZONE),
                (labels::DIRECTION, labels::IN)
            ]
        ),
        7
    );
    assert_eq!(
        histogram(
            &obs,
            names::READ_REQUEST_BYTES,
            &[
                (labels::TYPE, labels::FOLLOWER),
                (labels::RESULT, labels::CROSS_ZONE)
            ]
        ),
        vec![(sent + 7) as f64]
    );
}

#[tokio::test(start_paused = true)]
async fn invariants_say_not_stale_even_if_the_attempt_is() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);
    let (mut req, _) = get(AccessLocation::LocalZone);
    req.call.invariants = Some(ReadInvariants::default());
    req.enable_stale_read();
    send(req, Ok(value(b"v"))).await.unwrap();
    let obs = observed(&snapshotter);
    assert_eq!(
        counter(
            &obs,
            names::STALE_READ_REQ_TOTAL,
            &[(labels::TYPE, labels::LOCAL)]
        ),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn failed_attempt_counts_only_what_was_sent_and_tiflash_goes_to_mpp() {
    let (mut req, sink) = get(AccessLocation::CrossZone);
    req.options.endpoint = EndpointType::TiFlash;
    let sent = request_size(&req) as u64;
    let err = send(
        req,
        Err(ErrorDetail::Transport {
            addr: "s1".into(),
            message: "broken".into(),
        }
        .into()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::Transport { .. }));
    assert_eq!(
        sink.snapshot().traffic,
        TrafficDetails {
            bytes_sent_mpp_total: sent,
            bytes_sent_mpp_cross_zone: sent,
            ..Default::default()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_sink_nothing_is_recorded_and_empty_answers_count_nothing() {
    let (mut req, sink) = get(AccessLocation::LocalZone);
    req.extensions.remove::<ExecDetailsSink>();
    send(req, Ok(value(b"v"))).await.unwrap();
    assert_eq!(sink.snapshot().traffic, TrafficDetails::default());

    // An empty response (size 0) adds no received bytes.
    let (req, sink) = get(AccessLocation::LocalZone);
    let empty = RpcResponse::new(kvrpcpb::GetResponse::default());
    assert_eq!(empty.resp.encoded_len(), 0);
    send(req, Ok(empty)).await.unwrap();
    assert_eq!(sink.snapshot().traffic.bytes_received_kv_total, 0);
    assert!(sink.snapshot().traffic.bytes_sent_kv_total > 0);
}
