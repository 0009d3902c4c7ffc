//! The in-process mock PD as the region caches' PD source: [`RegionMetaClient`] over
//! [`MockPd`]'s pdpb handlers, so a client can run against the embedded mock without
//! sockets (client-go's tests wire mocktikv's `pdClient` the same way).

use futures_core::future::BoxFuture;
use tikv_layers::Result;
use tikv_proto::{metapb, pdpb};

use super::MockPd;
use crate::pd::{KeyRange, RegionInfo, RegionMetaClient, RegionOptions};

fn status(s: tonic::Status) -> tikv_layers::Error {
    s.into()
}

fn header_error(h: Option<&pdpb::ResponseHeader>) -> Result<()> {
    if let Some(e) = h.and_then(|h| h.error.as_ref())
        && e.r#type() != pdpb::ErrorType::Ok
    {
        return Err(tikv_layers::ErrorDetail::Pd(Box::new(e.clone())).into());
    }
    Ok(())
}

fn region_resp(r: pdpb::GetRegionResponse) -> Result<Option<RegionInfo>> {
    header_error(r.header.as_ref())?;
    Ok(r.region.map(|region| RegionInfo {
        region,
        leader: r.leader.filter(|l| l.id != 0),
        down_peers: r.down_peers,
        pending_peers: r.pending_peers,
        buckets: r.buckets,
    }))
}

fn pd_regions(rs: Vec<pdpb::Region>) -> Vec<RegionInfo> {
    rs.into_iter()
        .filter_map(|r| {
            Some(RegionInfo {
                region: r.region?,
                leader: r.leader.filter(|l| l.id != 0),
                down_peers: r.down_peers,
                pending_peers: r.pending_peers,
                buckets: r.buckets,
            })
        })
        .collect()
}
impl RegionMetaClient for MockPd {
    fn get_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        if let Some(refused) = self.refuse_follower(opts.allow_follower) {
            return Box::pin(std::future::ready(Err(status(refused))));
        }
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .get_region(pdpb::GetRegionRequest {
                    region_key: key,
                    need_buckets: opts.need_buckets,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            region_resp(r)
        })
    }
    fn get_prev_region(
        &self,
        key: Vec<u8>,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        if let Some(refused) = self.refuse_follower(opts.allow_follower) {
            return Box::pin(std::future::ready(Err(status(refused))));
        }
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .get_prev_region(pdpb::GetRegionRequest {
                    region_key: key,
                    need_buckets: opts.need_buckets,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            region_resp(r)
        })
    }
    fn get_region_by_id(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<RegionInfo>>> {
        if let Some(refused) = self.refuse_follower(opts.allow_follower) {
            return Box::pin(std::future::ready(Err(status(refused))));
        }
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .get_region_by_id(pdpb::GetRegionByIdRequest {
                    region_id: id,
                    need_buckets: opts.need_buckets,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            region_resp(r)
        })
    }
    fn scan_regions(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        if let Some(refused) = self.refuse_follower(opts.allow_follower) {
            return Box::pin(std::future::ready(Err(status(refused))));
        }
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .scan_regions(pdpb::ScanRegionsRequest {
                    start_key: start,
                    end_key: end,
                    limit,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            header_error(r.header.as_ref())?;
            Ok(pd_regions(r.regions))
        })
    }
    fn batch_scan_regions(
        &self,
        ranges: Vec<KeyRange>,
        limit: i32,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<RegionInfo>>> {
        if let Some(refused) = self.refuse_follower(opts.allow_follower) {
            return Box::pin(std::future::ready(Err(status(refused))));
        }
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .batch_scan_regions(pdpb::BatchScanRegionsRequest {
                    ranges: ranges
                        .into_iter()
                        .map(|r| pdpb::KeyRange {
                            start_key: r.start,
                            end_key: r.end,
                        })
                        .collect(),
                    limit,
                    need_buckets: opts.need_buckets,
                    contain_all_key_range: opts.contain_all_key_range,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            header_error(r.header.as_ref())?;
            Ok(pd_regions(r.regions))
        })
    }
    fn get_store(
        &self,
        id: u64,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Option<metapb::Store>>> {
        if let Some(refused) = self.refuse_follower(opts.allow_follower) {
            return Box::pin(std::future::ready(Err(status(refused))));
        }
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .get_store(pdpb::GetStoreRequest {
                    store_id: id,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            header_error(r.header.as_ref())?;
            Ok(r.store)
        })
    }
    fn get_all_stores(
        &self,
        opts: RegionOptions,
    ) -> BoxFuture<'static, Result<Vec<metapb::Store>>> {
        let pd = self.clone();
        Box::pin(async move {
            let r = pd
                .get_all_stores(pdpb::GetAllStoresRequest {
                    exclude_tombstone_stores: opts.exclude_tombstone,
                    ..Default::default()
                })
                .await
                .map_err(status)?;
            header_error(r.header.as_ref())?;
            Ok(r.stores)
        })
    }
    fn cluster_id(&self) -> u64 {
        MockPd::cluster_id(self)
    }
}

/// The mock PD's TSO as the oracle's timestamp source, so the client's timestamps and the
/// mock's (async-commit, 1PC) come from one clock.
impl crate::oracle::TimestampSource for MockPd {
    fn get_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let pd = self.clone();
        Box::pin(async move { MockPd::get_ts(&pd).await.map_err(status) })
    }

    fn get_min_ts(&self) -> BoxFuture<'static, Result<u64>> {
        let pd = self.clone();
        Box::pin(async move {
            let r = MockPd::get_min_ts(&pd, pdpb::GetMinTsRequest::default())
                .await
                .map_err(status)?;
            header_error(r.header.as_ref())?;
            let ts = r.timestamp.unwrap_or_default();
            Ok(crate::oracle::compose_ts(ts.physical, ts.logical))
        })
    }

    fn set_external_timestamp(&self, ts: u64) -> BoxFuture<'static, Result<()>> {
        let pd = self.clone();
        Box::pin(async move {
            let r = MockPd::set_external_timestamp(
                &pd,
                pdpb::SetExternalTimestampRequest {
                    timestamp: ts,
                    ..Default::default()
                },
            )
            .await
            .map_err(status)?;
            header_error(r.header.as_ref())
        })
    }

    fn get_external_timestamp(&self) -> BoxFuture<'static, Result<u64>> {
        let pd = self.clone();
        Box::pin(async move {
            let r =
                MockPd::get_external_timestamp(&pd, pdpb::GetExternalTimestampRequest::default())
                    .await
                    .map_err(status)?;
            header_error(r.header.as_ref())?;
            Ok(r.timestamp)
        })
    }
}
