//! Smoke tests of the raw client over the embedded mock (the full default pipeline).

use super::*;

#[tokio::test(start_paused = true)]
async fn put_get_scan_delete_over_the_embedded_mock() {
    let client = Client::embedded().await.expect("client");
    client
        .put(b"k1".to_vec(), b"v1".to_vec())
        .await
        .expect("put");
    client
        .put(b"k2".to_vec(), Vec::new())
        .await
        .expect("put empty");
    assert_eq!(
        client.get(b"k1".to_vec()).await.expect("get"),
        Some(b"v1".to_vec())
    );
    assert_eq!(
        client.get(b"k2".to_vec()).await.expect("get"),
        Some(Vec::new())
    );
    assert_eq!(client.get(b"k3".to_vec()).await.expect("get"), None);
    let pairs = client
        .scan(b"a".to_vec()..b"z".to_vec(), 10)
        .await
        .expect("scan");
    assert_eq!(pairs.len(), 2);
    let rev = client
        .reverse_scan(b"a".to_vec()..b"z".to_vec(), 10)
        .await
        .expect("rscan");
    assert_eq!(rev[0].key, b"k2".to_vec());
    client.delete(b"k1".to_vec()).await.expect("delete");
    assert_eq!(client.get(b"k1".to_vec()).await.expect("get"), None);
}
