//! Spec §6.2 B/C/E/F checks on the gRPC faces, the bare server (MC-2.29.7), health
//! (MC-2.29.6), keyspaces (MC-1.18) and the TiKV-side checks of MC-1.1.2 / MC-2.2.1.

use std::sync::Arc;
use std::time::Duration;

use tikv::layers::{CmdType, Command, CommandResponse, RpcRequest};
use tikv::mock::{
    Action, BareTikvServer, Clock, Mock, MockGrpc, MockOptions, Phase, Rule, TransportKind,
};
use tikv::proto::keyspacepb::keyspace_client::KeyspaceClient;
use tikv::proto::tikvpb::batch_commands_request::request::Cmd as ReqCmd;
use tikv::proto::tikvpb::batch_commands_response::response::Cmd as RespCmd;
use tikv::proto::tikvpb::tikv_client::TikvClient;
use tikv::proto::{keyspacepb, kvrpcpb, metapb, pdpb, tikvpb};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::{Service, ServiceExt};

use super::{chan, ctx_of, four_regions, tokio_stream_from};

async fn try_chan(addr: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
}

async fn health(addr: &str) -> ServingStatus {
    let mut h = HealthClient::new(chan(format!("http://{addr}")).await);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    r.status()
}

fn raw_get(ctx: kvrpcpb::Context, key: &[u8]) -> kvrpcpb::RawGetRequest {
    kvrpcpb::RawGetRequest {
        context: Some(ctx),
        key: key.to_vec(),
        ..Default::default()
    }
}

