//! Per-key metadata flags kept in the transaction buffer (client-go: `kv/keyflags.go`).
//!
//! A [`KeyFlags`] value is a 16-bit set. The top bit is reserved by the buffer (client-go uses it
//! as the "deleted node" marker of its tree) and is never visible through this type. Flags are
//! changed only through [`FlagsOp`]s, applied left to right by [`KeyFlags::apply`]; several ops
//! have compound effects (for example [`FlagsOp::SetPresumeKeyNotExists`] also sets
//! need-check-exists), exactly as client-go's `ApplyFlagsOps`.

use std::fmt;

/// The set of flags stored for one key in the write buffer (client-go: `kv.KeyFlags`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeyFlags(u16);

/// Number of bytes a [`KeyFlags`] occupies (client-go: `kv.FlagBytes`).
pub const FLAG_BYTES: usize = 2;

// Bit positions, in client-go's order (the order is not observable outside the buffer, but keeping
// it makes debugging output comparable with Go's).
const PRESUME_KNE: u16 = 1 << 0;
const KEY_LOCKED: u16 = 1 << 1;
const NEED_LOCKED: u16 = 1 << 2;
const KEY_LOCKED_VAL_EXIST: u16 = 1 << 3;
const NEED_CHECK_EXISTS: u16 = 1 << 4;
const PREWRITE_ONLY: u16 = 1 << 5;
const IGNORED_IN_2PC: u16 = 1 << 6;
const READABLE: u16 = 1 << 7;
const NEWLY_INSERTED: u16 = 1 << 8;
// The two assertion bits: none set = no assertion yet, one set = that assertion, both = unknown.
const ASSERT_EXIST: u16 = 1 << 9;
const ASSERT_NOT_EXIST: u16 = 1 << 10;
// The conflict check of the key is postponed to prewrite (pessimistic txns only).
const NEED_CONSTRAINT_CHECK_IN_PREWRITE: u16 = 1 << 11;
// A presume-not-exists from an earlier statement that must not be unset by this one.
const PREVIOUS_PRESUME_KNE: u16 = 1 << 12;
// With KEY_LOCKED: the lock is a shared lock (without it, KEY_LOCKED means exclusive).
const KEY_LOCKED_IN_SHARE_MODE: u16 = 1 << 13;

/// Flags that survive a staging cleanup that reverts the value which created the key, and whose
/// setting marks the buffer dirty even inside a staging (spec M4).
const PERSISTENT: u16 = KEY_LOCKED
    | KEY_LOCKED_VAL_EXIST
    | NEED_CONSTRAINT_CHECK_IN_PREWRITE
    | KEY_LOCKED_IN_SHARE_MODE;

/// The bits a [`KeyFlags`] may carry; the top bit belongs to the buffer.
pub(crate) const FLAG_MASK: u16 = 0x7FFF;

impl KeyFlags {
    /// No flag set.
    pub const EMPTY: KeyFlags = KeyFlags(0);

