//! The API V2 codec (client-go: `internal/apicodec/codec_v2.go`, KS-5, KS-13 .. KS-16,
//! KS-19, KS-21).

use std::sync::Arc;

use tikv_proto::keyspacepb::keyspace_meta::Keyspace as MetaKeyspace;
use tikv_proto::{coprocessor, errorpb, keyspacepb, kvrpcpb, metapb};

use super::{
    KEYSPACE_PREFIX_LEN, KeyError, KeyResult, MAX_KEYSPACE_ID, Mode, mc_decode, memcomparable,
};
use crate::error::{Error, ErrorDetail};
use crate::request::{Command, CommandResponse, RpcRequest};

// ===== KeyspacePrefix =====

/// The 4-byte prefix of an API V2 keyspace and the first key after the keyspace, with
/// every key and region-key translation that needs nothing else.
///
/// `prefix = [mode, id >> 16, id >> 8, id]`; `end` is the big-endian successor of the
/// prefix, which carries into the higher bytes and, for the last keyspace, into the mode
/// byte (`r FF FF FF` ends at `s 00 00 00`, KS-5). The keyspace is `[prefix, end)`.
///
/// [`CodecV2`] wraps one; `tikv::pd::KeyMode` uses it directly for the PD edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyspacePrefix {
    prefix: [u8; KEYSPACE_PREFIX_LEN],
    end: [u8; KEYSPACE_PREFIX_LEN],
}

impl KeyspacePrefix {
    /// The prefix of keyspace `id` in `mode` (client-go's `NewCodecV2` prefix computation).
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when `id` does not fit in 24 bits.
    pub fn new(mode: Mode, id: u32) -> Result<KeyspacePrefix, Error> {
        if id > MAX_KEYSPACE_ID {
            return Err(ErrorDetail::InvalidArgument(format!(
                "keyspaceID {id} is out of range, maximum is {MAX_KEYSPACE_ID}"
            ))
            .into());
        }
        let [_, a, b, c] = id.to_be_bytes();
        Ok(KeyspacePrefix::from_prefix([mode.prefix_byte(), a, b, c]))
    }

    /// The keyspace that starts at `prefix`; its end is computed.
    pub fn from_prefix(prefix: [u8; KEYSPACE_PREFIX_LEN]) -> KeyspacePrefix {
        let end = u32::from_be_bytes(prefix).wrapping_add(1).to_be_bytes();
        KeyspacePrefix { prefix, end }
    }

    /// The 4-byte prefix every key of the keyspace starts with.
    pub fn prefix(&self) -> &[u8; KEYSPACE_PREFIX_LEN] {
        &self.prefix
    }

    /// The first key after the keyspace (exclusive end of the keyspace).
    pub fn end(&self) -> &[u8; KEYSPACE_PREFIX_LEN] {
        &self.end
    }

    /// The keyspace id in the prefix.
    pub fn keyspace_id(&self) -> u32 {
        u32::from_be_bytes([0, self.prefix[1], self.prefix[2], self.prefix[3]])
    }

    // ----- keys -----

    /// `prefix ‖ key` (client-go's `EncodeKey`).
    pub fn encode_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(KEYSPACE_PREFIX_LEN + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Prefixes `key` in place; allocates only when the buffer has no room for 4 more
    /// bytes.
    pub(crate) fn encode_key_in_place(&self, key: &mut Vec<u8>) {
        key.extend_from_slice(&self.prefix);
        key.rotate_right(KEYSPACE_PREFIX_LEN);
    }

    fn encode_keys_in_place(&self, keys: &mut [Vec<u8>]) {
        for k in keys {
            self.encode_key_in_place(k);
        }
    }

    /// The encoded bounds of `[start, end)` (client-go's `EncodeRange`): both prefixed, an
    /// empty (unbounded) end becomes the keyspace end (KS-13).
    pub fn encode_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let end = if end.is_empty() {
            self.end.to_vec()
        } else {
            self.encode_key(end)
        };
        (self.encode_key(start), end)
    }

