//! Unit tests of the raw client's own pieces: range normalisation, the partial-write report,
//! and a smoke test over the embedded mock (the full default pipeline). The ported client-go
//! tests live in `tests/raw/`.

use std::ops::Bound;

use super::*;

fn half_open(r: impl Into<BoundRange>) -> Option<(Vec<u8>, Vec<u8>)> {
    r.into().half_open().expect("not inverted")
}

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn ranges_normalise_to_tikv_half_open_form() {
    assert_eq!(half_open(..), Some((vec![], vec![])));
    assert_eq!(half_open("a".."c"), Some((v("a"), v("c"))));
    assert_eq!(half_open("a"..="c"), Some((v("a"), v("c\0"))));
    assert_eq!(half_open("a"..), Some((v("a"), vec![])));
    assert_eq!(half_open(.."c"), Some((vec![], v("c"))));
    assert_eq!(half_open(..="c"), Some((vec![], v("c\0"))));
    assert_eq!(
        half_open((Bound::Excluded("a"), Bound::Unbounded)),
        Some((v("a\0"), vec![]))
    );
    // client-go's pair form: an empty end is unbounded.
    assert_eq!(
        BoundRange::from_keys("a", "").half_open().unwrap(),
        Some((v("a"), vec![]))
    );
    assert_eq!(
        BoundRange::from_keys("", ""),
        BoundRange::new(Bound::Included(vec![]), Bound::Unbounded)
    );
}

#[test]
fn empty_ranges_hold_no_key() {
    assert_eq!(half_open("a".."a"), None);
    assert_eq!(
        half_open((Bound::Excluded("a"), Bound::Included("a"))),
        None
    );
    assert_eq!(
        half_open((Bound::Excluded("a"), Bound::Excluded("a"))),
        None
    );
    assert_eq!(
        half_open((Bound::Excluded("a"), Bound::Excluded("a\0"))),
        None
    );
    // Nothing sorts below the empty key.
    assert_eq!(half_open(..""), None);
    // `..=""` is exactly the empty key.
    assert_eq!(half_open(..=""), Some((vec![], v("\0"))));
    // A single key.
    assert_eq!(half_open("a"..="a"), Some((v("a"), v("a\0"))));
}

#[test]
fn inverted_ranges_are_refused() {
    for r in [
        BoundRange::from("b".."a"),
        BoundRange::from("b"..="a"),
        BoundRange::from((Bound::Excluded("b"), Bound::Included("a"))),
    ] {
        let err = r.half_open().unwrap_err();
        assert_eq!(err.kind(), tikv_layers::ErrorKind::InvalidArgument, "{r:?}");
    }
}

#[test]
fn partial_write_reports_progress_and_keeps_the_cause() {
    let progress = WriteProgress::default();
    let cause: Error = ErrorDetail::Storage("boom".into()).into();
    // Nothing acknowledged: no report is made by the client (checked in tests/raw); the
    // wrapper itself always attaches one.
    let err = PartialWrite::wrap("batch put", &progress, cause);
    assert!(matches!(err.detail(), ErrorDetail::Storage(m) if m == "boom"));
    let report = PartialWrite::of(&err).expect("report attached");
    assert_eq!(report.operation(), "batch put");
    assert_eq!(report.acknowledged_requests(), 0);
    assert!(matches!(report.cause().detail(), ErrorDetail::Storage(_)));
    assert!(report.to_string().contains("batch put partly applied"));
    let plain: Error = ErrorDetail::Storage("x".into()).into();
    assert!(PartialWrite::of(&plain).is_none());
}

#[test]
fn column_family_names_are_tikvs() {
    assert_eq!(ColumnFamily::default(), ColumnFamily::Default);
    assert_eq!(ColumnFamily::Default.wire(), "");
    assert_eq!(ColumnFamily::Lock.as_str(), "lock");
    assert_eq!(ColumnFamily::Write.to_string(), "write");
}

#[tokio::test(start_paused = true)]
async fn put_get_scan_delete_over_the_embedded_mock() {
    let client = Client::embedded().await.expect("client");
    client.put("k1", "v1").await.expect("put");
    client.put("k2", "").await.expect("put empty");
    assert_eq!(client.get("k1").await.expect("get"), Some(v("v1")));
    assert_eq!(client.get("k2").await.expect("get"), Some(Vec::new()));
    assert_eq!(client.get("k3").await.expect("get"), None);
    let pairs = client.scan("a".."z", 10).await.expect("scan");
    assert_eq!(pairs, vec![KvPair::new("k1", "v1"), KvPair::new("k2", "")]);
    let rev = client.reverse_scan("a".."z", 10).await.expect("rscan");
    assert_eq!(rev[0].key, v("k2"));
    assert_eq!(
        client
            .batch_get(["k2", "k3", "k1", "k2"])
            .await
            .expect("batch get"),
        vec![Some(vec![]), None, Some(v("v1")), Some(vec![])]
    );
    client.delete("k1").await.expect("delete");
    assert_eq!(client.get("k1").await.expect("get"), None);
    assert!(client.cluster_id() > 0);
    assert_eq!(client.api_version(), ApiVersion::V1);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn batch_put_duplicates_take_the_last_value() {
    // RAW-24: every occurrence of a duplicate key carries the last value (and TTL).
    let client = Client::embedded().await.expect("client");
    client
        .batch_put([("a", "1"), ("b", "x"), ("a", "2")])
        .await
        .expect("batch put");
    assert_eq!(client.get("a").await.expect("get"), Some(v("2")));
    assert_eq!(client.get("b").await.expect("get"), Some(v("x")));
}
