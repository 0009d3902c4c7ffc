//! Acceptance scenario of the embedded mock cluster (issue 3), through the gRPC face with the
//! generated tonic clients only, and through the in-process `tower::Service` face.
#![allow(clippy::unwrap_used, missing_docs)]

mod faces;

use tikv::layers::{Command, CommandResponse, RpcRequest};
use tikv::mock::{Mock, MockGrpc, MockOptions, encode_key};
use tikv::proto::pdpb::pd_client::PdClient;
use tikv::proto::tikvpb::tikv_client::TikvClient;
use tikv::proto::{kvrpcpb, metapb, pdpb};
use tower::{Service, ServiceExt};

/// Bootstraps 3 stores and splits (raw keys) into 4 regions at b, d, f.
fn four_regions(m: &Mock) -> Vec<u64> {
    let c = m.cluster();
    let (_stores, _peers, region, leader) = c.bootstrap_with_multi_stores(3);
    let mut regions = vec![region];
    let mut cur = region;
    for k in [b"b", b"d", b"f"] {
        let new_id = c.alloc_id();
        let peers = c.alloc_ids(3);
        c.split_raw(cur, new_id, k, &peers, peers[0]).unwrap();
        cur = new_id;
        regions.push(new_id);
    }
    let _ = leader;
    regions
}

