//! What each command carries, and how to cut it by region and glue the answers back.
//!
//! This is the one place that knows, per [`Command`]:
//!
//! - where `route` locates it when it arrives without a region ([`route_key`]);
//! - whether `shard` spreads it over regions by keys, pages it over a key range, or
//!   passes it through ([`Shape`]);
//! - how to build a sub-command carrying a subset of the keys ([`KeyPlan`]) or a clipped
//!   range ([`RangePlan`]);
//! - how to merge the sub-responses ([`merge_keys`], [`fold_range`]).
//!
//! The key layouts follow kvproto (`kvrpcpb.proto`): a forward scan covers
//! `[start_key, end_key)`; a reverse scan covers `[end_key, start_key)` in descending
//! order, so `start_key` is the exclusive **upper** bound; an empty end key is +∞.

use std::mem;

use tikv_proto::kvrpcpb;
use tikv_proto::kvrpcpb::prewrite_request::ForUpdateTsConstraint;

use crate::error::{Error, ErrorDetail, Result};
use crate::request::{CmdType, Command, CommandResponse};

use super::policy::Weigh;

/// Where the `route` layer locates a command that arrives without a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteKey<'a> {
    /// The region containing this key (`RegionLocator::locate_key`): the key of a point
    /// command, the first key of a multi-key command, the start of a forward range.
    Key(&'a [u8]),
    /// The region whose range ends at or after this key and starts before it
    /// (`RegionLocator::locate_end_key`): the exclusive upper bound of a reverse scan.
    EndKey(&'a [u8]),
    /// The command carries no key: it is addressed to a store, or to the region the
    /// caller pinned in `context.region_id`.
    None,
}

/// The routing key of a command (client-go locates point commands by their key, batches
/// by their first key, forward scans by their start and reverse scans by their upper bound
/// with `LocateEndKey`).
pub fn route_key(cmd: &Command) -> RouteKey<'_> {
    use Command as C;
    fn first(keys: &[Vec<u8>]) -> RouteKey<'_> {
        keys.first().map_or(RouteKey::None, |k| RouteKey::Key(k))
    }
    fn first_mut(m: &[kvrpcpb::Mutation]) -> RouteKey<'_> {
        m.first().map_or(RouteKey::None, |m| RouteKey::Key(&m.key))
    }
    match cmd {
        C::Get(r) => RouteKey::Key(&r.key),
        C::Cleanup(r) => RouteKey::Key(&r.key),
        C::CheckTxnStatus(r) => RouteKey::Key(&r.primary_key),
        C::TxnHeartBeat(r) => RouteKey::Key(&r.primary_lock),
        C::RawGet(r) => RouteKey::Key(&r.key),
        C::RawPut(r) => RouteKey::Key(&r.key),
        C::RawDelete(r) => RouteKey::Key(&r.key),
        C::RawCompareAndSwap(r) => RouteKey::Key(&r.key),
        C::RawGetKeyTTL(r) => RouteKey::Key(&r.key),
        C::MvccGetByKey(r) => RouteKey::Key(&r.key),
        C::BatchGet(r) => first(&r.keys),
        C::BufferBatchGet(r) => first(&r.keys),
        C::Commit(r) => first(&r.keys),
        C::BatchRollback(r) => first(&r.keys),
        C::PessimisticRollback(r) => first(&r.keys),
        C::CheckSecondaryLocks(r) => first(&r.keys),
        C::ResolveLock(r) => first(&r.keys),
        C::RawBatchGet(r) => first(&r.keys),
        C::RawBatchDelete(r) => first(&r.keys),
        C::RawBatchPut(r) => r
            .pairs
            .first()
            .map_or(RouteKey::None, |p| RouteKey::Key(&p.key)),
        C::Prewrite(r) => first_mut(&r.mutations),
        C::PessimisticLock(r) => first_mut(&r.mutations),
        C::Flush(r) => first_mut(&r.mutations),
        C::SplitRegion(r) => match r.split_keys.first() {
            Some(k) => RouteKey::Key(k),
            None if !r.split_key.is_empty() => RouteKey::Key(&r.split_key),
            None => RouteKey::None,
        },
        C::Scan(r) if r.reverse => RouteKey::EndKey(&r.start_key),
        C::Scan(r) => RouteKey::Key(&r.start_key),
        C::RawScan(r) if r.reverse => RouteKey::EndKey(&r.start_key),
        C::RawScan(r) => RouteKey::Key(&r.start_key),
        C::ScanLock(r) => RouteKey::Key(&r.start_key),
        C::DeleteRange(r) => RouteKey::Key(&r.start_key),
        C::RawDeleteRange(r) => RouteKey::Key(&r.start_key),
        C::FlashbackToVersion(r) => RouteKey::Key(&r.start_key),
        C::PrepareFlashbackToVersion(r) => RouteKey::Key(&r.start_key),
        C::RawChecksum(r) => r
            .ranges
            .first()
            .map_or(RouteKey::None, |k| RouteKey::Key(&k.start_key)),
        C::Cop(r) | C::CopStream(r) => r
            .ranges
            .first()
            .map_or(RouteKey::None, |k| RouteKey::Key(&k.start)),
        _ => RouteKey::None,
    }
}

