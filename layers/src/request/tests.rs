use super::*;
use tikv_proto::tikvpb::batch_commands_response::response::Cmd as RespCmd;

/// One default-valued command of every type, for table-driven tests.
fn every_command() -> Vec<Command> {
    CmdType::ALL.iter().map(|t| t.empty_command()).collect()
}

#[test]
fn every_cmd_type_has_one_command() {
    let cmds = every_command();
    let types: Vec<CmdType> = cmds.iter().map(Command::cmd_type).collect();
    assert_eq!(types, CmdType::ALL);
    // The conversions pick the same variants as the table.
    assert_eq!(
        Command::from(kvrpcpb::GetRequest::default()),
        CmdType::Get.empty_command()
    );
    assert_eq!(
        Command::from(coprocessor::Request::default()).cmd_type(),
        CmdType::Cop
    );
    for t in CmdType::ALL {
        assert!(!t.name().is_empty());
        assert_eq!(t.to_string(), t.name());
        assert!(t.value() > 0);
    }
    assert_eq!(CmdType::MvccGetByStartTs.name(), "MvccGetByStartTS");
    assert_eq!(CmdType::MppTask.name(), "DispatchMPPTask");
    assert_eq!(CmdType::RawGet.value(), 276);
}

// client-go: T-RPC-002 TestBatchResponse
#[test]
fn batch_response_without_command_is_an_error() {
    let empty = tikvpb::batch_commands_response::Response::default();
    let err = CommandResponse::from_batch_response(empty).unwrap_err();
    assert!(matches!(err.detail(), ErrorDetail::BodyMissing));
}

// client-go: T-RPC-003 TestDefaultRequestOrigin
#[test]
fn default_request_origin() {
    // client-go keeps the default origin in a process-wide variable; here it travels with
    // the request (set by the client from its config), which keeps tests independent.
    let tidb = kvrpcpb::RequestOrigin::TiDb;
    let req = RpcRequest::with_context(kvrpcpb::GetRequest::default(), Default::default())
        .default_origin(tidb);
    assert_eq!(req.request_origin(), tidb);

    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default()).default_origin(tidb);
    assert!(req.attach_context());
    assert_eq!(req.request_origin(), tidb);
    let inner = req.cmd.get().and_then(|g| g.context.as_ref()).unwrap();
    assert_eq!(inner.request_origin(), tidb);

    let cases: Vec<Command> = vec![
        kvrpcpb::ScanLockRequest::default().into(),
        kvrpcpb::CleanupRequest::default().into(),
        kvrpcpb::CheckTxnStatusRequest::default().into(),
        kvrpcpb::CheckSecondaryLocksRequest::default().into(),
    ];
    for cmd in cases {
        let name = cmd.cmd_type();
        let mut req = RpcRequest::new(cmd);
        req.options.default_origin = tidb;
        assert!(req.attach_context(), "{name}");
        assert_eq!(req.cmd.context().unwrap().request_origin(), tidb, "{name}");
    }

    // An explicit origin is kept when the default is unknown.
    let mut ctx = kvrpcpb::Context::default();
    ctx.set_request_origin(tidb);
    let req = RpcRequest::with_context(kvrpcpb::GetRequest::default(), ctx)
        .default_origin(kvrpcpb::RequestOrigin::Unknown);
    assert_eq!(req.request_origin(), tidb);
}

// client-go: T-RPC-004 TestAttachContextSetsRequestContext
#[test]
fn attach_context_sets_request_context() {
    let ctx = |region_id, keyspace_id, name: &str| kvrpcpb::Context {
        region_id,
        api_version: kvrpcpb::ApiVersion::V2 as i32,
        keyspace: Some(kvrpcpb::context::Keyspace::KeyspaceId(keyspace_id)),
        keyspace_name: name.to_owned(),
        ..Default::default()
    };
    let first = ctx(123, 456, "test-keyspace");
    let next = ctx(789, 101112, "next-test-keyspace");
    let cases: Vec<Command> = vec![
        kvrpcpb::GetRequest::default().into(),
        kvrpcpb::GetLockWaitInfoRequest::default().into(),
    ];
    for cmd in cases {
        let mut req = RpcRequest::new(cmd);
        req.context = first.clone();
        assert!(req.attach_context());
        assert_eq!(req.cmd.context(), Some(&first));

        let before = req.cmd.clone();
        req.context = next.clone();
        assert!(req.attach_context());
        let got = req.cmd.context().unwrap();
        assert_eq!(got.region_id, 789);
        assert_eq!(got.api_version(), kvrpcpb::ApiVersion::V2);
        assert_eq!(
            got.keyspace,
            Some(kvrpcpb::context::Keyspace::KeyspaceId(101112))
        );
        assert_eq!(got.keyspace_name, "next-test-keyspace");
        // The earlier copy is untouched: each attachment writes a fresh context.
        assert_eq!(before.context(), Some(&first));
    }
}

