//! The decisions of the send loop: what a transport error (TE-1 .. TE-7) or a region error
//! (RE-0 .. RE-24) means for the call, with every cache side effect client-go performs.

use tikv_proto::errorpb;

use crate::backoff::{BackoffKind, SharedBackoffer};
use crate::locate::{ConnectionControl, EpochNotMatchOutcome, InvalidReason, RegionVerId};
use crate::metrics::names;
use crate::replica::{RegionServices, ReplicaSelector, SelectorSlot};
use crate::request::{CmdType, RpcRequest};
use crate::{Error, ErrorDetail, Result};

/// What the loop does after a region error.
#[derive(Debug)]
pub(super) enum RegionErrorDecision {
    /// Send again (the selector picks the target).
    Retry,
    /// Stop and hand the response carrying the region error to the caller (SL-7).
    ReturnToCaller,
    /// Stop with this error.
    Fail(Error),
}

/// The per-call view the handlers need (client-go's `RegionRequestSender` + `sendReqState`).
pub(super) struct Sender<'a> {
    pub(super) svc: &'a RegionServices,
    pub(super) conn: Option<&'a dyn ConnectionControl>,
    pub(super) slot: &'a SelectorSlot,
    pub(super) bo: &'a SharedBackoffer,
    pub(super) cmd: CmdType,
    /// The request's `max_execution_duration_ms` (TE-3 "configurable timeout").
    pub(super) max_exec_ms: u64,
}