fn ctx_of(region: &metapb::Region, leader: &metapb::Peer) -> kvrpcpb::Context {
    kvrpcpb::Context {
        region_id: region.id,
        region_epoch: region.region_epoch,
        peer: Some(*leader),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_face_acceptance() {
    let m = Mock::new(MockOptions::default());
    let regions = four_regions(&m);
    assert_eq!(regions.len(), 4);
    let grpc = MockGrpc::start(&m).unwrap();
    let mut pd = PdClient::new(chan(format!("http://{}", grpc.pd_addr())).await);
    let members = pd
        .get_members(pdpb::GetMembersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let cluster_id = members.header.unwrap().cluster_id;
    assert_eq!(cluster_id, 1);
    let stores = pd
        .get_all_stores(pdpb::GetAllStoresRequest::default())
        .await
        .unwrap()
        .into_inner()
        .stores;
    assert_eq!(stores.len(), 3);
    let addr_of = |id: u64| stores.iter().find(|s| s.id == id).unwrap().address.clone();

    // Raw put/get across the four regions.
    let keys: [&[u8]; 4] = [b"a", b"c", b"e", b"g"];
    let mut seen = std::collections::BTreeSet::new();
    for k in keys {
        let r = pd
            .get_region(pdpb::GetRegionRequest {
                region_key: k.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let (region, leader) = (r.region.unwrap(), r.leader.unwrap());
        seen.insert(region.id);
        let mut kv = TikvClient::new(chan(format!("http://{}", addr_of(leader.store_id))).await);
        let put = kv
            .raw_put(kvrpcpb::RawPutRequest {
                context: Some(ctx_of(&region, &leader)),
                key: k.to_vec(),
                value: [b"v-".as_slice(), k].concat(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(put.region_error.is_none(), "{put:?}");
        let got = kv
            .raw_get(kvrpcpb::RawGetRequest {
                context: Some(ctx_of(&region, &leader)),
                key: k.to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.value, [b"v-".as_slice(), k].concat());
        let scan = kv
            .raw_scan(kvrpcpb::RawScanRequest {
                context: Some(ctx_of(&region, &leader)),
                start_key: region.start_key.clone(),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(scan.kvs.len(), 1, "one key per region");
    }
    assert_eq!(seen.len(), 4);

    // Prewrite / commit through the transactional API.
    let tso = |pd: &mut PdClient<tonic::transport::Channel>| {
        let mut pd = pd.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(pdpb::TsoRequest {
                count: 1,
                ..Default::default()
            })
            .await
            .unwrap();
            let mut s = pd.tso(tokio_stream_from(rx)).await.unwrap().into_inner();
            let t = s.message().await.unwrap().unwrap().timestamp.unwrap();
            ((t.physical as u64) << 18) | t.logical as u64
        }
    };
    let start_ts = tso(&mut pd).await;
    let r = pd
        .get_region(pdpb::GetRegionRequest {
            region_key: encode_key(b"k1"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (region, leader) = (r.region.unwrap(), r.leader.unwrap());
    let mut kv = TikvClient::new(chan(format!("http://{}", addr_of(leader.store_id))).await);
    let pw = kv
        .kv_prewrite(kvrpcpb::PrewriteRequest {
            context: Some(ctx_of(&region, &leader)),
            mutations: vec![kvrpcpb::Mutation {
                op: kvrpcpb::Op::Put as i32,
                key: b"k1".to_vec(),
                value: b"v1".to_vec(),
                ..Default::default()
            }],
            primary_lock: b"k1".to_vec(),
            start_version: start_ts,
            lock_ttl: 3000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(pw.region_error.is_none() && pw.errors.is_empty(), "{pw:?}");
    let commit_ts = tso(&mut pd).await;
    let cm = kv
        .kv_commit(kvrpcpb::CommitRequest {
            context: Some(ctx_of(&region, &leader)),
            start_version: start_ts,
            keys: vec![b"k1".to_vec()],
            commit_version: commit_ts,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(cm.region_error.is_none() && cm.error.is_none(), "{cm:?}");
    let get = kv
        .kv_get(kvrpcpb::GetRequest {
            context: Some(ctx_of(&region, &leader)),
            key: b"k1".to_vec(),
            version: tso(&mut pd).await,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(get.value, b"v1");

    // Leader transfer: the old leader answers NotLeader naming the new one.
    let r = pd
        .get_region(pdpb::GetRegionRequest {
            region_key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (region, old_leader) = (r.region.unwrap(), r.leader.unwrap());
    let new_leader = region
        .peers
        .iter()
        .find(|p| p.store_id != old_leader.store_id)
        .copied()
        .unwrap();
    m.cluster().change_leader(region.id, new_leader.id).unwrap();
    let mut old = TikvClient::new(chan(format!("http://{}", addr_of(old_leader.store_id))).await);
    let resp = old
        .raw_get(kvrpcpb::RawGetRequest {
            context: Some(ctx_of(&region, &old_leader)),
            key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let nl = resp.region_error.unwrap().not_leader.unwrap();
    assert_eq!(nl.leader.unwrap().id, new_leader.id);
    // A stale epoch after a split answers EpochNotMatch with the current regions.
    m.cluster()
        .split_raw(
            region.id,
            m.cluster().alloc_id(),
            b"a1",
            &m.cluster().alloc_ids(3),
            0,
        )
        .unwrap();
    let mut newc = TikvClient::new(chan(format!("http://{}", addr_of(new_leader.store_id))).await);
    let resp = newc
        .raw_get(kvrpcpb::RawGetRequest {
            context: Some(ctx_of(&region, &new_leader)),
            key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let enm = resp.region_error.unwrap().epoch_not_match.unwrap();
    assert_eq!(enm.current_regions.len(), 2);

    // BatchCommands: ids echoed, health feedback attached.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(tikv::proto::tikvpb::BatchCommandsRequest {
        requests: vec![tikv::proto::tikvpb::batch_commands_request::Request {
            cmd: Some(
                tikv::proto::tikvpb::batch_commands_request::request::Cmd::Empty(
                    tikv::proto::tikvpb::BatchCommandsEmptyRequest {
                        test_id: 7,
                        delay_time: 0,
                    },
                ),
            ),
        }],
        request_ids: vec![42],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut s = newc
        .batch_commands(tokio_stream_from(rx))
        .await
        .unwrap()
        .into_inner();
    let b = s.message().await.unwrap().unwrap();
    assert_eq!(b.request_ids, vec![42]);
    assert!(b.health_feedback.is_some());
    drop(tx);

    // Stop / start a store: its port closes and reopens on the same address.
    let addr1 = addr_of(old_leader.store_id);
    m.cluster().stop_store(old_leader.store_id).unwrap();
    assert!(!grpc.listening().contains(&addr1));
    m.cluster().start_store(old_leader.store_id).unwrap();
    assert!(grpc.listening().contains(&addr1));
    let mut again = TikvClient::new(chan(format!("http://{addr1}")).await);
    let r = again
        .get_health_feedback(kvrpcpb::GetHealthFeedbackRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.health_feedback.unwrap().store_id, old_leader.store_id);
}

async fn chan(url: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

struct RxStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> tonic::codegen::tokio_stream::Stream for RxStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn tokio_stream_from<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> RxStream<T> {
    RxStream(rx)
}

async fn call(
    svc: &mut tikv::mock::MockTikv,
    addr: &str,
    cmd: impl Into<Command>,
    ctx: kvrpcpb::Context,
) -> Result<CommandResponse, tikv::layers::Error> {
    let mut req = RpcRequest::with_context(cmd, ctx);
    req.target.addr = addr.to_owned();
    svc.ready().await?.call(req).await.map(|r| r.resp)
}

#[tokio::test(start_paused = true)]
async fn in_process_face_acceptance() {
    let m = Mock::new(MockOptions::default());
    let regions = four_regions(&m);
    assert_eq!(regions.len(), 4);
    let mut svc = m.tikv();
    let c = m.cluster().clone();
    let addr = |id: u64| c.get_store(id).unwrap().address;
    for k in [b"a", b"c", b"e", b"g"] {
        let info = c.get_region_by_key(k).unwrap();
        let leader = info.leader.unwrap();
        let ctx = ctx_of(&info.region, &leader);
        let put = kvrpcpb::RawPutRequest {
            key: k.to_vec(),
            value: k.to_vec(),
            ..Default::default()
        };
        let r = call(&mut svc, &addr(leader.store_id), put, ctx.clone())
            .await
            .unwrap();
        assert!(r.region_error().is_none());
        let get = kvrpcpb::RawGetRequest {
            key: k.to_vec(),
            ..Default::default()
        };
        match call(&mut svc, &addr(leader.store_id), get, ctx)
            .await
            .unwrap()
        {
            CommandResponse::RawGet(g) => assert_eq!(g.value, k.to_vec()),
            other => panic!("{other:?}"),
        }
    }
    // Prewrite / commit.
    let start_ts = m.pd().get_ts().await.unwrap();
    let info = c.get_region_by_key(&encode_key(b"k1")).unwrap();
    let leader = info.leader.unwrap();
    let ctx = ctx_of(&info.region, &leader);
    let pw = kvrpcpb::PrewriteRequest {
        mutations: vec![kvrpcpb::Mutation {
            op: kvrpcpb::Op::Put as i32,
            key: b"k1".to_vec(),
            value: b"v1".to_vec(),
            ..Default::default()
        }],
        primary_lock: b"k1".to_vec(),
        start_version: start_ts,
        lock_ttl: 3000,
        ..Default::default()
    };
    match call(&mut svc, &addr(leader.store_id), pw, ctx.clone())
        .await
        .unwrap()
    {
        CommandResponse::Prewrite(p) => {
            assert!(p.errors.is_empty() && p.region_error.is_none(), "{p:?}")
        }
        other => panic!("{other:?}"),
    }
    let commit_ts = m.pd().get_ts().await.unwrap();
    let cm = kvrpcpb::CommitRequest {
        start_version: start_ts,
        keys: vec![b"k1".to_vec()],
        commit_version: commit_ts,
        ..Default::default()
    };
    let r = call(&mut svc, &addr(leader.store_id), cm, ctx.clone())
        .await
        .unwrap();
    assert!(r.region_error().is_none() && !r.has_key_error());
    let get = kvrpcpb::GetRequest {
        key: b"k1".to_vec(),
        version: m.pd().get_ts().await.unwrap(),
        ..Default::default()
    };
    match call(&mut svc, &addr(leader.store_id), get, ctx)
        .await
        .unwrap()
    {
        CommandResponse::Get(g) => assert_eq!(g.value, b"v1"),
        other => panic!("{other:?}"),
    }
    // Leader transfer -> NotLeader naming the new leader.
    let info = c.get_region_by_key(b"a").unwrap();
    let old = info.leader.unwrap();
    let new = info
        .region
        .peers
        .iter()
        .find(|p| p.store_id != old.store_id)
        .copied()
        .unwrap();
    c.change_leader(info.region.id, new.id).unwrap();
    let r = call(
        &mut svc,
        &addr(old.store_id),
        kvrpcpb::RawGetRequest {
            key: b"a".to_vec(),
            ..Default::default()
        },
        ctx_of(&info.region, &old),
    )
    .await
    .unwrap();
    assert_eq!(
        r.region_error()
            .unwrap()
            .not_leader
            .as_ref()
            .unwrap()
            .leader
            .as_ref()
            .unwrap()
            .id,
        new.id
    );
    c.assert_no_violations();
}

/// MC-2.25.1: while a region is in a flashback, every other request to it gets
/// `FlashbackInProgress`; finishing the flashback clears it.
#[tokio::test(start_paused = true)]
async fn flashback_in_progress_blocks_other_requests() {
    let m = Mock::new(MockOptions::default());
    four_regions(&m);
    let mut svc = m.tikv();
    let c = m.cluster().clone();
    let info = c.get_region_by_key(b"a").unwrap();
    let leader = info.leader.unwrap();
    let addr = c.get_store(leader.store_id).unwrap().address;
    let ctx = ctx_of(&info.region, &leader);
    let start_ts = m.pd().alloc_ts(1);
    let prepare = kvrpcpb::PrepareFlashbackToVersionRequest {
        start_key: b"a".to_vec(),
        end_key: b"b".to_vec(),
        start_ts,
        version: 1,
        ..Default::default()
    };
    let r = call(&mut svc, &addr, prepare, ctx.clone()).await.unwrap();
    assert!(r.region_error().is_none(), "{r:?}");

    let get = kvrpcpb::GetRequest {
        key: b"a".to_vec(),
        version: m.pd().alloc_ts(1),
        ..Default::default()
    };
    let r = call(&mut svc, &addr, get.clone(), ctx.clone())
        .await
        .unwrap();
    let fb = r
        .region_error()
        .and_then(|e| e.flashback_in_progress)
        .expect("flashback in progress");
    assert_eq!(fb.region_id, info.region.id);
    assert_eq!(fb.flashback_start_ts, start_ts);

    let commit_ts = m.pd().alloc_ts(1);
    let finish = kvrpcpb::FlashbackToVersionRequest {
        start_key: b"a".to_vec(),
        end_key: b"b".to_vec(),
        start_ts,
        commit_ts,
        version: 1,
        ..Default::default()
    };
    let r = call(&mut svc, &addr, finish, ctx.clone()).await.unwrap();
    assert!(r.region_error().is_none(), "{r:?}");
    let r = call(&mut svc, &addr, get, ctx).await.unwrap();
    assert!(r.region_error().is_none(), "{r:?}");
}

/// MC-2.24.1: coprocessor requests go to the installed hook after the region checks; with
/// no hook they are unimplemented.
#[tokio::test(start_paused = true)]
async fn coprocessor_hook_serves_after_region_checks() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use tikv::mock::{CopContext, CoprocessorHandler};
    use tikv::proto::coprocessor;

    struct Echo;
    impl CoprocessorHandler for Echo {
        fn handle(
            &self,
            ctx: CopContext,
            req: coprocessor::Request,
        ) -> Pin<Box<dyn Future<Output = coprocessor::Response> + Send + 'static>> {
            Box::pin(async move {
                let mut data = ctx.scope.start_key.clone();
                data.extend_from_slice(&req.data);
                coprocessor::Response {
                    data,
                    ..Default::default()
                }
            })
        }
    }

    let m = Mock::new(MockOptions::default());
    four_regions(&m);
    let mut svc = m.tikv();
    let c = m.cluster().clone();
    let info = c.get_region_by_key(b"c").unwrap();
    let leader = info.leader.unwrap();
    let addr = c.get_store(leader.store_id).unwrap().address;
    let ctx = ctx_of(&info.region, &leader);
    let req = coprocessor::Request {
        data: b"!".to_vec(),
        ..Default::default()
    };

    let err = call(&mut svc, &addr, req.clone(), ctx.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unsupported"), "{err}");

    m.set_coprocessor_handler(Arc::new(Echo));
    match call(&mut svc, &addr, req.clone(), ctx.clone())
        .await
        .unwrap()
    {
        CommandResponse::Cop(r) => {
            assert!(r.region_error.is_none());
            assert_eq!(r.data.last(), Some(&b'!'));
        }
        other => panic!("{other:?}"),
    }

    // The region checks still run first.
    let mut stale = ctx.clone();
    if let Some(e) = stale.region_epoch.as_mut() {
        e.version += 100;
    }
    let r = call(&mut svc, &addr, req, stale).await.unwrap();
    assert!(r.region_error().is_some());
}