// client-go: T-RPC-005 TestTiDB51921
#[test]
fn batch_form_is_independent_of_later_reattachment() {
    // Go's race: re-attaching a context while the batch form was being marshalled. In Rust
    // the batch entry is an owned copy, so later re-attachment cannot reach it; check that
    // for every batchable command.
    for cmd in every_command() {
        let mut req = RpcRequest::new(cmd);
        let Some(batch) = req.cmd.to_batch_request() else {
            assert!(!req.cmd.is_batchable(), "{}", req.cmd_type());
            continue;
        };
        assert!(req.cmd.is_batchable(), "{}", req.cmd_type());
        let encoded = prost::Message::encode_to_vec(&batch);
        for region_id in 1..=8 {
            req.context.region_id = region_id;
            req.attach_context();
            let again = req.cmd.to_batch_request().unwrap();
            assert!(prost::Message::encoded_len(&again) > 0);
        }
        assert_eq!(prost::Message::encode_to_vec(&batch), encoded);
    }
}

#[test]
fn batch_arms_round_trip() {
    // Every batchable command's response arm unwraps to the matching response type.
    let arms: Vec<RespCmd> = vec![
        RespCmd::Get(Default::default()),
        RespCmd::Scan(Default::default()),
        RespCmd::Prewrite(Default::default()),
        RespCmd::Commit(Default::default()),
        RespCmd::Cleanup(Default::default()),
        RespCmd::BatchGet(Default::default()),
        RespCmd::BatchRollback(Default::default()),
        RespCmd::ScanLock(Default::default()),
        RespCmd::ResolveLock(Default::default()),
        RespCmd::DeleteRange(Default::default()),
        RespCmd::RawGet(Default::default()),
        RespCmd::RawBatchGet(Default::default()),
        RespCmd::RawPut(Default::default()),
        RespCmd::RawBatchPut(Default::default()),
        RespCmd::RawDelete(Default::default()),
        RespCmd::RawBatchDelete(Default::default()),
        RespCmd::RawScan(Default::default()),
        RespCmd::RawDeleteRange(Default::default()),
        RespCmd::Coprocessor(Default::default()),
        RespCmd::PessimisticLock(Default::default()),
        RespCmd::PessimisticRollback(Default::default()),
        RespCmd::CheckTxnStatus(Default::default()),
        RespCmd::TxnHeartBeat(Default::default()),
        RespCmd::CheckSecondaryLocks(Default::default()),
        RespCmd::FlashbackToVersion(Default::default()),
        RespCmd::PrepareFlashbackToVersion(Default::default()),
        RespCmd::Flush(Default::default()),
        RespCmd::BufferBatchGet(Default::default()),
        RespCmd::GetHealthFeedback(Default::default()),
        RespCmd::BroadcastTxnStatus(Default::default()),
        RespCmd::Empty(Default::default()),
    ];
    let batchable: Vec<CmdType> = CmdType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_batchable())
        .collect();
    let mut got: Vec<CmdType> =
        arms.into_iter()
            .map(|cmd| {
                let resp = CommandResponse::from_batch_response(
                    tikvpb::batch_commands_response::Response { cmd: Some(cmd) },
                )
                .unwrap();
                resp.cmd_type()
            })
            .collect();
    got.sort();
    assert_eq!(got, batchable);
}

#[test]
fn region_error_responses() {
    let err = errorpb::Error {
        message: "stale".into(),
        epoch_not_match: Some(Default::default()),
        ..Default::default()
    };
    for cmd in every_command() {
        let t = cmd.cmd_type();
        match cmd.region_error_response(err.clone()) {
            Ok(mut resp) => {
                assert_eq!(resp.cmd_type(), t);
                assert_eq!(resp.region_error(), Some(&err), "{t}");
                let wrapped = RpcResponse::new(CommandResponse::Get(Default::default()));
                assert!(wrapped.region_error().is_none());
                assert_eq!(resp.take_region_error(), Some(err.clone()));
                assert!(resp.region_error().is_none());
            }
            Err(e) => {
                assert!(
                    matches!(e.detail(), ErrorDetail::InvalidResponse { .. }),
                    "{t}: {e}"
                );
                assert!(
                    !cmd.has_context()
                        || t.is_streaming()
                        || t == CmdType::BroadcastTxnStatus
                        || t == CmdType::BatchCop
                );
            }
        }
    }
}