    /// [`encode_range`](Self::encode_range) in place. With `reverse`, `start` is the upper
    /// bound and `end` the lower one (reverse scans): an empty upper bound becomes the
    /// keyspace end and an empty lower bound the keyspace start (client-go's `encodeRange`).
    pub(crate) fn encode_range_in_place(
        &self,
        start: &mut Vec<u8>,
        end: &mut Vec<u8>,
        reverse: bool,
    ) {
        let (lower, upper) = if reverse { (end, start) } else { (start, end) };
        self.encode_key_in_place(lower);
        if upper.is_empty() {
            upper.extend_from_slice(&self.end);
        } else {
            self.encode_key_in_place(upper);
        }
    }

    /// The user key of an encoded key (client-go's `DecodeKey`): the key without its
    /// prefix; an empty key stays empty.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] ("given key does not belong to the keyspace") when
    /// the key does not start with the prefix.
    pub fn decode_key<'a>(&self, key: &'a [u8]) -> Result<&'a [u8], Error> {
        Ok(self.strip(key)?)
    }

    fn strip<'a>(&self, key: &'a [u8]) -> KeyResult<&'a [u8]> {
        if key.is_empty() {
            return Ok(key);
        }
        key.strip_prefix(&self.prefix[..])
            .ok_or(KeyError::OutOfBound)
    }

    /// [`decode_key`](Self::decode_key) in place, without allocating.
    pub(crate) fn decode_key_in_place(&self, key: &mut Vec<u8>) -> KeyResult {
        if key.is_empty() {
            return Ok(());
        }
        if !key.starts_with(&self.prefix) {
            return Err(KeyError::OutOfBound);
        }
        key.drain(..KEYSPACE_PREFIX_LEN);
        Ok(())
    }

    fn decode_keys_in_place(&self, keys: &mut [Vec<u8>]) -> KeyResult {
        keys.iter_mut()
            .try_for_each(|k| self.decode_key_in_place(k))
    }

    /// The user-key range of an encoded range (client-go's `DecodeRange`, KS-15): a bound
    /// outside the keyspace becomes empty (unbounded), so a range covering the whole
    /// keyspace decodes to `["", "")`.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when the range lies entirely outside the keyspace
    /// (`start >= end of keyspace`, or a non-empty `end <= prefix`).
    pub fn decode_range<'a>(
        &self,
        start: &'a [u8],
        end: &'a [u8],
    ) -> Result<(&'a [u8], &'a [u8]), Error> {
        self.check_range(start, end)?;
        let clip = |k: &'a [u8]| k.strip_prefix(&self.prefix[..]).unwrap_or_default();
        Ok((clip(start), clip(end)))
    }

    fn check_range(&self, start: &[u8], end: &[u8]) -> KeyResult {
        if start >= &self.end[..] || (!end.is_empty() && end <= &self.prefix[..]) {
            return Err(KeyError::OutOfBound);
        }
        Ok(())
    }

    fn decode_range_in_place(&self, start: &mut Vec<u8>, end: &mut Vec<u8>) -> KeyResult {
        self.check_range(start, end)?;
        self.clip_in_place(start);
        self.clip_in_place(end);
        Ok(())
    }

    /// Strips the prefix, or empties a key outside the keyspace.
    fn clip_in_place(&self, key: &mut Vec<u8>) {
        if key.starts_with(&self.prefix) {
            key.drain(..KEYSPACE_PREFIX_LEN);
        } else {
            key.clear();
        }
    }

    // ----- region keys (PD edge and region errors) -----

    /// `MCE(prefix ‖ key)` (client-go's `EncodeRegionKey`, KS-19).
    pub fn encode_region_key(&self, key: &[u8]) -> Vec<u8> {
        memcomparable::encode_bytes_to_vec(&self.encode_key(key))
    }

    /// The region keys of `[start, end)` (client-go's `EncodeRegionRange`): an empty end
    /// becomes the keyspace end, so a scan over "everything" asks PD only for the
    /// keyspace's regions (KS-19).
    pub fn encode_region_range(&self, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let end = if end.is_empty() {
            memcomparable::encode_bytes_to_vec(&self.end)
        } else {
            self.encode_region_key(end)
        };
        (self.encode_region_key(start), end)
    }

    /// The user key of a region key (client-go's `DecodeRegionKey`): memcomparable
    /// decode, then [`decode_key`](Self::decode_key).
    ///
    /// # Errors
    ///
    /// A decode error ([`super::is_decode_error`]) for malformed bytes (an empty key is
    /// malformed here, as in client-go), or the out-of-keyspace error.
    pub fn decode_region_key(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
        let mut k = mc_decode(key)?;
        self.decode_key_in_place(&mut k)?;
        Ok(k)
    }

    /// The user-key range of a region (client-go's `DecodeRegionRange`, KS-19): decode the
    /// non-empty bounds, then clip to the keyspace as [`decode_range`](Self::decode_range)
    /// does. A region straddling a keyspace boundary gets an empty (unbounded) bound.
    ///
    /// # Errors
    ///
    /// A decode error for malformed bytes; the out-of-keyspace error for a region lying
    /// entirely outside the keyspace (not a decode error: the KS-19 quirk).
    pub fn decode_region_range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let (mut s, mut e) = (start.to_vec(), end.to_vec());
        self.decode_region_range_in_place(&mut s, &mut e)?;
        Ok((s, e))
    }

    fn decode_region_range_in_place(&self, start: &mut Vec<u8>, end: &mut Vec<u8>) -> KeyResult {
        if !start.is_empty() {
            *start = mc_decode(start)?;
        }
        if !end.is_empty() {
            *end = mc_decode(end)?;
        }
        self.decode_range_in_place(start, end)
    }

    /// The user keys of region bucket boundaries, clipped to the keyspace (client-go's
    /// `DecodeBucketKeys`, KS-21): a first key below the keyspace becomes `""`, a last key
    /// that is empty or at/after the keyspace end becomes `""`, keys of the keyspace lose
    /// their prefix (a stripped empty key is dropped when the output already starts with
    /// `""`), and keys of other keyspaces are dropped.
    ///
    /// # Errors
    ///
    /// A decode error for malformed bytes.
    pub fn decode_bucket_keys(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Error> {
        Ok(self.decode_bucket_keys_inner(keys)?)
    }

    fn decode_bucket_keys_inner(&self, keys: &[Vec<u8>]) -> KeyResult<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
        let last = keys.len().saturating_sub(1);
        for (i, key) in keys.iter().enumerate() {
            let k = if key.is_empty() {
                Vec::new()
            } else {
                mc_decode(key)?
            };
            let below = i == 0 && k.as_slice() < &self.prefix[..];
            let beyond = i == last && (k.is_empty() || k.as_slice() >= &self.end[..]);
            if below || beyond {
                out.push(Vec::new());
            } else if let Some(user) = k.strip_prefix(&self.prefix[..]) {
                if user.is_empty() && out.first().is_some_and(Vec::is_empty) {
                    continue;
                }
                out.push(user.to_vec());
            }
        }
        Ok(out)
    }

    // ----- request encoding (KS-14) -----

    fn encode_mutations(&self, mutations: &mut [kvrpcpb::Mutation]) {
        for m in mutations {
            self.encode_key_in_place(&mut m.key);
        }
    }

    pub(crate) fn encode_kv_range(&self, r: &mut kvrpcpb::KeyRange) {
        self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false);
    }

    fn encode_cop_ranges(&self, ranges: &mut [coprocessor::KeyRange]) {
        for r in ranges {
            self.encode_range_in_place(&mut r.start, &mut r.end, false);
        }
    }

    fn encode_versioned_ranges(&self, ranges: &mut [coprocessor::VersionedKeyRange]) {
        for r in ranges {
            if let Some(r) = r.range.as_mut() {
                self.encode_range_in_place(&mut r.start, &mut r.end, false);
            }
        }
    }

    fn encode_region_infos(&self, infos: &mut [coprocessor::RegionInfo]) {
        for info in infos {
            self.encode_cop_ranges(&mut info.ranges);
        }
    }

    fn encode_table_regions(&self, tables: &mut [coprocessor::TableRegions]) {
        for t in tables {
            self.encode_region_infos(&mut t.regions);
        }
    }

    fn encode_cop(&self, r: &mut coprocessor::Request) {
        self.encode_cop_ranges(&mut r.ranges);
        self.encode_versioned_ranges(&mut r.versioned_ranges);
        for task in &mut r.tasks {
            self.encode_cop_ranges(&mut task.ranges);
            self.encode_versioned_ranges(&mut task.versioned_ranges);
        }
    }

    /// Prefixes every key-bearing field of `cmd` (client-go's `EncodeRequest` body, KS-14).
    ///
    /// The match names every command, so a new command cannot be added without deciding
    /// how the codec treats it.
    pub(crate) fn encode_command(&self, cmd: &mut Command) {
        use Command as C;
        match cmd {
            C::Get(r) => self.encode_key_in_place(&mut r.key),
            C::Scan(r) => self.encode_range_in_place(&mut r.start_key, &mut r.end_key, r.reverse),
            C::Prewrite(r) => {
                self.encode_mutations(&mut r.mutations);
                self.encode_key_in_place(&mut r.primary_lock);
                self.encode_keys_in_place(&mut r.secondaries);
            }
            C::Commit(r) => {
                self.encode_keys_in_place(&mut r.keys);
                // An empty primary key means "not set" and must stay empty on the wire.
                if !r.primary_key.is_empty() {
                    self.encode_key_in_place(&mut r.primary_key);
                }
            }
            C::Cleanup(r) => self.encode_key_in_place(&mut r.key),
            C::BatchGet(r) => self.encode_keys_in_place(&mut r.keys),
            C::BatchRollback(r) => self.encode_keys_in_place(&mut r.keys),
            C::ScanLock(r) => self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false),
            C::ResolveLock(r) => self.encode_keys_in_place(&mut r.keys),
            C::DeleteRange(r) => {
                self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false)
            }
            C::PessimisticLock(r) => {
                self.encode_mutations(&mut r.mutations);
                self.encode_key_in_place(&mut r.primary_lock);
            }
            C::PessimisticRollback(r) => self.encode_keys_in_place(&mut r.keys),
            C::TxnHeartBeat(r) => self.encode_key_in_place(&mut r.primary_lock),
            C::CheckTxnStatus(r) => self.encode_key_in_place(&mut r.primary_key),
            C::CheckSecondaryLocks(r) => self.encode_keys_in_place(&mut r.keys),
            C::FlashbackToVersion(r) => {
                self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false)
            }
            C::PrepareFlashbackToVersion(r) => {
                self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false)
            }
            C::Flush(r) => {
                self.encode_mutations(&mut r.mutations);
                if !r.primary_key.is_empty() {
                    self.encode_key_in_place(&mut r.primary_key);
                }
            }
            C::BufferBatchGet(r) => self.encode_keys_in_place(&mut r.keys),
            C::RawGet(r) => self.encode_key_in_place(&mut r.key),
            C::RawBatchGet(r) => self.encode_keys_in_place(&mut r.keys),
            C::RawPut(r) => self.encode_key_in_place(&mut r.key),
            C::RawBatchPut(r) => {
                for p in &mut r.pairs {
                    self.encode_key_in_place(&mut p.key);
                }
            }
            C::RawDelete(r) => self.encode_key_in_place(&mut r.key),
            C::RawBatchDelete(r) => self.encode_keys_in_place(&mut r.keys),
            C::RawDeleteRange(r) => {
                self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false)
            }
            C::RawScan(r) => {
                self.encode_range_in_place(&mut r.start_key, &mut r.end_key, r.reverse)
            }
            C::RawGetKeyTTL(r) => self.encode_key_in_place(&mut r.key),
            C::RawCompareAndSwap(r) => self.encode_key_in_place(&mut r.key),
            C::RawChecksum(r) => {
                for range in &mut r.ranges {
                    self.encode_kv_range(range);
                }
            }
            C::UnsafeDestroyRange(r) => {
                self.encode_range_in_place(&mut r.start_key, &mut r.end_key, false)
            }
            // A missing range is the empty range, which encodes to the whole keyspace.
            C::StoreSafeTS(r) => {
                self.encode_kv_range(r.key_range.get_or_insert_with(Default::default))
            }
            C::Cop(r) | C::CopStream(r) => self.encode_cop(r),
            C::BatchCop(r) => {
                self.encode_region_infos(&mut r.regions);
                self.encode_table_regions(&mut r.table_regions);
            }
            // The task meta's keyspace fields are stamped with the context (KS-4).
            C::MppTask(r) => {
                self.encode_region_infos(&mut r.regions);
                self.encode_table_regions(&mut r.table_regions);
            }
            C::MvccGetByKey(r) => self.encode_key_in_place(&mut r.key),
            C::SplitRegion(r) => {
                self.encode_keys_in_place(&mut r.split_keys);
                // The deprecated single split key is a key too (client-go leaves it alone;
                // unprefixed it would split outside the keyspace).
                if !r.split_key.is_empty() {
                    self.encode_key_in_place(&mut r.split_key);
                }
            }
            // Compact cursors are TiFlash row keys, not storage keys; only the body's
            // keyspace fields are stamped (KS-14).
            C::Compact(_) => {}
            // Commands without keys: the context stamp is all they need (KS-14).
            C::LockWaitInfo(_)
            | C::GetHealthFeedback(_)
            | C::BroadcastTxnStatus(_)
            | C::MppConn(_)
            | C::MppCancel(_)
            | C::MppAlive(_)
            | C::MvccGetByStartTs(_)
            | C::DebugGetRegionProperties(_)
            | C::GetTiFlashSystemTable(_)
            | C::Empty(_) => {}
        }
    }

    // ----- response decoding (KS-15, KS-16) -----

    fn decode_lock(&self, lock: &mut kvrpcpb::LockInfo) -> KeyResult {
        self.decode_key_in_place(&mut lock.key)?;
        self.decode_key_in_place(&mut lock.primary_lock)?;
        self.decode_keys_in_place(&mut lock.secondaries)?;
        lock.shared_lock_infos
            .iter_mut()
            .try_for_each(|l| self.decode_lock(l))
    }

    fn decode_opt_lock(&self, lock: &mut Option<kvrpcpb::LockInfo>) -> KeyResult {
        lock.as_mut().map_or(Ok(()), |l| self.decode_lock(l))
    }

    fn decode_locks(&self, locks: &mut [kvrpcpb::LockInfo]) -> KeyResult {
        locks.iter_mut().try_for_each(|l| self.decode_lock(l))
    }

    pub(crate) fn decode_mvcc(&self, info: &mut Option<kvrpcpb::MvccInfo>) -> KeyResult {
        if let Some(lock) = info.as_mut().and_then(|i| i.lock.as_mut()) {
            // Empty entries stay empty (T-CODEC-016).
            self.decode_key_in_place(&mut lock.primary)?;
            self.decode_keys_in_place(&mut lock.secondaries)?;
        }
        Ok(())
    }

    pub(crate) fn decode_key_error(&self, e: &mut kvrpcpb::KeyError) -> KeyResult {
        self.decode_opt_lock(&mut e.locked)?;
        if let Some(c) = e.conflict.as_mut() {
            self.decode_key_in_place(&mut c.key)?;
            self.decode_key_in_place(&mut c.primary)?;
        }
        if let Some(a) = e.already_exist.as_mut() {
            self.decode_key_in_place(&mut a.key)?;
        }
        if let Some(d) = e.deadlock.as_mut() {
            self.decode_key_in_place(&mut d.lock_key)?;
            self.decode_key_in_place(&mut d.deadlock_key)?;
            for w in &mut d.wait_chain {
                self.decode_key_in_place(&mut w.key)?;
            }
        }
        if let Some(c) = e.commit_ts_expired.as_mut() {
            self.decode_key_in_place(&mut c.key)?;
        }
        if let Some(t) = e.txn_not_found.as_mut() {
            self.decode_key_in_place(&mut t.primary_key)?;
        }
        if let Some(a) = e.assertion_failed.as_mut() {
            self.decode_key_in_place(&mut a.key)?;
        }
        if let Some(p) = e.primary_mismatch.as_mut() {
            self.decode_opt_lock(&mut p.lock_info)?;
        }
        if let Some(t) = e.txn_lock_not_found.as_mut() {
            self.decode_key_in_place(&mut t.key)?;
        }
        // Shared-lock errors carry keys too (client-go's kvproto predates them).
        if let Some(l) = e.lock_upgrade_conflict.as_mut() {
            self.decode_key_in_place(&mut l.key)?;
        }
        if let Some(l) = e.shared_lock_lost.as_mut() {
            self.decode_key_in_place(&mut l.key)?;
        }
        if let Some(debug) = e.debug_info.as_mut() {
            for m in &mut debug.mvcc_info {
                self.decode_key_in_place(&mut m.key)?;
                self.decode_mvcc(&mut m.mvcc)?;
            }
        }
        Ok(())
    }

    fn decode_opt_key_error(&self, e: &mut Option<kvrpcpb::KeyError>) -> KeyResult {
        e.as_mut().map_or(Ok(()), |e| self.decode_key_error(e))
    }

    fn decode_key_errors(&self, errors: &mut [kvrpcpb::KeyError]) -> KeyResult {
        errors.iter_mut().try_for_each(|e| self.decode_key_error(e))
    }

    fn decode_pairs(&self, pairs: &mut [kvrpcpb::KvPair]) -> KeyResult {
        for p in pairs {
            self.decode_opt_key_error(&mut p.error)?;
            self.decode_key_in_place(&mut p.key)?;
        }
        Ok(())
    }

    fn decode_regions(&self, regions: &mut [metapb::Region]) -> KeyResult {
        for r in regions {
            self.decode_region_range_in_place(&mut r.start_key, &mut r.end_key)?;
        }
        Ok(())
    }

    /// Decodes a region error in place (client-go's `decodeRegionError`, KS-15).
    pub(crate) fn decode_region_error(&self, err: &mut Option<errorpb::Error>) -> KeyResult {
        let Some(err) = err.as_mut() else {
            return Ok(());
        };
        if let Some(e) = err.key_not_in_region.as_mut() {
            self.decode_key_in_place(&mut e.key)?;
            self.decode_region_range_in_place(&mut e.start_key, &mut e.end_key)?;
        }
        if let Some(e) = err.epoch_not_match.as_mut() {
            // Regions lying entirely outside the keyspace are dropped; any other failure
            // fails the response (T-CODEC-012).
            let mut failure = None;
            e.current_regions.retain_mut(|r| {
                if failure.is_some() {
                    return true;
                }
                match self.decode_region_range_in_place(&mut r.start_key, &mut r.end_key) {
                    Ok(()) => true,
                    Err(KeyError::OutOfBound) => false,
                    Err(other) => {
                        failure = Some(other);
                        true
                    }
                }
            });
            if let Some(f) = failure {
                return Err(f);
            }
        }
        // Bucket boundaries reported with a stale bucket version feed the region cache's
        // buckets, which hold user keys (client-go passes them on still encoded).
        if let Some(e) = err.bucket_version_not_match.as_mut() {
            e.keys = self.decode_bucket_keys_inner(&e.keys)?;
        }
        Ok(())
    }

    fn decode_cop_range(&self, range: &mut Option<coprocessor::KeyRange>) -> KeyResult {
        match range.as_mut() {
            // Coprocessor ranges are plain encoded keys: no memcomparable step.
            Some(r) => self.decode_range_in_place(&mut r.start, &mut r.end),
            None => Ok(()),
        }
    }

    /// Decodes a coprocessor response (unary, or one item of a stream).
    pub(crate) fn decode_cop(&self, r: &mut coprocessor::Response) -> KeyResult {
        self.decode_region_error(&mut r.region_error)?;
        self.decode_opt_lock(&mut r.locked)?;
        self.decode_cop_range(&mut r.range)?;
        // Batched tasks report their own region errors and locks (client-go leaves them
        // encoded; the lock resolver needs user keys).
        for b in &mut r.batch_responses {
            self.decode_region_error(&mut b.region_error)?;
            self.decode_opt_lock(&mut b.locked)?;
        }
        Ok(())
    }

    /// Decodes every key-bearing field of `resp` in place (client-go's `DecodeResponse`,
    /// KS-16). Streams are decoded item by item by the caller.
    pub(crate) fn decode_response(&self, resp: &mut CommandResponse) -> KeyResult {
        use CommandResponse as R;
        match resp {
            R::Get(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::Scan(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_pairs(&mut r.pairs)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::Prewrite(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_key_errors(&mut r.errors)
            }
            R::Commit(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::Cleanup(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::BatchGet(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_pairs(&mut r.pairs)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::BatchRollback(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::ScanLock(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)?;
                self.decode_locks(&mut r.locks)
            }
            R::ResolveLock(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::DeleteRange(r) => self.decode_region_error(&mut r.region_error),
            R::PessimisticLock(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_key_errors(&mut r.errors)
            }
            R::PessimisticRollback(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_key_errors(&mut r.errors)
            }
            R::TxnHeartBeat(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::CheckTxnStatus(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)?;
                self.decode_opt_lock(&mut r.lock_info)
            }
            R::CheckSecondaryLocks(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_opt_key_error(&mut r.error)?;
                self.decode_locks(&mut r.locks)
            }
            R::FlashbackToVersion(r) => self.decode_region_error(&mut r.region_error),
            R::PrepareFlashbackToVersion(r) => self.decode_region_error(&mut r.region_error),
            R::Flush(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_key_errors(&mut r.errors)
            }
            R::BufferBatchGet(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_pairs(&mut r.pairs)?;
                self.decode_opt_key_error(&mut r.error)
            }
            R::RawGet(r) => self.decode_region_error(&mut r.region_error),
            R::RawBatchGet(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_pairs(&mut r.pairs)
            }
            R::RawPut(r) => self.decode_region_error(&mut r.region_error),
            R::RawBatchPut(r) => self.decode_region_error(&mut r.region_error),
            R::RawDelete(r) => self.decode_region_error(&mut r.region_error),
            R::RawBatchDelete(r) => self.decode_region_error(&mut r.region_error),
            R::RawDeleteRange(r) => self.decode_region_error(&mut r.region_error),
            R::RawScan(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_pairs(&mut r.kvs)
            }
            R::RawGetKeyTTL(r) => self.decode_region_error(&mut r.region_error),
            R::RawCompareAndSwap(r) => self.decode_region_error(&mut r.region_error),
            R::RawChecksum(r) => self.decode_region_error(&mut r.region_error),
            R::UnsafeDestroyRange(r) => self.decode_region_error(&mut r.region_error),
            R::LockWaitInfo(r) => {
                self.decode_region_error(&mut r.region_error)?;
                for entry in &mut r.entries {
                    self.decode_key_in_place(&mut entry.key)?;
                }
                Ok(())
            }
            // client-go leaves this region error encoded; decoding it keeps every region
            // error the retry layer sees in user keys.
            R::GetHealthFeedback(r) => self.decode_region_error(&mut r.region_error),
            R::Cop(r) => self.decode_cop(r),
            R::MvccGetByKey(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_mvcc(&mut r.info)
            }
            R::MvccGetByStartTs(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_key_in_place(&mut r.key)?;
                self.decode_mvcc(&mut r.info)
            }
            R::SplitRegion(r) => {
                self.decode_region_error(&mut r.region_error)?;
                self.decode_regions(&mut r.regions)?;
                // The deprecated single-split answer carries regions too.
                for region in [r.left.as_mut(), r.right.as_mut()].into_iter().flatten() {
                    self.decode_region_range_in_place(&mut region.start_key, &mut region.end_key)?;
                }
                Ok(())
            }
            // Decoded item by item by `Codec::decode_command_response`.
            R::CopStream(_) => Ok(()),
            // No keys: batch coprocessor and MPP answers carry only data and retry
            // regions (used by id), compact cursors are TiFlash row keys (KS-16).
            R::BatchCop(_)
            | R::MppTask(_)
            | R::MppConn(_)
            | R::MppCancel(_)
            | R::MppAlive(_)
            | R::Compact(_)
            | R::StoreSafeTS(_)
            | R::BroadcastTxnStatus(_)
            | R::DebugGetRegionProperties(_)
            | R::GetTiFlashSystemTable(_)
            | R::Empty(_) => Ok(()),
        }
    }
}

// ===== CodecV2 =====

/// The API V2 codec of one keyspace (client-go's `codecV2`).
///
/// Cheap to clone: the keyspace meta is shared.
#[derive(Debug, Clone, PartialEq)]
pub struct CodecV2 {
    mode: Mode,
    keys: KeyspacePrefix,
    meta: Arc<keyspacepb::KeyspaceMeta>,
}

impl CodecV2 {
    /// The codec of the keyspace `meta` describes, in `mode` (client-go's `NewCodecV2`).
    ///
    /// `meta` is what PD's `LoadKeyspace` returned; a meta without the keyspace arm set is
    /// the default keyspace 0, as PD writes it.
    ///
    /// # Errors
    ///
    /// [`ErrorDetail::InvalidArgument`] when `meta` is `None` (a missing meta must not
    /// silently become keyspace 0), when it carries an API V3 keyspace identity (V2 keys
    /// need the numeric id; KS-2), or when the id does not fit in 24 bits (KS-5).
    pub fn new(mode: Mode, meta: Option<keyspacepb::KeyspaceMeta>) -> Result<CodecV2, Error> {
        let Some(meta) = meta else {
            return Err(ErrorDetail::InvalidArgument("keyspace meta is missing".to_owned()).into());
        };
        let id = match meta.keyspace {
            Some(MetaKeyspace::Id(id)) => id,
            None => super::DEFAULT_KEYSPACE_ID,
            Some(MetaKeyspace::KeyspaceIdentity(_)) => {
                return Err(ErrorDetail::InvalidArgument(
                    "unsupported keyspace identity: codec V2 only supports the numeric keyspace id"
                        .to_owned(),
                )
                .into());
            }
        };
        Ok(CodecV2 {
            mode,
            keys: KeyspacePrefix::new(mode, id)?,
            meta: Arc::new(meta),
        })
    }

    /// The codec of keyspace `id` with a meta carrying only the id.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_keyspace_id(mode: Mode, id: u32) -> Result<CodecV2, Error> {
        let meta = keyspacepb::KeyspaceMeta {
            keyspace: Some(MetaKeyspace::Id(id)),
            ..Default::default()
        };
        CodecV2::new(mode, Some(meta))
    }

    /// The mode the codec serves.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The keyspace's prefix and end, with the key translations.
    pub fn keyspace_prefix(&self) -> &KeyspacePrefix {
        &self.keys
    }

    /// The keyspace id.
    pub fn keyspace_id(&self) -> u32 {
        self.keys.keyspace_id()
    }

    /// The keyspace meta the codec was built from.
    pub fn keyspace_meta(&self) -> &keyspacepb::KeyspaceMeta {
        &self.meta
    }

    /// Stamps the context and prefixes every key of the command.
    pub(crate) fn encode_request(&self, req: &mut RpcRequest) {
        super::codec::stamp(
            req,
            kvrpcpb::ApiVersion::V2,
            self.keyspace_id(),
            Some(&self.meta.name),
        );
        self.keys.encode_command(&mut req.cmd);
    }
}