/// Opens a BatchCommands stream; returns the sender and the response stream.
async fn open_batch(
    addr: &str,
) -> (
    tokio::sync::mpsc::Sender<tikvpb::BatchCommandsRequest>,
    tonic::Streaming<tikvpb::BatchCommandsResponse>,
) {
    let mut c = TikvClient::new(chan(format!("http://{addr}")).await);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let out = c
        .batch_commands(tokio_stream_from(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, out)
}

fn batch_of(cmds: Vec<(u64, ReqCmd)>) -> tikvpb::BatchCommandsRequest {
    let (ids, reqs): (Vec<u64>, Vec<_>) = cmds
        .into_iter()
        .map(|(id, c)| (id, tikvpb::batch_commands_request::Request { cmd: Some(c) }))
        .unzip();
    tikvpb::BatchCommandsRequest {
        requests: reqs,
        request_ids: ids,
        ..Default::default()
    }
}

// ----- bare server (MC-2.29.7, §6.2 E.4) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_server_answers_empty_responses_and_restarts_on_same_address() {
    let (srv, port) = BareTikvServer::start_new().unwrap();
    assert!(port > 0 && srv.is_running());
    let addr = srv.addr();
    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let mut c = TikvClient::new(chan(format!("http://{addr}")).await);
    assert_eq!(
        c.kv_get(kvrpcpb::GetRequest::default())
            .await
            .unwrap()
            .into_inner(),
        kvrpcpb::GetResponse::default()
    );
    c.kv_prewrite(kvrpcpb::PrewriteRequest::default())
        .await
        .unwrap();
    let mut cop = c
        .coprocessor_stream(tikv::proto::coprocessor::Request::default())
        .await
        .unwrap()
        .into_inner();
    assert!(cop.message().await.unwrap().is_some());
    assert!(cop.message().await.unwrap().is_none());
    let code = c
        .kv_commit(kvrpcpb::CommitRequest::default())
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, tonic::Code::Unimplemented);

    // BatchCommands: one Empty per id, health feedback with increasing sequence numbers.
    let (tx, mut out) = open_batch(&addr).await;
    for round in 1..=2u64 {
        let get = ReqCmd::Get(kvrpcpb::GetRequest::default());
        tx.send(batch_of(vec![
            (round * 10, get.clone()),
            (round * 10 + 1, get),
        ]))
        .await
        .unwrap();
        let r = out.message().await.unwrap().unwrap();
        assert_eq!(r.request_ids, vec![round * 10, round * 10 + 1]);
        assert!(
            r.responses
                .iter()
                .all(|x| matches!(x.cmd, Some(RespCmd::Empty(_))))
        );
        let fb = r.health_feedback.unwrap();
        assert_eq!(
            (fb.store_id, fb.feedback_seq_no, fb.slow_score),
            (1, round, 1)
        );
    }

    // Stop ends the open stream and closes the port; start binds the same address again.
    srv.stop();
    assert!(!srv.is_running());
    let end = out.message().await;
    assert!(end.is_err() || end.unwrap().is_none());
    assert!(try_chan(&addr).await.is_err());
    assert_eq!(srv.start(&addr).unwrap(), port);
    assert!(srv.is_running());
    let mut c = TikvClient::new(chan(format!("http://{addr}")).await);
    c.kv_get(kvrpcpb::GetRequest::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_server_runs_meta_checker_and_batch_override() {
    let (srv, _) = BareTikvServer::start_new().unwrap();
    let addr = srv.addr();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    srv.set_meta_checker(Some(Arc::new(move |md: &tonic::metadata::MetadataMap| {
        let host = md
            .get("tikv-forwarded-host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        s2.lock().unwrap().push(host.clone());
        if host == "deny" {
            Err(tonic::Status::deadline_exceeded("checker"))
        } else {
            Ok(())
        }
    })));
    let mut c = TikvClient::new(chan(format!("http://{addr}")).await);
    let mut req = tonic::Request::new(kvrpcpb::GetRequest::default());
    req.metadata_mut()
        .insert("tikv-forwarded-host", "store9".parse().unwrap());
    c.kv_get(req).await.unwrap();
    let mut req = tonic::Request::new(kvrpcpb::GetRequest::default());
    req.metadata_mut()
        .insert("tikv-forwarded-host", "deny".parse().unwrap());
    assert_eq!(
        c.kv_get(req).await.unwrap_err().code(),
        tonic::Code::DeadlineExceeded
    );
    assert_eq!(*seen.lock().unwrap(), vec!["store9", "deny"]);
    srv.set_meta_checker(None);

    srv.set_on_batch_commands(Some(Arc::new(|req: tikvpb::BatchCommandsRequest| {
        if req.request_ids.contains(&99) {
            return Err(tonic::Status::resource_exhausted("override"));
        }
        Ok(tikvpb::BatchCommandsResponse {
            request_ids: req.request_ids.iter().map(|i| i + 1000).collect(),
            ..Default::default()
        })
    })));
    let (tx, mut out) = open_batch(&addr).await;
    let empty = ReqCmd::Empty(tikvpb::BatchCommandsEmptyRequest::default());
    tx.send(batch_of(vec![(1, empty.clone())])).await.unwrap();
    assert_eq!(
        out.message().await.unwrap().unwrap().request_ids,
        vec![1001]
    );
    tx.send(batch_of(vec![(99, empty)])).await.unwrap();
    assert_eq!(
        out.message().await.unwrap_err().code(),
        tonic::Code::ResourceExhausted
    );
}

// ----- health and the store-state matrix on the gRPC face (§1.11, §6.2 B.6, E.3) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pd_face_serves_the_health_service() {
    // The PD client probes members with grpc.health.v1 before forwarding (PD-5); a mock PD
    // without it would look unreachable.
    let m = Mock::new(MockOptions::default());
    m.cluster().bootstrap_with_multi_stores(1);
    let g = MockGrpc::start(&m).unwrap();
    assert_eq!(health(g.pd_addr()).await, ServingStatus::Serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_store_state_matrix_and_health_follow_section_1_11() {
    let m = Mock::new(MockOptions::default());
    let (stores, _, region, _) = m.cluster().bootstrap_with_multi_stores(3);
    let g = MockGrpc::start(&m).unwrap();
    let c = m.cluster().clone();
    let addr = |id: u64| c.get_store(id).unwrap().address;
    let (r, _) = c.get_region(region).unwrap();
    let leader = r.peers[0];
    let ctx = ctx_of(&r, &leader);
    let (s1, s2, s3) = (stores[0], stores[1], stores[2]);
    let a1 = addr(s1);

    // Up: served, SERVING.
    assert_eq!(health(&a1).await, ServingStatus::Serving);
    let mut t1 = TikvClient::new(chan(format!("http://{a1}")).await);
    t1.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap();

    // Cancelled: Cancelled, still SERVING.
    c.cancel_store(s1).unwrap();
    let e = t1.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Cancelled);
    assert_eq!(health(&a1).await, ServingStatus::Serving);
    c.uncancel_store(s1).unwrap();

    // Offline: listener closed; start binds the same port again.
    c.stop_store(s1).unwrap();
    assert!(!g.listening().contains(&a1));
    assert!(try_chan(&a1).await.is_err());
    c.start_store(s1).unwrap();
    assert_eq!(addr(s1), a1);
    assert_eq!(health(&a1).await, ServingStatus::Serving);
    let mut t1 = TikvClient::new(chan(format!("http://{a1}")).await);
    t1.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap();

    // Tombstone: the listener stays, requests are refused (Unavailable), NOT_SERVING.
    let a2 = addr(s2);
    c.mark_tombstone(s2).unwrap();
    assert_eq!(health(&a2).await, ServingStatus::NotServing);
    let mut t2 = TikvClient::new(chan(format!("http://{a2}")).await);
    let e = t2.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);

    // Removed: no listener at all.
    let a3 = addr(s3);
    c.remove_store(s3);
    assert!(!g.listening().contains(&a3));
    assert!(try_chan(&a3).await.is_err());
}

// ----- BatchCommands (MC-2.29.3) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_commands_transport_error_ends_the_stream_with_its_status() {
    let m = Mock::new(MockOptions::default());
    let (_, _, region, _) = m.cluster().bootstrap_with_multi_stores(1);
    let _g = MockGrpc::start(&m).unwrap();
    let (r, _) = m.cluster().get_region(region).unwrap();
    let ctx = ctx_of(&r, &r.peers[0]);
    let a = m.cluster().get_store(r.peers[0].store_id).unwrap().address;
    let _rule = m.inject(
        Rule::new(Action::Transport(
            TransportKind::Status(tonic::Code::PermissionDenied),
            "injected".into(),
        ))
        .cmds(&[CmdType::RawPut]),
    );
    let (tx, mut out) = open_batch(&a).await;
    tx.send(batch_of(vec![(
        1,
        ReqCmd::RawGet(raw_get(ctx.clone(), b"k")),
    )]))
    .await
    .unwrap();
    let first = out.message().await.unwrap().unwrap();
    assert_eq!(first.request_ids, vec![1]);
    let put = kvrpcpb::RawPutRequest {
        context: Some(ctx),
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    tx.send(batch_of(vec![(2, ReqCmd::RawPut(put))]))
        .await
        .unwrap();
    let e = out.message().await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert_eq!(e.message(), "injected");
}

// ----- deadlines (MC-2.30.3 on the gRPC face) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_header_bounds_waits_with_deadline_exceeded() {
    let m = Mock::new(MockOptions::default());
    let (_, _, region, _) = m.cluster().bootstrap_with_multi_stores(1);
    let _g = MockGrpc::start(&m).unwrap();
    let (r, _) = m.cluster().get_region(region).unwrap();
    let ctx = ctx_of(&r, &r.peers[0]);
    let a = m.cluster().get_store(r.peers[0].store_id).unwrap().address;
    let pause = m.inject(Rule::new(Action::Pause).cmds(&[CmdType::RawGet]));
    let mut t = TikvClient::new(chan(format!("http://{a}")).await);
    let mut req = tonic::Request::new(raw_get(ctx.clone(), b"k"));
    req.set_timeout(Duration::from_millis(50));
    // The client's own timer may also fire at the same instant (tonic answers `Cancelled`).
    let e = t.raw_get(req).await.unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{e:?}"
    );
    // The server keeps running the call after the client gave up; wait (bounded) until the
    // engine's own deadline ends it, then lift the pause.
    let logged = tokio::time::timeout(Duration::from_secs(5), async {
        while !m
            .request_log()
            .iter()
            .any(|e| e.cmd_type == CmdType::RawGet)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(logged.is_ok(), "the paused call never ended");
    drop(pause);
    t.raw_get(raw_get(ctx, b"k")).await.unwrap();
    // The engine itself stopped waiting at the deadline: the paused call ended with a
    // transport-level deadline error rather than being served after the pause was lifted.
    let outcomes: Vec<_> = m
        .request_log()
        .into_iter()
        .filter(|e| e.cmd_type == CmdType::RawGet)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, tikv::mock::Outcome::Transport(t) if t.contains("timed out"))),
        "{outcomes:?}"
    );
}

