//! The keyspace registry of the mock PD (spec MC-1.18.1) and its `keyspacepb.Keyspace` calls.
//!
//! mocktikv has no keyspaces; the registry lets API-V2 paths be tested without a cluster.
//! Keyspace 0 is `DEFAULT` and always exists; [`MockPd::create_keyspace`] allocates ids from 1,
//! state `ENABLED`. `WatchKeyspaces` streams the whole list, then the whole list again after
//! every change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tikv_layers::{Error, ErrorDetail};
use tikv_proto::{keyspacepb, pdpb};
use tokio::sync::watch;
use tonic::Status;

use super::pd::MockPd;

/// The registry: keyspaces by id, plus a change counter watchers follow.
#[derive(Debug)]
pub(crate) struct Keyspaces {
    by_id: Mutex<BTreeMap<u32, keyspacepb::KeyspaceMeta>>,
    changes: watch::Sender<u64>,
}

fn meta(
    id: u32,
    name: &str,
    now_s: i64,
    config: HashMap<String, String>,
) -> keyspacepb::KeyspaceMeta {
    keyspacepb::KeyspaceMeta {
        keyspace: Some(keyspacepb::keyspace_meta::Keyspace::Id(id)),
        name: name.to_owned(),
        state: keyspacepb::KeyspaceState::Enabled as i32,
        created_at: now_s,
        state_changed_at: now_s,
        config,
    }
}

impl Keyspaces {
    pub(crate) fn new() -> Keyspaces {
        let mut by_id = BTreeMap::new();
        by_id.insert(0, meta(0, "DEFAULT", 0, HashMap::new()));
        Keyspaces {
            by_id: Mutex::new(by_id),
            changes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, keyspacepb::KeyspaceMeta>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }
}

/// The largest keyspace id (ids are 24 bits: they form the 3-byte key prefix).
pub const MAX_KEYSPACE_ID: u32 = 0x00FF_FFFF;

fn not_found(cluster_id: u64, what: String) -> Option<pdpb::ResponseHeader> {
    Some(pdpb::ResponseHeader {
        cluster_id,
        error: Some(pdpb::Error {
            r#type: pdpb::ErrorType::EntryNotFound as i32,
            message: what,
        }),
    })
}

fn id_of(k: Option<&keyspacepb::load_keyspace_by_id_request::Keyspace>) -> u32 {
    match k {
        Some(keyspacepb::load_keyspace_by_id_request::Keyspace::Id(id)) => *id,
        _ => 0,
    }
}

impl MockPd {
    /// Creates an `ENABLED` keyspace with the next free id (from 1) and returns its meta
    /// (MC-1.18.1). `config` pairs become the keyspace config (e.g. `gc_management_type`).
    ///
    /// # Errors
    ///
    /// When a keyspace of that name exists or the 24-bit id space is exhausted.
    pub fn create_keyspace(
        &self,
        name: &str,
        config: &[(&str, &str)],
    ) -> Result<keyspacepb::KeyspaceMeta, Error> {
        let ks = self.keyspaces();
        let now_s = i64::try_from(self.cluster().clock().now_ms() / 1000).unwrap_or(i64::MAX);
        let created = {
            let mut m = ks.lock();
            if m.values().any(|k| k.name == name) {
                return Err(ErrorDetail::InvalidArgument(format!("keyspace {name} exists")).into());
            }
            let id = m.keys().next_back().map_or(1, |i| i + 1).max(1);
            if id > MAX_KEYSPACE_ID {
                return Err(ErrorDetail::InvalidArgument("keyspace ids exhausted".into()).into());
            }
            let cfg = config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let k = meta(id, name, now_s, cfg);
            m.insert(id, k.clone());
            k
        };
        ks.changed();
        Ok(created)
    }

    /// The keyspace named `name`, if any.
    pub fn keyspace_by_name(&self, name: &str) -> Option<keyspacepb::KeyspaceMeta> {
        self.keyspaces()
            .lock()
            .values()
            .find(|k| k.name == name)
            .cloned()
    }

