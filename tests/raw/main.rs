//! The raw client against the embedded mock cluster (and a real cluster when
//! `TIKV_PD_ADDRS` is set): the ported client-go tests of area RAW, the bad-input
//! rules, API V2 keyspaces, and property tests of scans against a `BTreeMap` model.
//!
//! | module | client-go | IDs |
//! | --- | --- | --- |
//! | [`rawkv`] | `rawkv/rawkv_test.go` | T-RAW-001 .. T-RAW-013 |
//! | [`api_mock`] | `integration_tests/raw/api_mock_test.go` | T-RAW-015 .. T-RAW-021 |
//! | [`api`] | `integration_tests/raw/api_test.go` (real cluster only) | T-RAW-022 .. T-RAW-031 |
//! | [`bad_input`], [`keyspace`], [`properties`] | — | issue 7 |
//!
//! T-RAW-014 (`integration_tests/raw/util_test.go` `TestMain`) is a goroutine-leak check
//! with no Rust counterpart.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

mod api;
mod api_mock;
mod bad_input;
mod grpc;
mod keyspace;
mod properties;
mod rawkv;