// ----- TiKV-side checks (MC-1.1.2, MC-2.2.1, MC-1.12.3, MC-1.18.2) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_id_mismatch_fails_call_and_batch_stream_with_invalid_argument() {
    let m = Mock::new(MockOptions::default());
    let (_, _, region, _) = m.cluster().bootstrap_with_multi_stores(1);
    let _g = MockGrpc::start(&m).unwrap();
    let (r, _) = m.cluster().get_region(region).unwrap();
    let mut ctx = ctx_of(&r, &r.peers[0]);
    let a = m.cluster().get_store(r.peers[0].store_id).unwrap().address;
    let mut t = TikvClient::new(chan(format!("http://{a}")).await);
    ctx.cluster_id = 1;
    t.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap();
    ctx.cluster_id = 0;
    t.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap();
    ctx.cluster_id = 7;
    let e = t.raw_get(raw_get(ctx.clone(), b"k")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let (tx, mut out) = open_batch(&a).await;
    tx.send(batch_of(vec![(1, ReqCmd::RawGet(raw_get(ctx, b"k")))]))
        .await
        .unwrap();
    assert_eq!(
        out.message().await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

async fn call(
    m: &Mock,
    addr: &str,
    cmd: impl Into<Command>,
    ctx: kvrpcpb::Context,
) -> Result<CommandResponse, tikv::layers::Error> {
    let mut svc = m.tikv();
    let mut req = RpcRequest::with_context(cmd, ctx);
    req.target.addr = addr.to_owned();
    svc.ready().await?.call(req).await.map(|r| r.resp)
}

#[tokio::test(start_paused = true)]
async fn mismatch_peer_id_and_bucket_version_are_opt_in_region_errors() {
    for on in [false, true] {
        let mut o = MockOptions::default();
        o.check_peer_id = on;
        o.check_bucket_version = on;
        let m = Mock::new(o);
        let c = m.cluster();
        let (_, _, region, _) = c.bootstrap_with_multi_stores(1);
        let (r, _) = c.get_region(region).unwrap();
        let mut ctx = ctx_of(&r, &r.peers[0]);
        let a = c.get_store(r.peers[0].store_id).unwrap().address;
        let mut wrong = ctx.clone();
        wrong.peer = Some(metapb::Peer {
            id: 999,
            ..r.peers[0]
        });
        let resp = call(&m, &a, raw_get(wrong.clone(), b"k"), wrong)
            .await
            .unwrap();
        let e = resp.region_error().and_then(|e| e.mismatch_peer_id);
        assert_eq!(e.is_some(), on);
        if on {
            let e = e.unwrap();
            assert_eq!((e.request_peer_id, e.store_peer_id), (999, r.peers[0].id));
        }
        c.split_region_buckets(region, &[b"", b"m", b""], 5)
            .unwrap();
        ctx.buckets_version = 3;
        let resp = call(&m, &a, raw_get(ctx.clone(), b"k"), ctx).await.unwrap();
        let e = resp
            .region_error()
            .and_then(|e| e.bucket_version_not_match.clone());
        assert_eq!(e.is_some(), on);
        if on {
            assert_eq!(e.unwrap().version, 5);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn api_v2_rejects_wrong_version_and_foreign_keyspace_keys_as_storage_errors() {
    let mut o = MockOptions::default();
    o.api_version = kvrpcpb::ApiVersion::V2;
    let m = Mock::new(o);
    let c = m.cluster();
    let (_, _, region, _) = c.bootstrap_with_multi_stores(1);
    let (r, _) = c.get_region(region).unwrap();
    let a = c.get_store(r.peers[0].store_id).unwrap().address;
    let mut ctx = ctx_of(&r, &r.peers[0]);
    // V1 request to a V2 store: raw string error, no region error.
    let resp = call(&m, &a, raw_get(ctx.clone(), b"r\0\0\x01k"), ctx.clone())
        .await
        .unwrap();
    let CommandResponse::RawGet(g) = &resp else {
        panic!()
    };
    assert!(resp.region_error().is_none() && g.error.contains("api version"));
    ctx.set_api_version(kvrpcpb::ApiVersion::V2);
    ctx.keyspace = Some(kvrpcpb::context::Keyspace::KeyspaceId(1));
    let resp = call(&m, &a, raw_get(ctx.clone(), b"r\0\0\x01k"), ctx.clone())
        .await
        .unwrap();
    let CommandResponse::RawGet(g) = &resp else {
        panic!()
    };
    assert!(g.error.is_empty());
    let resp = call(&m, &a, raw_get(ctx.clone(), b"r\0\0\x02k"), ctx.clone())
        .await
        .unwrap();
    let CommandResponse::RawGet(g) = &resp else {
        panic!()
    };
    assert!(g.error.contains("keyspace"));
    // Transactional commands: KeyError.abort.
    let get = kvrpcpb::GetRequest {
        context: Some(ctx.clone()),
        key: b"r\0\0\x01k".to_vec(),
        version: 10,
        ..Default::default()
    };
    let resp = call(&m, &a, get, ctx).await.unwrap();
    let CommandResponse::Get(g) = &resp else {
        panic!()
    };
    assert!(resp.region_error().is_none());
    assert!(!g.error.as_ref().unwrap().abort.is_empty());
}

// ----- keyspaces over gRPC (MC-1.18.1) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_registry_serves_load_update_list_and_watch() {
    let m = Mock::new(MockOptions::default());
    m.cluster().bootstrap_with_single_store();
    let g = MockGrpc::start(&m).unwrap();
    let mut k = KeyspaceClient::new(chan(format!("http://{}", g.pd_addr())).await);
    let mut watch = k
        .watch_keyspaces(keyspacepb::WatchKeyspacesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.keyspaces.len(), 1);
    assert_eq!(first.keyspaces[0].name, "DEFAULT");
    let ks = m
        .pd()
        .create_keyspace("ks1", &[("gc_management_type", "keyspace_level")])
        .unwrap();
    assert_eq!(
        ks.keyspace,
        Some(keyspacepb::keyspace_meta::Keyspace::Id(1))
    );
    assert!(m.pd().create_keyspace("ks1", &[]).is_err());
    assert_eq!(watch.message().await.unwrap().unwrap().keyspaces.len(), 2);
    let r = k
        .load_keyspace(keyspacepb::LoadKeyspaceRequest {
            name: "ks1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.keyspace.unwrap().config["gc_management_type"],
        "keyspace_level"
    );
    let r = k
        .load_keyspace(keyspacepb::LoadKeyspaceRequest {
            name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.header.unwrap().error.unwrap().r#type(),
        pdpb::ErrorType::EntryNotFound
    );
    let r = k
        .update_keyspace_state(keyspacepb::UpdateKeyspaceStateRequest {
            keyspace: Some(keyspacepb::update_keyspace_state_request::Keyspace::Id(1)),
            state: keyspacepb::KeyspaceState::Archived as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.keyspace.unwrap().state(),
        keyspacepb::KeyspaceState::Archived
    );
    let by_id = k
        .load_keyspace_by_id(keyspacepb::LoadKeyspaceByIdRequest {
            keyspace: Some(keyspacepb::load_keyspace_by_id_request::Keyspace::Id(1)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.keyspace.unwrap().name, "ks1");
    let all = k
        .get_all_keyspaces(keyspacepb::GetAllKeyspacesRequest {
            start_keyspace: Some(keyspacepb::get_all_keyspaces_request::StartKeyspace::StartId(1)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.keyspaces.len(), 1);
}

// ----- address swap (§6.2 B.5) -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_swap_answers_store_not_match_on_the_grpc_face() {
    let m = Mock::new(MockOptions::default());
    let (stores, _, region, _) = m.cluster().bootstrap_with_multi_stores(2);
    let _g = MockGrpc::start(&m).unwrap();
    let c = m.cluster().clone();
    let (a1, a2) = (
        c.get_store(stores[0]).unwrap().address,
        c.get_store(stores[1]).unwrap().address,
    );
    c.update_store_addr(stores[0], &a2, &[]).unwrap();
    c.update_store_addr(stores[1], &a1, &[]).unwrap();
    let (r, _) = c.get_region(region).unwrap();
    let leader = r.peers[0];
    assert_eq!(leader.store_id, stores[0]);
    // The client still dials store 1's old address, which now belongs to store 2.
    let mut t = TikvClient::new(chan(format!("http://{a1}")).await);
    let resp = t
        .raw_get(raw_get(ctx_of(&r, &leader), b"k"))
        .await
        .unwrap()
        .into_inner();
    let snm = resp.region_error.unwrap().store_not_match.unwrap();
    assert_eq!(
        (snm.request_store_id, snm.actual_store_id),
        (stores[0], stores[1])
    );
    // Dialling the new address works.
    let mut t = TikvClient::new(chan(format!("http://{a2}")).await);
    let resp = t
        .raw_get(raw_get(ctx_of(&r, &leader), b"k"))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.region_error.is_none());
}

#[tokio::test(start_paused = true)]
async fn removed_then_readded_address_resolves_to_the_new_store() {
    let m = Mock::new(MockOptions::default());
    let c = m.cluster();
    let (stores, _, region, _) = c.bootstrap_with_multi_stores(2);
    let (r, _) = c.get_region(region).unwrap();
    let a1 = c.get_store(stores[0]).unwrap().address;
    c.remove_store(stores[0]);
    let new_id = c.alloc_id();
    c.add_store(new_id, &a1, &[]);
    let resp = call(
        &m,
        &a1,
        raw_get(ctx_of(&r, &r.peers[0]), b"k"),
        ctx_of(&r, &r.peers[0]),
    )
    .await
    .unwrap();
    let snm = resp.region_error().unwrap().store_not_match.unwrap();
    assert_eq!(snm.actual_store_id, new_id);
}

// ----- BatchScanRegions (§6.2 C.2) -----

#[tokio::test(start_paused = true)]
async fn batch_scan_regions_dedups_limits_and_reports_gaps() {
    let m = Mock::new(MockOptions::default());
    let regions = four_regions(&m);
    let range = |s: &[u8], e: &[u8]| pdpb::KeyRange {
        start_key: s.to_vec(),
        end_key: e.to_vec(),
    };
    let pd = m.pd();
    // Overlapping ranges return each region once, in key order.
    let r = pd
        .batch_scan_regions(pdpb::BatchScanRegionsRequest {
            ranges: vec![range(b"a", b"c"), range(b"b", b"e"), range(b"c", b"d")],
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<u64> = r
        .regions
        .iter()
        .map(|x| x.region.as_ref().unwrap().id)
        .collect();
    assert_eq!(ids, vec![regions[0], regions[1], regions[2]]);
    // The limit is total across ranges.
    let r = pd
        .batch_scan_regions(pdpb::BatchScanRegionsRequest {
            ranges: vec![range(b"a", b"c"), range(b"d", b"")],
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.regions.len(), 3);
    // A region PD does not know about leaves a gap: error only when asked to contain all.
    m.cluster().set_unreported_region(Some(regions[1]));
    let req = |contain: bool| pdpb::BatchScanRegionsRequest {
        ranges: vec![range(b"a", b"e")],
        contain_all_key_range: contain,
        ..Default::default()
    };
    let r = pd.batch_scan_regions(req(false)).await.unwrap();
    assert!(r.header.unwrap().error.is_none());
    let r = pd.batch_scan_regions(req(true)).await.unwrap();
    assert_eq!(
        r.header.unwrap().error.unwrap().r#type(),
        pdpb::ErrorType::RegionsNotContainAllKeyRange
    );
}

// ----- parity (§6.2 E.1) and determinism (§6.2 F) -----

/// A scripted workload: raw ops across regions, a prewrite/commit, an injected region error,
/// a leader transfer. Returns each response as protobuf bytes of its message.
fn script(m: &Mock) -> Vec<(String, Command)> {
    let c = m.cluster();
    let mut out = Vec::new();
    let mut push = |key: &[u8], cmd: Command| {
        let info = c.get_region_by_key(key).unwrap();
        let leader = info.leader.unwrap();
        let mut cmd = cmd;
        set_ctx(&mut cmd, ctx_of(&info.region, &leader));
        out.push((c.get_store(leader.store_id).unwrap().address, cmd));
    };
    for k in [b"a", b"c", b"e", b"g"] {
        push(
            k,
            Command::RawPut(kvrpcpb::RawPutRequest {
                key: k.to_vec(),
                value: k.to_vec(),
                ..Default::default()
            }),
        );
    }
    push(
        b"c",
        Command::RawScan(kvrpcpb::RawScanRequest {
            start_key: b"c".to_vec(),
            limit: 10,
            ..Default::default()
        }),
    );
    push(
        b"a",
        Command::RawGet(kvrpcpb::RawGetRequest {
            key: b"zz".to_vec(),
            ..Default::default()
        }),
    );
    out
}

fn set_ctx(cmd: &mut Command, ctx: kvrpcpb::Context) {
    match cmd {
        Command::RawPut(r) => r.context = Some(ctx),
        Command::RawGet(r) => r.context = Some(ctx),
        Command::RawScan(r) => r.context = Some(ctx),
        Command::Prewrite(r) => r.context = Some(ctx),
        Command::Commit(r) => r.context = Some(ctx),
        Command::Get(r) => r.context = Some(ctx),
        _ => {}
    }
}

fn txn_cmds(m: &Mock) -> Vec<(String, Command)> {
    let c = m.cluster();
    let key = b"t".to_vec();
    let info = c.get_region_by_key(&tikv::mock::encode_key(&key)).unwrap();
    let leader = info.leader.unwrap();
    let ctx = ctx_of(&info.region, &leader);
    let addr = c.get_store(leader.store_id).unwrap().address;
    // Fixed timestamps: the faces run on different clusters whose clocks differ.
    let _ = m;
    let (start, commit) = (100, 110);
    vec![
        (
            addr.clone(),
            Command::Prewrite(kvrpcpb::PrewriteRequest {
                context: Some(ctx.clone()),
                mutations: vec![kvrpcpb::Mutation {
                    op: kvrpcpb::Op::Put as i32,
                    key: key.clone(),
                    value: b"v".to_vec(),
                    ..Default::default()
                }],
                primary_lock: key.clone(),
                start_version: start,
                lock_ttl: 3000,
                ..Default::default()
            }),
        ),
        (
            addr.clone(),
            Command::Commit(kvrpcpb::CommitRequest {
                context: Some(ctx.clone()),
                start_version: start,
                keys: vec![key.clone()],
                commit_version: commit,
                ..Default::default()
            }),
        ),
        (
            addr,
            Command::Get(kvrpcpb::GetRequest {
                context: Some(ctx),
                key,
                version: commit + 1,
                ..Default::default()
            }),
        ),
    ]
}

/// A fresh cluster for the parity scenario: 3 stores, raw regions at b/d/f, one injected
/// NotLeader on the first RawScan.
fn parity_cluster() -> (Mock, tikv::mock::RuleHandle) {
    let m = Mock::with_clock(Clock::with_base_ms(1_000_000), MockOptions::default());
    four_regions(&m);
    let rule = m.inject(
        Rule::new(Action::region_error(tikv::proto::errorpb::Error {
            message: "injected".into(),
            server_is_busy: Some(Default::default()),
            ..Default::default()
        }))
        .cmds(&[CmdType::RawScan])
        .phase(Phase::AfterRegionCheck)
        .policy(tikv::mock::FirePolicy::FirstN(1)),
    );
    (m, rule)
}

async fn run_in_process(m: &Mock, cmds: Vec<(String, Command)>) -> Vec<CommandResponse> {
    let mut out = Vec::new();
    for (addr, cmd) in cmds {
        let ctx = cmd.context().cloned().unwrap_or_default();
        out.push(call(m, &addr, cmd, ctx).await.unwrap());
    }
    out
}

async fn run_unary(cmds: Vec<(String, Command)>) -> Vec<CommandResponse> {
    let mut out = Vec::new();
    for (addr, cmd) in cmds {
        let mut t = TikvClient::new(chan(format!("http://{addr}")).await);
        let r: CommandResponse = match cmd {
            Command::RawPut(r) => t.raw_put(r).await.unwrap().into_inner().into(),
            Command::RawGet(r) => t.raw_get(r).await.unwrap().into_inner().into(),
            Command::RawScan(r) => t.raw_scan(r).await.unwrap().into_inner().into(),
            Command::Prewrite(r) => t.kv_prewrite(r).await.unwrap().into_inner().into(),
            Command::Commit(r) => t.kv_commit(r).await.unwrap().into_inner().into(),
            Command::Get(r) => t.kv_get(r).await.unwrap().into_inner().into(),
            other => panic!("not scripted: {other:?}"),
        };
        out.push(r);
    }
    out
}

async fn run_batch(cmds: Vec<(String, Command)>) -> Vec<CommandResponse> {
    let mut out = Vec::new();
    for (i, (addr, cmd)) in cmds.into_iter().enumerate() {
        let (tx, mut s) = open_batch(&addr).await;
        let sub = cmd.to_batch_request().unwrap();
        tx.send(tikvpb::BatchCommandsRequest {
            requests: vec![sub],
            request_ids: vec![i as u64],
            ..Default::default()
        })
        .await
        .unwrap();
        let r = s.message().await.unwrap().unwrap();
        assert_eq!(r.request_ids, vec![i as u64]);
        let resp = match r.responses.into_iter().next().unwrap().cmd.unwrap() {
            RespCmd::RawPut(r) => r.into(),
            RespCmd::RawGet(r) => r.into(),
            RespCmd::RawScan(r) => r.into(),
            RespCmd::Prewrite(r) => r.into(),
            RespCmd::Commit(r) => r.into(),
            RespCmd::Get(r) => r.into(),
            other => panic!("not scripted: {other:?}"),
        };
        out.push(resp);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_in_process_unary_and_batch_commands_give_identical_responses() {
    let (m1, _r1) = parity_cluster();
    let mut cmds = script(&m1);
    cmds.extend(txn_cmds(&m1));
    let a = run_in_process(&m1, cmds).await;

    let (m2, _r2) = parity_cluster();
    let _g2 = MockGrpc::start(&m2).unwrap();
    let mut cmds = script(&m2);
    cmds.extend(txn_cmds(&m2));
    let b = run_unary(cmds).await;

    let (m3, _r3) = parity_cluster();
    let _g3 = MockGrpc::start(&m3).unwrap();
    let mut cmds = script(&m3);
    cmds.extend(txn_cmds(&m3));
    let c = run_batch(cmds).await;

    assert_eq!(a.len(), 9);
    // The injected error fired once; the read after the commit sees the value.
    assert!(a[4].region_error().unwrap().server_is_busy.is_some());
    let CommandResponse::Get(g) = &a[8] else {
        panic!()
    };
    assert_eq!(g.value, b"v");
    let a = encoded(a);
    assert_eq!(a, encoded(b));
    assert_eq!(a, encoded(c));
}

/// Each response as the protobuf bytes of its `BatchCommands` arm.
fn encoded(rs: Vec<CommandResponse>) -> Vec<Vec<u8>> {
    use prost::Message;
    rs.into_iter()
        .map(|r| r.into_batch_response().unwrap_or_default().encode_to_vec())
        .collect()
}

async fn deterministic_run() -> (Vec<u64>, Vec<Vec<u8>>, Vec<String>) {
    let (m, _r) = parity_cluster();
    let mut tsos = Vec::new();
    for _ in 0..3 {
        tsos.push(m.pd().alloc_ts(1));
        tokio::time::advance(Duration::from_millis(7)).await;
    }
    let mut cmds = script(&m);
    cmds.extend(txn_cmds(&m));
    let resps = run_in_process(&m, cmds).await;
    let log = m
        .request_log()
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {:?} {:?}",
                e.time_ms, e.addr, e.store_id, e.cmd_type, e.outcome
            )
        })
        .collect();
    (tsos, encoded(resps), log)
}

#[tokio::test(start_paused = true)]
async fn determinism_same_script_under_paused_time_gives_same_tsos_responses_and_log() {
    let first = deterministic_run().await;
    let second = deterministic_run().await;
    assert_eq!(first, second);
    assert!(first.0.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(first.2.len(), 9);
}