    /// `LoadKeyspace`: the meta, or header error `ENTRY_NOT_FOUND`.
    pub async fn load_keyspace(
        &self,
        req: keyspacepb::LoadKeyspaceRequest,
    ) -> Result<keyspacepb::LoadKeyspaceResponse, Status> {
        self.enter("LoadKeyspace", req.header.as_ref()).await?;
        let cid = self.cluster_id();
        Ok(match self.keyspace_by_name(&req.name) {
            Some(k) => keyspacepb::LoadKeyspaceResponse {
                header: self.h(),
                keyspace: Some(k),
            },
            None => keyspacepb::LoadKeyspaceResponse {
                header: not_found(cid, format!("keyspace {} not found", req.name)),
                keyspace: None,
            },
        })
    }

    /// `LoadKeyspaceByID`: the meta, or header error `ENTRY_NOT_FOUND`.
    pub async fn load_keyspace_by_id(
        &self,
        req: keyspacepb::LoadKeyspaceByIdRequest,
    ) -> Result<keyspacepb::LoadKeyspaceResponse, Status> {
        self.enter("LoadKeyspaceByID", req.header.as_ref()).await?;
        let id = id_of(req.keyspace.as_ref());
        let found = self.keyspaces().lock().get(&id).cloned();
        Ok(keyspacepb::LoadKeyspaceResponse {
            header: match found {
                Some(_) => self.h(),
                None => not_found(self.cluster_id(), format!("keyspace id {id} not found")),
            },
            keyspace: found,
        })
    }

    /// `UpdateKeyspaceState`: sets the state (e.g. `ARCHIVED`) and returns the meta.
    pub async fn update_keyspace_state(
        &self,
        req: keyspacepb::UpdateKeyspaceStateRequest,
    ) -> Result<keyspacepb::UpdateKeyspaceStateResponse, Status> {
        self.enter("UpdateKeyspaceState", req.header.as_ref())
            .await?;
        let id = match req.keyspace {
            Some(keyspacepb::update_keyspace_state_request::Keyspace::Id(id)) => id,
            _ => 0,
        };
        let now_s = i64::try_from(self.cluster().clock().now_ms() / 1000).unwrap_or(i64::MAX);
        let ks = self.keyspaces();
        let updated = ks.lock().get_mut(&id).map(|k| {
            if k.state != req.state {
                k.state = req.state;
                k.state_changed_at = now_s;
            }
            k.clone()
        });
        if updated.is_some() {
            ks.changed();
        }
        Ok(keyspacepb::UpdateKeyspaceStateResponse {
            header: match updated {
                Some(_) => self.h(),
                None => not_found(self.cluster_id(), format!("keyspace id {id} not found")),
            },
            keyspace: updated,
        })
    }

    /// `GetAllKeyspaces`: keyspaces with id `>= start_id` in id order, at most `limit`
    /// (0 = no limit).
    pub async fn get_all_keyspaces(
        &self,
        req: keyspacepb::GetAllKeyspacesRequest,
    ) -> Result<keyspacepb::GetAllKeyspacesResponse, Status> {
        self.enter("GetAllKeyspaces", req.header.as_ref()).await?;
        let start = match req.start_keyspace {
            Some(keyspacepb::get_all_keyspaces_request::StartKeyspace::StartId(id)) => id,
            _ => 0,
        };
        let limit = if req.limit == 0 {
            usize::MAX
        } else {
            usize::try_from(req.limit).unwrap_or(usize::MAX)
        };
        let keyspaces = self
            .keyspaces()
            .lock()
            .range(start..)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect();
        Ok(keyspacepb::GetAllKeyspacesResponse {
            header: self.h(),
            keyspaces,
        })
    }

    /// The current keyspace list and a receiver that changes whenever it does
    /// (`WatchKeyspaces`).
    pub(crate) fn watch_keyspaces(&self) -> (Vec<keyspacepb::KeyspaceMeta>, watch::Receiver<u64>) {
        let ks = self.keyspaces();
        let rx = ks.changes.subscribe();
        let list = ks.lock().values().cloned().collect();
        (list, rx)
    }

    /// The full keyspace list.
    pub fn all_keyspaces(&self) -> Vec<keyspacepb::KeyspaceMeta> {
        self.keyspaces().lock().values().cloned().collect()
    }
}