    /// Builds flags from their raw bits (the reserved top bit is dropped).
    pub const fn from_bits(bits: u16) -> Self {
        KeyFlags(bits & FLAG_MASK)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The key asserts it exists (exist bit without not-exist bit).
    pub const fn has_assert_exist(self) -> bool {
        self.0 & ASSERT_EXIST != 0 && self.0 & ASSERT_NOT_EXIST == 0
    }

    /// The key asserts it does not exist (not-exist bit without exist bit).
    pub const fn has_assert_not_exist(self) -> bool {
        self.0 & ASSERT_NOT_EXIST != 0 && self.0 & ASSERT_EXIST == 0
    }

    /// The key's existence cannot be asserted (both assertion bits).
    pub const fn has_assert_unknown(self) -> bool {
        self.0 & ASSERT_EXIST != 0 && self.0 & ASSERT_NOT_EXIST != 0
    }

    /// Any assertion has been decided; client-go treats it as fixed for the rest of the txn.
    pub const fn has_assertion_flags(self) -> bool {
        self.0 & (ASSERT_EXIST | ASSERT_NOT_EXIST) != 0
    }

    /// The key's existence is checked lazily: presume-not-exists or its previous-statement twin.
    pub const fn has_presume_key_not_exists(self) -> bool {
        self.0 & (PRESUME_KNE | PREVIOUS_PRESUME_KNE) != 0
    }

    /// The key holds a pessimistic lock.
    pub const fn has_locked(self) -> bool {
        self.0 & KEY_LOCKED != 0
    }

    /// The lock is shared (only meaningful together with [`has_locked`](Self::has_locked)).
    pub const fn has_locked_in_share_mode(self) -> bool {
        self.0 & KEY_LOCKED_IN_SHARE_MODE != 0
    }

    /// The key still needs a lock (storage for the upper layer; client-go never reads it).
    pub const fn has_need_locked(self) -> bool {
        self.0 & NEED_LOCKED != 0
    }

    /// The value existed when the key was locked.
    pub const fn has_locked_value_exists(self) -> bool {
        self.0 & KEY_LOCKED_VAL_EXIST != 0
    }

    /// The key's existence must still be checked.
    pub const fn has_need_check_exists(self) -> bool {
        self.0 & NEED_CHECK_EXISTS != 0
    }

    /// The key takes part in prewrite only, not in the commit phase.
    pub const fn has_prewrite_only(self) -> bool {
        self.0 & PREWRITE_ONLY != 0
    }

    /// The key is to be ignored in 2PC (storage for the upper layer).
    pub const fn has_ignored_in_2pc(self) -> bool {
        self.0 & IGNORED_IN_2PC != 0
    }

    /// The key is readable by in-transaction reads (storage for the upper layer).
    pub const fn has_readable(self) -> bool {
        self.0 & READABLE != 0
    }

    /// The conflict check is postponed to prewrite.
    pub const fn has_need_constraint_check_in_prewrite(self) -> bool {
        self.0 & NEED_CONSTRAINT_CHECK_IN_PREWRITE != 0
    }

    /// The key was newly inserted with a non-empty value.
    pub const fn has_newly_inserted(self) -> bool {
        self.0 & NEWLY_INSERTED != 0
    }

    /// Keeps only the persistent flags (client-go: `AndPersistent`): those survive a cleanup.
    pub const fn and_persistent(self) -> KeyFlags {
        KeyFlags(self.0 & PERSISTENT)
    }

    /// Applies `ops` left to right (client-go: `kv.ApplyFlagsOps`).
    #[must_use]
    pub fn apply(self, ops: &[FlagsOp]) -> KeyFlags {
        ops.iter().fold(self, |f, &op| f.apply_one(op))
    }

    /// Applies one op.
    #[must_use]
    pub const fn apply_one(self, op: FlagsOp) -> KeyFlags {
        let f = self.0;
        KeyFlags(match op {
            FlagsOp::SetPresumeKeyNotExists => f | PRESUME_KNE | NEED_CHECK_EXISTS,
            FlagsOp::DelPresumeKeyNotExists => f & !(PRESUME_KNE | NEED_CHECK_EXISTS),
            FlagsOp::SetKeyLocked => f | KEY_LOCKED,
            FlagsOp::DelKeyLocked => f & !KEY_LOCKED,
            FlagsOp::SetNeedLocked => f | NEED_LOCKED,
            FlagsOp::DelNeedLocked => f & !NEED_LOCKED,
            FlagsOp::SetKeyLockedValueExists => {
                (f | KEY_LOCKED_VAL_EXIST) & !NEED_CONSTRAINT_CHECK_IN_PREWRITE
            }
            FlagsOp::SetKeyLockedValueNotExists => {
                f & !KEY_LOCKED_VAL_EXIST & !NEED_CONSTRAINT_CHECK_IN_PREWRITE
            }
            FlagsOp::DelNeedCheckExists => f & !NEED_CHECK_EXISTS,
            FlagsOp::SetPrewriteOnly => f | PREWRITE_ONLY,
            FlagsOp::SetIgnoredIn2PC => f | IGNORED_IN_2PC,
            FlagsOp::SetReadable => f | READABLE,
            FlagsOp::SetNewlyInserted => f | NEWLY_INSERTED,
            FlagsOp::SetAssertExist => (f & !ASSERT_NOT_EXIST) | ASSERT_EXIST,
            FlagsOp::SetAssertNotExist => (f & !ASSERT_EXIST) | ASSERT_NOT_EXIST,
            FlagsOp::SetAssertUnknown => f | ASSERT_EXIST | ASSERT_NOT_EXIST,
            FlagsOp::SetAssertNone => f & !(ASSERT_EXIST | ASSERT_NOT_EXIST),
            FlagsOp::SetNeedConstraintCheckInPrewrite => f | NEED_CONSTRAINT_CHECK_IN_PREWRITE,
            FlagsOp::DelNeedConstraintCheckInPrewrite => f & !NEED_CONSTRAINT_CHECK_IN_PREWRITE,
            FlagsOp::SetPreviousPresumeKNE => f | PREVIOUS_PRESUME_KNE,
            FlagsOp::SetKeyLockedInShareMode => f | KEY_LOCKED_IN_SHARE_MODE,
            FlagsOp::SetKeyLockedInExclusiveMode => f & !KEY_LOCKED_IN_SHARE_MODE,
        })
    }
}

impl fmt::Debug for KeyFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFlags({:#06x})", self.0)
    }
}

/// One operation on [`KeyFlags`] (client-go: `kv.FlagsOp` and its constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FlagsOp {
    /// Existence is checked lazily; also sets need-check-exists.
    SetPresumeKeyNotExists,
    /// Reverts `SetPresumeKeyNotExists` (clears need-check-exists too, not the previous-statement
    /// twin).
    DelPresumeKeyNotExists,
    /// The key acquired a lock.
    SetKeyLocked,
    /// Reverts `SetKeyLocked`.
    DelKeyLocked,
    /// The key needs a lock.
    SetNeedLocked,
    /// Reverts `SetNeedLocked`.
    DelNeedLocked,
    /// The value existed when locked; also clears need-constraint-check-in-prewrite.
    SetKeyLockedValueExists,
    /// The value did not exist when locked; clears value-exists and
    /// need-constraint-check-in-prewrite.
    SetKeyLockedValueNotExists,
    /// The key needs no existence check any more.
    DelNeedCheckExists,
    /// The key is not part of the commit phase.
    SetPrewriteOnly,
    /// The key is ignored in 2PC.
    SetIgnoredIn2PC,
    /// The key is readable by in-transaction reads.
    SetReadable,
    /// The key is newly inserted with a non-empty value.
    SetNewlyInserted,
    /// Assert the key exists.
    SetAssertExist,
    /// Assert the key does not exist.
    SetAssertNotExist,
    /// The key may or may not exist.
    SetAssertUnknown,
    /// Clear the assertion.
    SetAssertNone,
    /// Postpone the conflict check to prewrite.
    SetNeedConstraintCheckInPrewrite,
    /// Reverts `SetNeedConstraintCheckInPrewrite`.
    DelNeedConstraintCheckInPrewrite,
    /// Mark a presume-not-exists of an earlier statement (never cleared).
    SetPreviousPresumeKNE,
    /// The lock is shared.
    SetKeyLockedInShareMode,
    /// The lock is exclusive (clears the share bit).
    SetKeyLockedInExclusiveMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_ops() {
        let f = KeyFlags::EMPTY.apply(&[FlagsOp::SetPresumeKeyNotExists]);
        assert!(f.has_presume_key_not_exists() && f.has_need_check_exists());
        let f = f.apply(&[
            FlagsOp::SetPreviousPresumeKNE,
            FlagsOp::DelPresumeKeyNotExists,
        ]);
        assert!(f.has_presume_key_not_exists(), "previous KNE survives Del");
        assert!(!f.has_need_check_exists());

        let f = KeyFlags::EMPTY.apply(&[
            FlagsOp::SetNeedConstraintCheckInPrewrite,
            FlagsOp::SetKeyLockedValueExists,
        ]);
        assert!(f.has_locked_value_exists() && !f.has_need_constraint_check_in_prewrite());

        let f = KeyFlags::EMPTY.apply(&[FlagsOp::SetAssertExist]);
        assert!(f.has_assert_exist() && !f.has_assert_not_exist() && f.has_assertion_flags());
        let f = f.apply(&[FlagsOp::SetAssertNotExist]);
        assert!(f.has_assert_not_exist() && !f.has_assert_exist());
        let f = f.apply(&[FlagsOp::SetAssertUnknown]);
        assert!(f.has_assert_unknown() && !f.has_assert_exist() && !f.has_assert_not_exist());
        let f = f.apply(&[FlagsOp::SetAssertNone]);
        assert!(!f.has_assertion_flags());

        let f = KeyFlags::EMPTY.apply(&[FlagsOp::SetKeyLocked, FlagsOp::SetKeyLockedInShareMode]);
        assert!(f.has_locked() && f.has_locked_in_share_mode());
        assert_eq!(f.and_persistent(), f);
        let f = f.apply(&[FlagsOp::SetKeyLockedInExclusiveMode, FlagsOp::SetReadable]);
        assert!(f.has_locked() && !f.has_locked_in_share_mode() && f.has_readable());
        assert_eq!(
            f.and_persistent(),
            KeyFlags::EMPTY.apply(&[FlagsOp::SetKeyLocked])
        );
        assert_eq!(KeyFlags::from_bits(0xFFFF).bits(), 0x7FFF);
    }
}