#[test]
fn context_only_for_region_commands() {
    for cmd in every_command() {
        let t = cmd.cmd_type();
        let mut req = RpcRequest::new(cmd);
        let r = req.set_region_context(
            7,
            Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 2,
            }),
            Some(metapb::Peer {
                id: 3,
                store_id: 4,
                ..Default::default()
            }),
        );
        if req.cmd.has_context() {
            r.unwrap();
            assert!(req.attach_context());
            let c = req.cmd.context().unwrap();
            assert_eq!(c.region_id, 7);
            assert_eq!(c.peer.as_ref().map(|p| p.store_id), Some(4));
            assert!(!t.is_store_level() || t == CmdType::StoreSafeTS);
        } else {
            assert_eq!(r.unwrap_err().kind(), crate::ErrorKind::InvalidArgument);
            assert!(!req.attach_context());
            assert!(req.cmd.context().is_none());
        }
    }
}

#[test]
fn classifications_follow_client_go() {
    use CmdType as C;
    assert!(!C::Commit.is_interruptible());
    assert!(!C::BatchRollback.is_interruptible());
    assert!(!C::PessimisticRollback.is_interruptible());
    assert!(C::Get.is_interruptible());
    assert!(C::Prewrite.is_txn_write());
    assert!(C::Flush.is_txn_write());
    assert!(!C::Get.is_txn_write());
    assert!(C::RawPut.is_raw_write());
    assert!(!C::RawBatchDelete.is_raw_write());
    assert!(C::Get.is_replica_readable());
    assert!(!C::RawGet.is_replica_readable());
    assert!(C::ScanLock.validates_read_ts());
    assert!(!C::Prewrite.validates_read_ts());
    assert!(C::DebugGetRegionProperties.is_debug());
    assert!(C::CopStream.is_streaming());
    assert!(C::Get.is_read_only());
    assert!(!C::Prewrite.is_read_only());
    assert!(C::StoreSafeTS.is_store_level());
}

#[test]
fn start_ts_per_command() {
    let get = kvrpcpb::GetRequest {
        version: 10,
        ..Default::default()
    };
    assert_eq!(Command::from(get).start_ts(), 10);
    let scan_lock = kvrpcpb::ScanLockRequest {
        max_version: 11,
        ..Default::default()
    };
    assert_eq!(Command::from(scan_lock).start_ts(), 11);
    let cts = kvrpcpb::CheckTxnStatusRequest {
        lock_ts: 12,
        ..Default::default()
    };
    assert_eq!(Command::from(cts).start_ts(), 12);
    let prewrite = kvrpcpb::PrewriteRequest {
        start_version: 13,
        ..Default::default()
    };
    assert_eq!(Command::from(prewrite).start_ts(), 13);
    let cop = coprocessor::Request {
        start_ts: 14,
        ..Default::default()
    };
    assert_eq!(Command::CopStream(cop).start_ts(), 14);
    assert_eq!(
        Command::from(kvrpcpb::RawGetRequest::default()).start_ts(),
        0
    );
    for cmd in every_command() {
        assert_eq!(cmd.start_ts(), 0);
        let _ = cmd.encoded_len();
    }
}