/// `MaxExecutionDurationMs` as client-go sets it before the loop (SL-2 step 4): the
/// caller's explicit value, else the per-attempt timeout, else "not configurable".
pub(super) fn effective_max_exec_ms(req: &RpcRequest) -> u64 {
    if req.context.max_execution_duration_ms != 0 {
        return req.context.max_execution_duration_ms;
    }
    req.options.timeout.map_or(u64::MAX, |t| {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Runs `f` on the call's selector, if there is one, and puts it back.
async fn with_selector<R, F>(slot: &SelectorSlot, f: F) -> Option<R>
where
    F: AsyncFnOnce(&mut ReplicaSelector) -> R,
{
    let mut sel = slot.take()?;
    let r = f(&mut sel).await;
    slot.put(sel);
    Some(r)
}

fn backoff_reason(msg: String) -> Error {
    Error::new(ErrorDetail::Retryable(msg))
}

impl Sender<'_> {
    /// The region version of the call (from the selector; `None` without one).
    fn ver(&self, base: &RpcRequest) -> RegionVerId {
        self.slot
            .routed_region()
            .or_else(|| base.target.region.clone())
            .map(|r| r.ver)
            .unwrap_or_default()
    }

    /// The last target's store and address.
    fn target(&self, base: &RpcRequest) -> (u64, String) {
        match self.slot.take() {
            Some(sel) => {
                let t = (
                    sel.target_store().unwrap_or(0),
                    sel.target_addr().to_owned(),
                );
                self.slot.put(sel);
                t
            }
            None => (base.target.store_id, base.target.addr.clone()),
        }
    }

    /// `onSendFail` (TE-1 .. TE-7): `Ok` to retry; `Err` ends the call (the caller then
    /// sees the transport error itself, SL-3 step 2).
    pub(super) async fn on_send_fail(&self, err: &Error, base: &RpcRequest) -> Result<()> {
        let (store_id, _) = self.target(base);
        let label = if matches!(err.detail(), ErrorDetail::Canceled) {
            names::labels::CONTEXT_CANCELED
        } else if err
            .grpc_status()
            .is_some_and(|s| s.code() == tonic::Code::Cancelled)
        {
            names::labels::GRPC_CANCELED
        } else {
            err.kind().label()
        };
        metrics::counter!(
            names::RPC_ERR_TOTAL,
            names::labels::TYPE => label,
            names::labels::STORE => store_id.to_string()
        )
        .increment(1);
        // TE-1: canceled by the caller.
        if matches!(err.detail(), ErrorDetail::Canceled) || self.bo.cancel_token().is_cancelled() {
            return Err(Error::new(ErrorDetail::Canceled));
        }
        // TE-3: a read under a configurable timeout retries at once on another replica.
        if err.is_timeout() {
            let cmd = self.cmd;
            let ms = self.max_exec_ms;
            if with_selector(self.slot, async |s: &mut ReplicaSelector| {
                s.on_read_req_configurable_timeout(cmd, ms)
            })
            .await
                == Some(true)
            {
                return Ok(());
            }
        }
        // TE-4: a remote gRPC `Cancelled` (keepalive, server side) closes the pool it came
        // from.
        if err
            .grpc_status()
            .is_some_and(|s| s.code() == tonic::Code::Cancelled)
        {
            tracing::warn!(error = %err, "received a gRPC cancel signal");
            if let Some(conn) = self.conn {
                conn.close_for_error(err);
            }
        }
        // TE-5: resource control refused or could not admit the request. It never reached
        // the store, so the store is not suspected (no cache feedback) and nothing is
        // retried; the caller sees the error itself.
        if err.is_resource_group_error() {
            return Err(Error::new(err.detail().clone()));
        }
        // TE-6: cache feedback.
        with_selector(self.slot, async |s: &mut ReplicaSelector| {
            s.on_send_failure().await;
        })
        .await;
        // TE-7.
        self.bo
            .backoff(
                BackoffKind::TiKVRpc,
                backoff_reason(format!(
                    "send tikv request error: {err}, try next peer later"
                )),
            )
            .await
    }

    /// `onRegionError` (RE-0 .. RE-24), in client-go's order.
    pub(super) async fn on_region_error(
        &self,
        e: &errorpb::Error,
        base: &RpcRequest,
    ) -> RegionErrorDecision {
        use RegionErrorDecision::{Fail, Retry, ReturnToCaller};
        match self.decide(e, base).await {
            Ok(true) => Retry,
            Ok(false) => ReturnToCaller,
            Err(err) => Fail(err),
        }
    }

    /// `Ok(true)` retry, `Ok(false)` return the region error, `Err` fail.
    async fn decide(&self, e: &errorpb::Error, base: &RpcRequest) -> Result<bool> {
        let ver = self.ver(base);
        let locator = &self.svc.locator;
        let has_sel = self.slot.routed_region().is_some();
        let (store_id, addr) = self.target(base);
        metrics::counter!(
            names::REGION_ERR_TOTAL,
            names::labels::TYPE => crate::classify::RegionErrorKind::of(e).label(),
            names::labels::STORE => store_id.to_string()
        )
        .increment(1);
        tracing::debug!(
            region = ver.id,
            store = store_id,
            error = crate::classify::RegionErrorKind::of(e).label(),
            "region error"
        );

        // RE-23: the caller decides what an undetermined write means.
        if e.undetermined_result.is_some() {
            return Ok(false);
        }
        // RE-1.
        if let Some(nl) = &e.not_leader {
            if has_sel {
                let bo = self.bo;
                return with_selector(self.slot, async |s: &mut ReplicaSelector| {
                    s.on_not_leader(bo, nl).await
                })
                .await
                .unwrap_or(Ok(true));
            }
            return match &nl.leader {
                None => {
                    locator.invalidate_region(&ver, InvalidReason::NoLeader);
                    self.bo
                        .backoff(
                            BackoffKind::RegionScheduling,
                            backoff_reason(format!("not leader, region {}", ver.id)),
                        )
                        .await?;
                    Ok(false)
                }
                Some(leader) => {
                    let idx = base.target.region.as_ref().map_or(0, |r| r.work_tikv_idx);
                    locator.update_leader(&ver, Some(leader), idx);
                    Ok(true)
                }
            };
        }
        // RE-2: on budget exhaustion the region error itself goes back [quirk].
        if e.disk_full.is_some() {
            let r = self
                .bo
                .backoff(BackoffKind::TiKVDiskFull, Error::from(e.clone()))
                .await;
            return Ok(r.is_ok());
        }
        // RE-3, RE-4.
        if e.recovery_in_progress.is_some() {
            locator.invalidate_region(&ver, InvalidReason::Other);
            self.bo
                .backoff(
                    BackoffKind::RegionRecoveryInProgress,
                    Error::from(e.clone()),
                )
                .await?;
            return Ok(false);
        }
        if e.is_witness.is_some() {
            locator.invalidate_region(&ver, InvalidReason::Other);
            self.bo
                .backoff(BackoffKind::IsWitness, Error::from(e.clone()))
                .await?;
            return Ok(false);
        }
        // RE-5, RE-6.
        if let Some(f) = &e.flashback_in_progress {
            let retry = with_selector(self.slot, async |s: &mut ReplicaSelector| {
                s.on_flashback_in_progress()
            })
            .await
            .unwrap_or(false);
            if retry {
                return Ok(true);
            }
            return Err(
                Error::new(ErrorDetail::RegionFlashbackInProgress).with_source(format!(
                    "region {} is in flashback progress, FlashbackStartTS is {}",
                    f.region_id, f.flashback_start_ts
                )),
            );
        }
        if let Some(f) = &e.flashback_not_prepared {
            return Err(
                Error::new(ErrorDetail::RegionFlashbackNotPrepared).with_source(format!(
                    "region {} is not prepared for the flashback",
                    f.region_id
                )),
            );
        }
        // RE-7.
        if e.region_not_found.is_some() {
            if has_sel {
                return Ok(with_selector(self.slot, async |s: &mut ReplicaSelector| {
                    s.on_region_not_found()
                })
                .await
                .unwrap_or(false));
            }
            locator.invalidate_region(&ver, InvalidReason::Other);
            return Ok(false);
        }
        // RE-8.
        if e.key_not_in_region.is_some() {
            tracing::warn!(region = ver.id, "tikv reports KeyNotInRegion");
            locator.invalidate_region(&ver, InvalidReason::Other);
            return Ok(false);
        }
        // RE-9.
        if let Some(m) = &e.epoch_not_match {
            let outcome = locator
                .on_epoch_not_match(self.bo.clone(), ver, store_id, m.current_regions.clone())
                .await?;
            if outcome == EpochNotMatchOutcome::Retry {
                return Ok(true);
            }
            if has_sel {
                locator.invalidate_region(&ver, InvalidReason::Other);
            }
            return Ok(false);
        }
        // RE-10.
        if let Some(b) = &e.bucket_version_not_match {
            locator.on_bucket_version_not_match(&ver, b.version, b.keys.clone());
            return Ok(false);
        }
        // RE-11.
        if let Some(busy) = &e.server_is_busy {
            if has_sel && busy.reason.contains("deadline is exceeded") {
                let (cmd, ms) = (self.cmd, self.max_exec_ms);
                if with_selector(self.slot, async |s: &mut ReplicaSelector| {
                    s.on_read_req_configurable_timeout(cmd, ms)
                })
                .await
                    == Some(true)
                {
                    return Ok(true);
                }
            }
            if has_sel {
                let (bo, cmd) = (self.bo, self.cmd);
                let batched_cop = base.cmd.cop().is_some_and(|c| !c.tasks.is_empty());
                return with_selector(self.slot, async |s: &mut ReplicaSelector| {
                    s.on_server_is_busy(bo, busy, cmd, batched_cop).await
                })
                .await
                .unwrap_or(Ok(true));
            }
            let kind = if base.options.endpoint.is_tiflash_related() {
                BackoffKind::TiFlashServerBusy
            } else {
                BackoffKind::TiKVServerBusy
            };
            self.bo.backoff(kind, Error::from(e.clone())).await?;
            return Ok(true);
        }
        // RE-12.
        if e.stale_command.is_some() {
            if !has_sel {
                self.bo
                    .backoff(BackoffKind::StaleCommand, Error::from(e.clone()))
                    .await?;
            }
            return Ok(true);
        }
        // RE-13: the address may now belong to another store.
        if e.store_not_match.is_some() {
            self.svc.stores.mark_need_check(store_id);
            locator.invalidate_region(&ver, InvalidReason::Other);
            if let Some(conn) = self.conn
                && !addr.is_empty()
            {
                conn.close_addr(&addr);
            }
            return Ok(false);
        }
        // RE-14.
        if e.raft_entry_too_large.is_some() {
            return Err(Error::from(e.clone()));
        }
        // RE-15 .. RE-18.
        if e.max_timestamp_not_synced.is_some() {
            self.bo
                .backoff(BackoffKind::MaxTsNotSynced, Error::from(e.clone()))
                .await?;
            return Ok(true);
        }
        if e.region_not_initialized.is_some() {
            self.bo
                .backoff(BackoffKind::RegionNotInitialized, Error::from(e.clone()))
                .await?;
            return Ok(true);
        }
        if e.read_index_not_ready.is_some() || e.proposal_in_merging_mode.is_some() {
            self.bo
                .backoff(BackoffKind::RegionScheduling, Error::from(e.clone()))
                .await?;
            return Ok(true);
        }
        // RE-19.
        if e.data_is_not_ready.is_some() {
            with_selector(self.slot, async |s: &mut ReplicaSelector| {
                s.on_data_is_not_ready();
            })
            .await;
            return Ok(true);
        }
        // RE-20.
        if e.message.contains("Deadline is exceeded") && has_sel {
            let (cmd, ms) = (self.cmd, self.max_exec_ms);
            if with_selector(self.slot, async |s: &mut ReplicaSelector| {
                s.on_read_req_configurable_timeout(cmd, ms)
            })
            .await
                == Some(true)
            {
                return Ok(true);
            }
        }
        // RE-21.
        if e.mismatch_peer_id.is_some() {
            if has_sel {
                locator.invalidate_region(&ver, InvalidReason::Other);
            }
            return Ok(false);
        }
        // RE-22.
        if e.message.contains("invalid max_ts update") {
            return Err(Error::from(e.clone()));
        }
        // RE-24: anything else re-hits the selector's choice without backoff [quirk].
        if has_sel {
            return Ok(true);
        }
        if ver.id != 0 {
            locator.invalidate_region(&ver, InvalidReason::Other);
        }
        Ok(false)
    }
}
