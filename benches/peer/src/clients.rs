//! The clients under test, each behind one [`Side`] so the harness drives them alike.
//!
//! - [`Side::Ours`]: `tikv::raw::Client` with its default configuration (batch-commands
//!   transport), connected to PD like any user would.
//! - [`Side::OursUnary`]: the same with `max_batch_size = 0` (one unary RPC per request, the
//!   shape tikv-client 0.4 uses); only when `PEER_BENCH_UNARY=1`.
//! - [`Side::Theirs`]: `tikv_client::RawClient::new(pd_endpoints)` of tikv-client 0.4 with its
//!   defaults (API V1 raw mode, no keyspace, prometheus metrics on).
//! - [`Side::Bare`]: a bare tonic `TikvClient::raw_get` per key, with the region context and
//!   store resolved from PD once up front: the floor for the raw get workload.

use std::collections::HashMap;

use tikv::config::Config;
use tikv::proto::kvrpcpb;
use tikv::proto::pdpb::{self, pd_client::PdClient};
use tikv::proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::{Channel, Endpoint};

use crate::keys;

/// What one operation does; the same sequence of keys for every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// One raw get of an existing 100-byte value.
    Get,
    /// One raw put of a 100-byte value.
    Put,
    /// One raw batch get of 100 keys spread over five regions.
    BatchGet,
    /// One raw scan of 1000 rows over five regions (limit 1000).
    Scan,
}

impl Workload {
    /// Every workload, in table order.
    pub(crate) const ALL: [Workload; 4] = [
        Workload::Get,
        Workload::Put,
        Workload::BatchGet,
        Workload::Scan,
    ];

    /// The row label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Get => "raw get",
            Workload::Put => "raw put",
            Workload::BatchGet => "batch get (100 keys)",
            Workload::Scan => "scan (1000 rows, 5 regions)",
        }
    }

    /// The short name `PEER_BENCH_ONLY` takes.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Put => "put",
            Workload::BatchGet => "batch-get",
            Workload::Scan => "scan",
        }
    }
}

/// One client under test.
pub(crate) enum Side {
    /// Our raw client, default configuration.
    Ours(tikv::raw::Client),
    /// Our raw client over the unary transport.
    OursUnary(tikv::raw::Client),
    /// tikv-client 0.4.
    Theirs(tikv_client::RawClient),
    /// Bare tonic calls (raw get only).
    Bare(Bare),
}

impl Side {
    /// The column label.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Side::Ours(_) => "ours",
            Side::OursUnary(_) => "ours-unary",
            Side::Theirs(_) => "tikv-client",
            Side::Bare(_) => "bare-tonic",
        }
    }

    /// Whether this side runs `w` (the bare floor only serves raw get).
    pub(crate) fn runs(&self, w: Workload) -> bool {
        !matches!(self, Side::Bare(_)) || w == Workload::Get
    }

    /// Runs the `n`-th operation of `w` and checks its answer.
    pub(crate) async fn exec(&self, w: Workload, n: usize) -> Result<(), String> {
        match self {
            Side::Ours(c) | Side::OursUnary(c) => ours(c, w, n).await,
            Side::Theirs(c) => theirs(c, w, n).await,
            Side::Bare(b) => match w {
                Workload::Get => b.get(n).await,
                other => Err(format!("bare-tonic does not run {other:?}")),
            },
        }
    }
}

fn expect_value(row: usize, got: Option<&[u8]>) -> Result<(), String> {
    if got == Some(keys::value(row).as_slice()) {
        Ok(())
    } else {
        Err(format!("row {row}: unexpected value {got:?}"))
    }
}

fn expect_len(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got} results, want {want}"))
    }
}

async fn ours(c: &tikv::raw::Client, w: Workload, n: usize) -> Result<(), String> {
    let e = |e: tikv::layers::Error| e.to_string();
    match w {
        Workload::Get => {
            let row = keys::get_row(n);
            let v = c.get(keys::row(row)).await.map_err(e)?;
            expect_value(row, v.as_deref())
        }
        Workload::Put => c.put(keys::put_key(n), keys::put_value()).await.map_err(e),
        Workload::BatchGet => {
            let vs = c.batch_get(keys::batch_keys(n)).await.map_err(e)?;
            // Aligned with the input; every key exists.
            expect_len("batch get", vs.iter().flatten().count(), keys::BATCH)
        }
        Workload::Scan => {
            let (start, end) = keys::scan_range();
            let rows = c.scan(start..end, keys::ROWS as u32).await.map_err(e)?;
            expect_len("scan", rows.len(), keys::ROWS)
        }
    }
}