#[test]
fn response_helpers() {
    let resp = RpcResponse::new(kvrpcpb::GetResponse {
        error: Some(Default::default()),
        ..Default::default()
    });
    assert!(resp.has_key_error());
    assert!(resp.expect(CmdType::Get).is_ok());
    let e = resp.expect(CmdType::Scan).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Protocol);
    assert_eq!(
        crate::classify::ResponseClass::of(&resp),
        crate::classify::ResponseClass::KeyError
    );

    let prewrite = RpcResponse::new(kvrpcpb::PrewriteResponse {
        errors: vec![Default::default()],
        exec_details_v2: Some(Default::default()),
        ..Default::default()
    });
    assert!(prewrite.has_key_error());
    assert!(prewrite.resp.exec_details_v2().is_some());
    assert!(prewrite.resp.encoded_len() > 0);

    let ok = RpcResponse::new(kvrpcpb::RawGetResponse::default());
    assert_eq!(
        crate::classify::ResponseClass::of(&ok),
        crate::classify::ResponseClass::Ok
    );
    assert_eq!(crate::classify::ResponseClass::Ok.label(), "ok");
    assert!(ok.resp.exec_details_v2().is_none());

    let region = RpcResponse::new(kvrpcpb::RawGetResponse {
        region_error: Some(errorpb::Error {
            not_leader: Some(Default::default()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        crate::classify::ResponseClass::of(&region).label(),
        "not_leader"
    );
}

#[test]
fn replica_and_stale_read_flags() {
    let mut req = RpcRequest::new(kvrpcpb::GetRequest::default());
    req.set_replica_read(ReplicaReadType::Follower);
    assert!(req.context.replica_read);
    assert_eq!(req.options.replica_read, ReplicaReadType::Follower);
    req.set_replica_read(ReplicaReadType::Leader);
    assert!(!req.context.replica_read);

    req.enable_stale_read();
    assert!(req.context.stale_read);
    assert!(!req.context.replica_read);
    assert_eq!(req.options.replica_read, ReplicaReadType::Mixed);
    req.context.replica_read = true;
    req.disable_stale_read();
    assert!(!req.context.stale_read);
    assert!(req.context.replica_read, "wire flag untouched");
    assert_eq!(req.options.replica_read, ReplicaReadType::Leader);
    assert!(ReplicaReadType::PreferLeader.is_follower_read());
}

#[test]
fn endpoint_type_from_store_labels() {
    let store = |v: &str| metapb::Store {
        labels: vec![metapb::StoreLabel {
            key: ENGINE_LABEL_KEY.into(),
            value: v.into(),
        }],
        ..Default::default()
    };
    assert_eq!(
        EndpointType::of_store(&store("tiflash")),
        EndpointType::TiFlash
    );
    assert_eq!(
        EndpointType::of_store(&store("tiflash_compute")),
        EndpointType::TiFlashCompute
    );
    assert_eq!(EndpointType::of_store(&store("tikv")), EndpointType::TiKV);
    assert_eq!(
        EndpointType::of_store(&metapb::Store::default()),
        EndpointType::TiKV
    );
    assert!(EndpointType::TiFlash.is_tiflash_related());
    assert!(!EndpointType::TiDB.is_tiflash_related());
    assert_eq!(EndpointType::TiFlashCompute.name(), "tiflash_compute");
}

#[test]
fn typed_accessors() {
    let mut cmd = Command::from(kvrpcpb::RawPutRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    assert!(cmd.raw_put().is_some());
    assert!(cmd.get().is_none());
    cmd.raw_put_mut().unwrap().value = b"v".to_vec();
    assert_eq!(cmd.raw_put().unwrap().value, b"v");
    assert!(cmd.get_mut().is_none());
}

#[tokio::test]
async fn response_stream_yields_items() {
    let items = vec![
        Ok(coprocessor::Response::default()),
        Err(Error::new(ErrorDetail::Canceled)),
    ];
    let mut s = ResponseStream::new(futures_util_stream(items));
    assert!(format!("{s:?}").contains("ResponseStream"));
    let first = std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await;
    assert!(matches!(first, Some(Ok(_))));
    let second = std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await;
    assert!(matches!(second, Some(Err(_))));
    let end = std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await;
    assert!(end.is_none());
}

/// A stream over a vector, without pulling in `futures-util`.
fn futures_util_stream<T: Send + Unpin + 'static>(
    items: Vec<T>,
) -> impl Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T: Unpin> Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[test]
fn batch_conversions_are_inverse() {
    for cmd in every_command() {
        match cmd.to_batch_request() {
            Some(entry) => assert_eq!(Command::from_batch_request(entry).unwrap(), cmd),
            None => assert!(!cmd.is_batchable()),
        }
    }
    let empty = tikvpb::batch_commands_request::Request::default();
    assert!(Command::from_batch_request(empty).is_err());

    let resp = CommandResponse::RawGet(kvrpcpb::RawGetResponse {
        value: b"v".to_vec(),
        ..Default::default()
    });
    let entry = resp.into_batch_response().unwrap();
    match CommandResponse::from_batch_response(entry).unwrap() {
        CommandResponse::RawGet(r) => assert_eq!(r.value, b"v"),
        other => panic!("{other:?}"),
    }
    let cop = CommandResponse::Cop(Default::default());
    assert!(cop.into_batch_response().is_some());
    let stream = CommandResponse::StoreSafeTS(Default::default());
    assert!(stream.into_batch_response().is_none());
}
