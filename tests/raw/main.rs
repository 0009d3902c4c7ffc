//! The raw client against the embedded mock cluster (and a real cluster when
//! `TIKV_PD_ADDRS` is set): ported client-go tests of area RAW.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]