async fn theirs(c: &tikv_client::RawClient, w: Workload, n: usize) -> Result<(), String> {
    let e = |e: tikv_client::Error| e.to_string();
    match w {
        Workload::Get => {
            let row = keys::get_row(n);
            let v = c.get(keys::row(row)).await.map_err(e)?;
            expect_value(row, v.as_deref())
        }
        Workload::Put => c.put(keys::put_key(n), keys::put_value()).await.map_err(e),
        Workload::BatchGet => {
            let pairs = c.batch_get(keys::batch_keys(n)).await.map_err(e)?;
            expect_len("batch get", pairs.len(), keys::BATCH)
        }
        Workload::Scan => {
            let (start, end) = keys::scan_range();
            let rows = c.scan(start..end, keys::ROWS as u32).await.map_err(e)?;
            expect_len("scan", rows.len(), keys::ROWS)
        }
    }
}

/// Builds our raw client against PD at `pd`; `unary` turns batch commands off.
pub(crate) async fn connect_ours(pd: &str, unary: bool) -> Result<tikv::raw::Client, String> {
    let mut config = Config::default();
    if unary {
        config.tikv_client = config.tikv_client.with_max_batch_size(0);
    }
    tikv::raw::Client::builder()
        .pd_endpoints(&[pd])
        .config(config)
        .build()
        .await
        .map_err(|e| format!("our client: {e}"))
}

/// Builds tikv-client 0.4's raw client the way its docs do.
pub(crate) async fn connect_theirs(pd: &str) -> Result<tikv_client::RawClient, String> {
    tikv_client::RawClient::new(vec![pd.to_owned()])
        .await
        .map_err(|e| format!("tikv-client: {e}"))
}

/// The bare floor: per get key, a tonic client to the leader's store and the region context
/// PD reported, so a get is exactly one `RawGet` RPC.
pub(crate) struct Bare {
    routes: Vec<(TikvClient<Channel>, kvrpcpb::Context)>,
}

impl Bare {
    /// Resolves every get key's region and leader store from PD, one channel per store.
    pub(crate) async fn connect(pd_addr: &str) -> Result<Bare, String> {
        let mut pd = PdClient::new(channel(pd_addr).await?);
        let mut stores: HashMap<u64, TikvClient<Channel>> = HashMap::new();
        let mut routes = Vec::with_capacity(keys::GET_KEYS);
        for n in 0..keys::GET_KEYS {
            let r = pd
                .get_region(pdpb::GetRegionRequest {
                    region_key: keys::row(keys::get_row(n)),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("PD get region: {e}"))?
                .into_inner();
            let (Some(region), Some(leader)) = (r.region, r.leader) else {
                return Err("PD returned no region or leader".to_owned());
            };
            let client = match stores.get(&leader.store_id) {
                Some(c) => c.clone(),
                None => {
                    let store = pd
                        .get_store(pdpb::GetStoreRequest {
                            store_id: leader.store_id,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| format!("PD get store: {e}"))?
                        .into_inner()
                        .store
                        .ok_or("PD returned no store")?;
                    let c = TikvClient::new(channel(&store.address).await?);
                    stores.insert(leader.store_id, c.clone());
                    c
                }
            };
            let ctx = kvrpcpb::Context {
                region_id: region.id,
                region_epoch: region.region_epoch,
                peer: Some(leader),
                ..Default::default()
            };
            routes.push((client, ctx));
        }
        Ok(Bare { routes })
    }

    /// One bare `RawGet` of the `n`-th get key.
    async fn get(&self, n: usize) -> Result<(), String> {
        let (client, ctx) = &self.routes[n % self.routes.len()];
        let row = keys::get_row(n);
        let req = kvrpcpb::RawGetRequest {
            context: Some(ctx.clone()),
            key: keys::row(row),
            ..Default::default()
        };
        let resp = client
            .clone()
            .raw_get(req)
            .await
            .map_err(|e| format!("bare raw get: {e}"))?
            .into_inner();
        if resp.region_error.is_some() || !resp.error.is_empty() {
            return Err(format!("bare raw get: {resp:?}"));
        }
        expect_value(row, (!resp.not_found).then_some(resp.value.as_slice()))
    }
}

async fn channel(addr: &str) -> Result<Channel, String> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri)
        .map_err(|e| format!("endpoint {addr}: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("connect {addr}: {e}"))
}