/// How `shard` handles a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Sent as it is: store-level commands, commands without a region context, commands
    /// pinned to a region without a key (whole-region `ResolveLock`, `MvccGetByStartTs`),
    /// and coprocessor / MPP requests whose task building belongs to their own client.
    PassThrough,
    /// Carries exactly one key: located, sent, and resent after region errors, with no
    /// grouping or merging (client-go's point loops, e.g. rawkv's `sendReq`).
    Point,
    /// Carries a key list: grouped by region, batched, merged.
    Keys,
    /// Carries a key range: paged region by region.
    Range,
}

/// The shape of a command.
pub(crate) fn shape(cmd: &Command) -> Shape {
    use Command as C;
    match cmd {
        C::Get(_)
        | C::Cleanup(_)
        | C::CheckTxnStatus(_)
        | C::TxnHeartBeat(_)
        | C::RawGet(_)
        | C::RawPut(_)
        | C::RawDelete(_)
        | C::RawCompareAndSwap(_)
        | C::RawGetKeyTTL(_)
        | C::MvccGetByKey(_) => Shape::Point,
        // A single-key split stays on the key path: a split key equal to a region start
        // is dropped there (nothing to split).
        C::BatchGet(_)
        | C::BufferBatchGet(_)
        | C::Prewrite(_)
        | C::Flush(_)
        | C::PessimisticLock(_)
        | C::PessimisticRollback(_)
        | C::Commit(_)
        | C::BatchRollback(_)
        | C::CheckSecondaryLocks(_)
        | C::RawBatchGet(_)
        | C::RawBatchDelete(_)
        | C::RawBatchPut(_) => Shape::Keys,
        C::SplitRegion(r) if !r.split_keys.is_empty() || !r.split_key.is_empty() => Shape::Keys,
        // Lite resolve lists its keys; a whole-region or batch resolve is pinned to the
        // region its caller chose.
        C::ResolveLock(r) if !r.keys.is_empty() => Shape::Keys,
        C::Scan(_)
        | C::ScanLock(_)
        | C::DeleteRange(_)
        | C::RawScan(_)
        | C::RawDeleteRange(_)
        | C::RawChecksum(_)
        | C::FlashbackToVersion(_)
        | C::PrepareFlashbackToVersion(_) => Shape::Range,
        _ => Shape::PassThrough,
    }
}

// ===== keys =====

/// The lists a multi-key command carries, taken out of the command.
#[derive(Debug)]
enum Items {
    /// A point command: the command itself is the only sub-command.
    Point(Vec<u8>),
    /// A plain key list.
    Keys(Vec<Vec<u8>>),
    /// Mutations, with the lists aligned to them (prewrite only; empty otherwise).
    Mutations {
        muts: Vec<kvrpcpb::Mutation>,
        actions: Vec<i32>,
        constraints: Vec<ForUpdateTsConstraint>,
    },
    /// Raw pairs with their TTLs (empty, one for all, or one per pair).
    Pairs {
        pairs: Vec<kvrpcpb::KvPair>,
        ttls: Vec<u64>,
    },
}

