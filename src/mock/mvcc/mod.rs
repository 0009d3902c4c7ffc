//! The mock MVCC engine (being written).