/// A multi-key (or point) command taken apart: the command with its key lists emptied
/// (`shell`) plus the lists, so a sub-command for any subset of the keys is built without
/// copying the rest.
#[derive(Debug)]
pub(crate) struct KeyPlan {
    shell: Command,
    items: Items,
}

/// Runs `$body` with `$r` bound to the request and `$f` naming its plain key list, for
/// every command whose keys are one `Vec<Vec<u8>>` field.
macro_rules! key_list_commands {
    ($cmd:expr, $r:ident, $f:ident => $body:expr, _ => $other:expr) => {
        match $cmd {
            Command::BatchGet(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::BufferBatchGet(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::Commit(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::BatchRollback(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::PessimisticRollback(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::CheckSecondaryLocks(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::ResolveLock(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::RawBatchGet(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::RawBatchDelete(ref mut $r) => {
                let $f = &mut $r.keys;
                $body
            }
            Command::SplitRegion(ref mut $r) => {
                let $f = &mut $r.split_keys;
                $body
            }
            _ => $other,
        }
    };
}

fn invalid(msg: String) -> Error {
    ErrorDetail::InvalidArgument(msg).into()
}

impl KeyPlan {
    /// Takes a [`Shape::Keys`] command apart.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when lists that must be aligned with the keys are
    /// not (prewrite pessimistic actions or for-update-ts constraints, raw batch put
    /// TTLs), since such a command cannot be split consistently; [`ErrorDetail::Internal`]
    /// for a command that is not multi-key.
    pub(crate) fn new(mut cmd: Command) -> Result<KeyPlan> {
        use Command as C;
        let point = matches!(
            cmd,
            C::Get(_)
                | C::Cleanup(_)
                | C::CheckTxnStatus(_)
                | C::TxnHeartBeat(_)
                | C::RawGet(_)
                | C::RawPut(_)
                | C::RawDelete(_)
                | C::RawCompareAndSwap(_)
                | C::RawGetKeyTTL(_)
                | C::MvccGetByKey(_)
        ) || matches!(&cmd, C::SplitRegion(r) if r.split_keys.is_empty());
        // A point command's key is its routing key (for a split: the deprecated single
        // split key).
        let point = point.then(|| match route_key(&cmd) {
            RouteKey::Key(k) | RouteKey::EndKey(k) => k.to_vec(),
            RouteKey::None => Vec::new(),
        });
        if let Some(key) = point {
            return Ok(KeyPlan {
                shell: cmd,
                items: Items::Point(key),
            });
        }
        let taken = key_list_commands!(cmd, r, f => Some(mem::take(f)), _ => None);
        if let Some(keys) = taken {
            return Ok(KeyPlan {
                shell: cmd,
                items: Items::Keys(keys),
            });
        }
        let items = match &mut cmd {
            C::Prewrite(r) => {
                let muts = mem::take(&mut r.mutations);
                let actions = mem::take(&mut r.pessimistic_actions);
                let constraints = mem::take(&mut r.for_update_ts_constraints);
                if !actions.is_empty() && actions.len() != muts.len() {
                    return Err(invalid(format!(
                        "prewrite has {} pessimistic actions for {} mutations",
                        actions.len(),
                        muts.len()
                    )));
                }
                if let Some(c) = constraints.iter().find(|c| c.index as usize >= muts.len()) {
                    return Err(invalid(format!(
                        "prewrite for-update-ts constraint index {} out of {} mutations",
                        c.index,
                        muts.len()
                    )));
                }
                Items::Mutations {
                    muts,
                    actions,
                    constraints,
                }
            }
            C::PessimisticLock(r) => Items::Mutations {
                muts: mem::take(&mut r.mutations),
                actions: Vec::new(),
                constraints: Vec::new(),
            },
            C::Flush(r) => Items::Mutations {
                muts: mem::take(&mut r.mutations),
                actions: Vec::new(),
                constraints: Vec::new(),
            },
            C::RawBatchPut(r) => {
                let pairs = mem::take(&mut r.pairs);
                let ttls = mem::take(&mut r.ttls);
                // TiKV's contract: no TTLs, one TTL for every pair, or one per pair.
                if ttls.len() > 1 && ttls.len() != pairs.len() {
                    return Err(invalid(format!(
                        "raw batch put has {} ttls for {} pairs",
                        ttls.len(),
                        pairs.len()
                    )));
                }
                Items::Pairs { pairs, ttls }
            }
            other => {
                return Err(ErrorDetail::Internal(format!(
                    "{} is not a multi-key command",
                    other.cmd_type()
                ))
                .into());
            }
        };
        Ok(KeyPlan { shell: cmd, items })
    }

    /// The command type.
    pub(crate) fn cmd_type(&self) -> CmdType {
        self.shell.cmd_type()
    }

    /// The command with its key lists emptied (the whole command for point commands).
    pub(crate) fn shell(&self) -> &Command {
        &self.shell
    }

    /// How many keys the command carries.
    pub(crate) fn len(&self) -> usize {
        match &self.items {
            Items::Point(_) => 1,
            Items::Keys(k) => k.len(),
            Items::Mutations { muts, .. } => muts.len(),
            Items::Pairs { pairs, .. } => pairs.len(),
        }
    }

    /// The `i`-th key (empty when out of range).
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let k = match &self.items {
            Items::Point(k) => (i == 0).then_some(k.as_slice()),
            Items::Keys(k) => k.get(i).map(Vec::as_slice),
            Items::Mutations { muts, .. } => muts.get(i).map(|m| m.key.as_slice()),
            Items::Pairs { pairs, .. } => pairs.get(i).map(|p| p.key.as_slice()),
        };
        k.unwrap_or_default()
    }

    /// The `i`-th key's weight for batching.
    pub(crate) fn weight(&self, i: usize, weigh: Weigh) -> usize {
        let value_len = match &self.items {
            Items::Mutations { muts, .. } => muts.get(i).map_or(0, |m| m.value.len()),
            Items::Pairs { pairs, .. } => pairs.get(i).map_or(0, |p| p.value.len()),
            Items::Point(_) | Items::Keys(_) => 0,
        };
        match weigh {
            Weigh::Count => 1,
            Weigh::KeyBytes => self.key(i).len(),
            Weigh::KeyValueBytes => self.key(i).len() + value_len,
        }
    }

    /// Whether grouping skips a key equal to the start of its (freshly located) region:
    /// the region is already split there (client-go's `equalRegionStartKey` filter of
    /// `splitBatchRegionsReq`).
    pub(crate) fn skips_region_start_keys(&self) -> bool {
        matches!(self.shell, Command::SplitRegion(_))
    }

    /// A sub-command carrying the keys at `idx` (ascending indexes into the key list),
    /// with every aligned list cut the same way.
    pub(crate) fn build(&self, idx: &[usize]) -> Command {
        let mut cmd = self.shell.clone();
        match &self.items {
            Items::Point(_) => {}
            Items::Keys(keys) => {
                key_list_commands!(cmd, r, f => *f = pick(keys, idx), _ => ());
            }
            Items::Mutations {
                muts,
                actions,
                constraints,
            } => match &mut cmd {
                Command::Prewrite(r) => {
                    r.mutations = pick(muts, idx);
                    if !actions.is_empty() {
                        r.pessimistic_actions = pick(actions, idx);
                    }
                    r.for_update_ts_constraints = constraints
                        .iter()
                        .filter_map(|c| {
                            let pos = idx.binary_search(&(c.index as usize)).ok()?;
                            Some(ForUpdateTsConstraint {
                                index: u32::try_from(pos).ok()?,
                                expected_for_update_ts: c.expected_for_update_ts,
                            })
                        })
                        .collect();
                }
                Command::PessimisticLock(r) => r.mutations = pick(muts, idx),
                Command::Flush(r) => r.mutations = pick(muts, idx),
                _ => {}
            },
            Items::Pairs { pairs, ttls } => {
                if let Command::RawBatchPut(r) = &mut cmd {
                    r.pairs = pick(pairs, idx);
                    if ttls.len() == pairs.len() && !ttls.is_empty() {
                        // One TTL per pair: cut it too; client-go also sets the deprecated
                        // single `ttl` to the batch's first TTL.
                        r.ttls = pick(ttls, idx);
                        r.ttl = r.ttls.first().copied().unwrap_or(r.ttl);
                    } else {
                        r.ttls = ttls.clone();
                    }
                }
            }
        }
        cmd
    }
}

fn pick<T: Clone>(items: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().filter_map(|&i| items.get(i).cloned()).collect()
}

/// One sub-response of a multi-key command, with the key indexes it answered.
#[derive(Debug)]
pub(crate) struct Part {
    /// Ascending indexes into the original key list.
    pub(crate) indices: Vec<usize>,
    /// The sub-response (no region error).
    pub(crate) resp: CommandResponse,
}

/// An answer of the command's type with nothing in it (for a command that needed no RPC).
pub(crate) fn empty_response(cmd: &Command) -> Result<CommandResponse> {
    let mut resp = cmd.region_error_response(Default::default())?;
    resp.take_region_error();
    Ok(resp)
}

/// Lists aligned with the keys (pessimistic lock values, existence flags, results): placed
/// back at their keys' positions when every part answered one entry per key or none (a
/// part that failed with key errors; its keys keep the default), otherwise concatenated
/// in part order.
fn place<T: Clone + Default>(parts: Vec<(Vec<usize>, Vec<T>)>, total: usize) -> Vec<T> {
    if parts.iter().all(|(_, v)| v.is_empty()) {
        return Vec::new();
    }
    if parts
        .iter()
        .all(|(idx, v)| v.is_empty() || v.len() == idx.len())
    {
        let mut out = vec![T::default(); total];
        for (idx, v) in parts {
            for (i, x) in idx.into_iter().zip(v) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = x;
                }
            }
        }
        return out;
    }
    parts.into_iter().flat_map(|(_, v)| v).collect()
}

/// Merges the sub-responses of a multi-key command, `parts` sorted in key order, into one
/// response of the same type:
///
/// - found pairs (batch gets) and lists of key errors / regions / locks are concatenated
///   in key order;
/// - single key errors and `error` strings: the first one (in key order) wins;
/// - aligned lists (pessimistic lock values, existence flags, results) are placed back at
///   their keys' positions;
/// - commit timestamps: the largest; a prewrite's 1PC commit ts only when every part
///   committed in one phase; execution details: the first part's.
///
/// One part is returned as it is.
///
/// # Errors
///
/// [`ErrorDetail::InvalidResponse`] when a part answers another command.
pub(crate) fn merge_keys(
    shell: &Command,
    total: usize,
    mut parts: Vec<Part>,
) -> Result<CommandResponse> {
    use CommandResponse as R;
    if parts.len() <= 1 {
        return match parts.pop() {
            Some(p) => Ok(p.resp),
            None => empty_response(shell),
        };
    }
    let expected = shell.cmd_type();
    if let Some(p) = parts.iter().find(|p| p.resp.cmd_type() != expected) {
        return Err(ErrorDetail::InvalidResponse {
            expected: expected.name(),
            got: p.resp.cmd_type().name().to_owned(),
        }
        .into());
    }
    let mut iter = parts.into_iter();
    let Some(first) = iter.next() else {
        return empty_response(shell);
    };
    let mut acc = first.resp;
    // Aligned lists of pessimistic lock answers, gathered part by part.
    let mut aligned: Option<PessimisticAligned> = None;
    if let R::PessimisticLock(r) = &mut acc {
        let mut a = PessimisticAligned::default();
        a.push(&first.indices, r);
        aligned = Some(a);
    }
    for Part { indices, resp } in iter {
        match (&mut acc, resp) {
            (R::BatchGet(a), R::BatchGet(b)) => {
                a.pairs.extend(b.pairs);
                first_some(&mut a.error, b.error);
            }
            (R::BufferBatchGet(a), R::BufferBatchGet(b)) => {
                a.pairs.extend(b.pairs);
                first_some(&mut a.error, b.error);
            }
            (R::RawBatchGet(a), R::RawBatchGet(b)) => a.pairs.extend(b.pairs),
            (R::RawBatchPut(a), R::RawBatchPut(b)) => first_str(&mut a.error, b.error),
            (R::RawBatchDelete(a), R::RawBatchDelete(b)) => first_str(&mut a.error, b.error),
            (R::Prewrite(a), R::Prewrite(b)) => {
                a.errors.extend(b.errors);
                a.min_commit_ts = a.min_commit_ts.max(b.min_commit_ts);
                a.one_pc_commit_ts = if a.one_pc_commit_ts == 0 || b.one_pc_commit_ts == 0 {
                    0
                } else {
                    a.one_pc_commit_ts.max(b.one_pc_commit_ts)
                };
            }
            (R::Commit(a), R::Commit(b)) => {
                first_some(&mut a.error, b.error);
                a.commit_version = a.commit_version.max(b.commit_version);
            }
            (R::BatchRollback(a), R::BatchRollback(b)) => first_some(&mut a.error, b.error),
            (R::PessimisticRollback(a), R::PessimisticRollback(b)) => a.errors.extend(b.errors),
            (R::PessimisticLock(a), R::PessimisticLock(mut b)) => {
                if let Some(al) = aligned.as_mut() {
                    al.push(&indices, &mut b);
                }
                a.errors.extend(b.errors);
                a.commit_ts = a.commit_ts.max(b.commit_ts);
            }
            (R::CheckSecondaryLocks(a), R::CheckSecondaryLocks(b)) => {
                first_some(&mut a.error, b.error);
                a.locks.extend(b.locks);
                if a.commit_ts == 0 {
                    a.commit_ts = b.commit_ts;
                }
            }
            (R::Flush(a), R::Flush(b)) => a.errors.extend(b.errors),
            (R::ResolveLock(a), R::ResolveLock(b)) => first_some(&mut a.error, b.error),
            (R::SplitRegion(a), R::SplitRegion(b)) => {
                a.regions.extend(b.regions);
                a.errors.extend(b.errors);
                if b.right.is_some() {
                    a.right = b.right;
                }
            }
            (_, b) => {
                return Err(ErrorDetail::InvalidResponse {
                    expected: "a multi-key command",
                    got: b.cmd_type().name().to_owned(),
                }
                .into());
            }
        }
    }
    if let (R::PessimisticLock(a), Some(al)) = (&mut acc, aligned) {
        al.finish(a, total);
    }
    Ok(acc)
}

/// The per-key lists of pessimistic lock answers, kept with their key indexes.
#[derive(Default)]
struct PessimisticAligned {
    values: Vec<(Vec<usize>, Vec<Vec<u8>>)>,
    not_founds: Vec<(Vec<usize>, Vec<bool>)>,
    results: Vec<(Vec<usize>, Vec<kvrpcpb::PessimisticLockKeyResult>)>,
}

impl PessimisticAligned {
    fn push(&mut self, idx: &[usize], r: &mut kvrpcpb::PessimisticLockResponse) {
        self.values.push((idx.to_vec(), mem::take(&mut r.values)));
        self.not_founds
            .push((idx.to_vec(), mem::take(&mut r.not_founds)));
        self.results.push((idx.to_vec(), mem::take(&mut r.results)));
    }

    fn finish(self, r: &mut kvrpcpb::PessimisticLockResponse, total: usize) {
        r.values = place(self.values, total);
        r.not_founds = place(self.not_founds, total);
        r.results = place(self.results, total);
    }
}

/// Keeps the first key error; a later one is only logged (first error wins).
fn first_some(acc: &mut Option<kvrpcpb::KeyError>, next: Option<kvrpcpb::KeyError>) {
    match (acc.is_some(), next) {
        (false, next) => *acc = next,
        (true, Some(e)) => tracing::debug!(error = ?e, "another sub-request answered a key error"),
        (true, None) => {}
    }
}

/// Keeps the first `error` string; a later one is only logged (first error wins).
fn first_str(acc: &mut String, next: String) {
    if acc.is_empty() {
        *acc = next;
    } else if !next.is_empty() {
        tracing::warn!(error = %next, "another sub-request answered an error");
    }
}

// ===== ranges =====

/// A range command taken apart: the command, its direction, its ranges and its row limit.
#[derive(Debug)]
pub(crate) struct RangePlan {
    cmd: Command,
    /// Whether the scan runs backwards.
    pub(crate) reverse: bool,
    /// The ranges to cover, each as `(lower, upper)`: inclusive lower, exclusive upper,
    /// empty upper = +∞. Only a raw checksum may carry several.
    pub(crate) ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// How many rows to return at most; `None` = no limit.
    pub(crate) limit: Option<u32>,
}

impl RangePlan {
    /// Takes a [`Shape::Range`] command apart.
    pub(crate) fn new(cmd: Command) -> RangePlan {
        use Command as C;
        let (reverse, ranges, limit) = match &cmd {
            C::RawScan(r) if r.reverse => (
                true,
                vec![(r.end_key.clone(), r.start_key.clone())],
                Some(r.limit),
            ),
            C::RawScan(r) => (
                false,
                vec![(r.start_key.clone(), r.end_key.clone())],
                Some(r.limit),
            ),
            C::Scan(r) if r.reverse => (
                true,
                vec![(r.end_key.clone(), r.start_key.clone())],
                Some(r.limit),
            ),
            C::Scan(r) => (
                false,
                vec![(r.start_key.clone(), r.end_key.clone())],
                Some(r.limit),
            ),
            // TiKV's scan-lock treats a zero limit as "no limit".
            C::ScanLock(r) => (
                false,
                vec![(r.start_key.clone(), r.end_key.clone())],
                (r.limit > 0).then_some(r.limit),
            ),
            C::DeleteRange(r) => (false, vec![(r.start_key.clone(), r.end_key.clone())], None),
            C::RawDeleteRange(r) => (false, vec![(r.start_key.clone(), r.end_key.clone())], None),
            C::FlashbackToVersion(r) => {
                (false, vec![(r.start_key.clone(), r.end_key.clone())], None)
            }
            C::PrepareFlashbackToVersion(r) => {
                (false, vec![(r.start_key.clone(), r.end_key.clone())], None)
            }
            C::RawChecksum(r) => (
                false,
                r.ranges
                    .iter()
                    .map(|k| (k.start_key.clone(), k.end_key.clone()))
                    .collect(),
                None,
            ),
            _ => (false, Vec::new(), None),
        };
        RangePlan {
            cmd,
            reverse,
            ranges,
            limit,
        }
    }

    /// The original command.
    pub(crate) fn command(&self) -> &Command {
        &self.cmd
    }

    /// Whether `(lower, upper)` holds no key to visit.
    ///
    /// Forward: `lower >= upper` with a bounded upper (client-go's range loops do not run).
    /// Reverse: the upper bound must be above the lower one; an empty upper bound means
    /// "nothing" for a raw reverse scan (client-go's `ReverseScan` loop never starts, and
    /// TiKV finds nothing below an empty key) but "from the top" for a transactional
    /// reverse scan (client-go's reverse scanner locates the last region with
    /// `LocateEndKey(nil)`).
    pub(crate) fn is_empty_range(&self, lower: &[u8], upper: &[u8]) -> bool {
        if upper.is_empty() {
            return self.reverse && !matches!(self.cmd, Command::Scan(_));
        }
        lower >= upper
    }

    /// A sub-command covering `[lower, upper)` (reverse: `start_key = upper`,
    /// `end_key = lower`) and returning at most `limit` rows.
    pub(crate) fn build(&self, lower: &[u8], upper: &[u8], limit: Option<u32>) -> Command {
        use Command as C;
        let mut cmd = self.cmd.clone();
        let (lo, hi) = (lower.to_vec(), upper.to_vec());
        match &mut cmd {
            C::RawScan(r) => {
                if r.reverse {
                    (r.start_key, r.end_key) = (hi, lo);
                } else {
                    (r.start_key, r.end_key) = (lo, hi);
                }
                if let Some(l) = limit {
                    r.limit = l;
                }
            }
            C::Scan(r) => {
                if r.reverse {
                    (r.start_key, r.end_key) = (hi, lo);
                } else {
                    (r.start_key, r.end_key) = (lo, hi);
                }
                if let Some(l) = limit {
                    r.limit = l;
                }
            }
            C::ScanLock(r) => {
                (r.start_key, r.end_key) = (lo, hi);
                if let Some(l) = limit {
                    r.limit = l;
                }
            }
            C::DeleteRange(r) => (r.start_key, r.end_key) = (lo, hi),
            C::RawDeleteRange(r) => (r.start_key, r.end_key) = (lo, hi),
            C::FlashbackToVersion(r) => (r.start_key, r.end_key) = (lo, hi),
            C::PrepareFlashbackToVersion(r) => (r.start_key, r.end_key) = (lo, hi),
            C::RawChecksum(r) => {
                r.ranges = vec![kvrpcpb::KeyRange {
                    start_key: lo,
                    end_key: hi,
                }];
            }
            _ => {}
        }
        cmd
    }
}

/// What folding one range sub-response did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folded {
    /// Rows the part returned (pairs or locks; 0 for commands without rows).
    pub(crate) rows: usize,
    /// The part carries a response-level error: stop paging and return what was merged
    /// (the error included), like client-go's range loops. A raw checksum's `error`
    /// string does not stop it (client-go ignores that field).
    pub(crate) stop: bool,
}

/// Appends a range sub-response to the merged answer, in visiting order (descending for
/// reverse scans): rows concatenated, checksums combined (crc64 xor, kvs and bytes
/// summed), the first error kept.
///
/// # Errors
///
/// [`ErrorDetail::InvalidResponse`] when the part answers another command.
pub(crate) fn fold_range(
    acc: &mut Option<CommandResponse>,
    part: CommandResponse,
) -> Result<Folded> {
    use CommandResponse as R;
    let folded = match &part {
        R::RawScan(r) => Folded {
            rows: r.kvs.len(),
            stop: false,
        },
        R::Scan(r) => Folded {
            rows: r.pairs.len(),
            stop: r.error.is_some(),
        },
        R::ScanLock(r) => Folded {
            rows: r.locks.len(),
            stop: r.error.is_some(),
        },
        R::DeleteRange(r) => Folded {
            rows: 0,
            stop: !r.error.is_empty(),
        },
        R::RawDeleteRange(r) => Folded {
            rows: 0,
            stop: !r.error.is_empty(),
        },
        R::FlashbackToVersion(r) => Folded {
            rows: 0,
            stop: !r.error.is_empty(),
        },
        R::PrepareFlashbackToVersion(r) => Folded {
            rows: 0,
            stop: !r.error.is_empty(),
        },
        R::RawChecksum(_) => Folded {
            rows: 0,
            stop: false,
        },
        other => {
            return Err(ErrorDetail::InvalidResponse {
                expected: "a range command",
                got: other.cmd_type().name().to_owned(),
            }
            .into());
        }
    };
    let Some(a) = acc.as_mut() else {
        *acc = Some(part);
        return Ok(folded);
    };
    match (a, part) {
        (R::RawScan(a), R::RawScan(b)) => a.kvs.extend(b.kvs),
        (R::Scan(a), R::Scan(b)) => {
            a.pairs.extend(b.pairs);
            first_some(&mut a.error, b.error);
        }
        (R::ScanLock(a), R::ScanLock(b)) => {
            a.locks.extend(b.locks);
            first_some(&mut a.error, b.error);
        }
        (R::DeleteRange(a), R::DeleteRange(b)) => first_str(&mut a.error, b.error),
        (R::RawDeleteRange(a), R::RawDeleteRange(b)) => first_str(&mut a.error, b.error),
        (R::FlashbackToVersion(a), R::FlashbackToVersion(b)) => first_str(&mut a.error, b.error),
        (R::PrepareFlashbackToVersion(a), R::PrepareFlashbackToVersion(b)) => {
            first_str(&mut a.error, b.error)
        }
        (R::RawChecksum(a), R::RawChecksum(b)) => {
            a.checksum ^= b.checksum;
            a.total_kvs = a.total_kvs.wrapping_add(b.total_kvs);
            a.total_bytes = a.total_bytes.wrapping_add(b.total_bytes);
            first_str(&mut a.error, b.error);
        }
        (a, b) => {
            return Err(ErrorDetail::InvalidResponse {
                expected: a.cmd_type().name(),
                got: b.cmd_type().name().to_owned(),
            }
            .into());
        }
    }
    Ok(folded)
}
