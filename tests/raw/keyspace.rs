//! API V2: keyspaces created in the mock PD, each client confined to its own (KS-10 ..
//! KS-19). The mock runs its stores under API V2, so it refuses any request that is not
//! stamped V2 or whose keys lack the keyspace prefix: every call succeeding here is also a
//! check of the encoding.

use tikv::layers::ErrorKind;
use tikv::mock::{Mock, MockOptions, encode_key};
use tikv::proto::kvrpcpb;
use tikv::raw::{ApiVersion, Client, ColumnFamily};

use super::common::{b, crc64_ecma, keyspace_id};

async fn keyspace_client(mock: &Mock, name: &str) -> Client {
    Client::builder()
        .embedded(mock.clone())
        .api_version(ApiVersion::V2)
        .keyspace(name)
        .build()
        .await
        .unwrap()
}

fn v2_mock() -> Mock {
    let mut opts = MockOptions::default();
    opts.api_version = kvrpcpb::ApiVersion::V2;
    let mock = Mock::new(opts);
    mock.cluster().bootstrap_with_single_store();
    mock
}

#[tokio::test(start_paused = true)]
async fn keys_are_isolated_per_keyspace_and_scans_stay_inside() {
    isolation(false).await;
}

/// The same over several regions, one of them ending exactly at the keyspace boundary.
#[tokio::test(start_paused = true)]
async fn keyspace_isolation_across_regions() {
    isolation(true).await;
}

async fn isolation(split: bool) {
    let mock = v2_mock();
    let ks1 = mock.pd().create_keyspace("ks1", &[]).unwrap();
    let ks2 = mock.pd().create_keyspace("ks2", &[]).unwrap();
    let one = keyspace_client(&mock, "ks1").await;
    let two = keyspace_client(&mock, "ks2").await;

    let keys = ["a", "k1", "k2", "k3", "z"];
    one.batch_put(keys.iter().map(|k| (b(k), b(&format!("one-{k}")))))
        .await
        .unwrap();
    two.batch_put(keys.iter().map(|k| (b(k), b(&format!("two-{k}")))))
        .await
        .unwrap();

    // Split inside ks1, and exactly at the boundary between the two keyspaces, so scans
    // must walk regions and stop at the keyspace end.
    let prefix = |id: u32, k: &str| {
        let [_, x, y, z] = id.to_be_bytes();
        let mut key = vec![b'r', x, y, z];
        key.extend_from_slice(k.as_bytes());
        encode_key(&key)
    };
    if split {
        mock.cluster().split_at_keys(&[
            prefix(keyspace_id(&ks1), "k2"),
            prefix(keyspace_id(&ks2), ""),
            prefix(keyspace_id(&ks2), "k1"),
        ]);
    }

    // Same keys, different values: each client sees its own.
    assert_eq!(one.get("k1").await.unwrap(), Some(b("one-k1")));
    assert_eq!(two.get("k1").await.unwrap(), Some(b("two-k1")));
    let got = one.batch_get(keys).await.unwrap();
    assert!(
        got.iter()
            .zip(keys)
            .all(|(v, k)| v.as_deref() == Some(format!("one-{k}").as_bytes()))
    );

    // An unbounded scan returns exactly the keyspace's keys, in order.
    let all = one.scan(.., 100).await.unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = all.into_iter().map(Into::into).collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = keys
        .iter()
        .map(|k| (b(k), b(&format!("one-{k}"))))
        .collect();
    assert_eq!(got, want);
    // A reverse scan from above every key returns the largest first, none of ks2's.
    let rev = two.reverse_scan_keys(..b("zz"), 100).await.unwrap();
    assert_eq!(rev, vec![b("z"), b("k3"), b("k2"), b("k1"), b("a")]);

    // Delete-range clears only the caller's keyspace. `..` encodes its end as the keyspace
    // end (the next keyspace's prefix, KS-13), which TiKV admits as a range end; the
    // single-region run uses a bounded range for contrast.
    if split {
        one.delete_range(..).await.unwrap();
    } else {
        one.delete_range(..=b("z")).await.unwrap();
    }
    assert!(one.scan(.., 100).await.unwrap().is_empty());
    assert_eq!(two.scan(.., 100).await.unwrap().len(), keys.len());

    // Checksum counts the stored key, 4-byte keyspace prefix included (RAW-20).
    let sum = two.checksum(..).await.unwrap();
    assert_eq!(sum.total_kvs, keys.len() as u64);
    let mut bytes = 0u64;
    let mut crc = 0u64;
    let [_, x, y, z] = keyspace_id(&ks2).to_be_bytes();
    for k in keys {
        let v = format!("two-{k}");
        bytes += (4 + k.len() + v.len()) as u64;
        let stored = [&[b'r', x, y, z][..], k.as_bytes()].concat();
        crc ^= crc64_ecma(&[&stored, v.as_bytes()]);
    }
    assert_eq!(sum.total_bytes, bytes);
    assert_eq!(sum.crc64_xor, crc);
}

#[tokio::test(start_paused = true)]
async fn v2_defaults_and_refusals() {
    let mock = v2_mock();
    mock.pd().create_keyspace("ks", &[]).unwrap();
    let client = keyspace_client(&mock, "ks").await;
    assert_eq!(client.api_version(), ApiVersion::V2);

    // API V2 keeps TTLs: allowed by default.
    client.put_with_ttl("t", "v", 10).await.unwrap();
    assert!(
        client
            .get_key_ttl("t")
            .await
            .unwrap()
            .is_some_and(|t| t <= 10)
    );

    // Raw data lives in the default column family only.
    let err = client
        .with_cf(ColumnFamily::Write)
        .put("k", "v")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    // The key size counts the 4-byte prefix, as TiKV sees it.
    let small = Client::builder()
        .embedded(mock.clone())
        .api_version(ApiVersion::V2)
        .keyspace("ks")
        .max_key_size(8)
        .build()
        .await
        .unwrap();
    small.put("1234", "v").await.unwrap();
    let err = small.put("12345", "v").await.unwrap_err();
    assert!(
        matches!(
            err.detail(),
            tikv::layers::ErrorDetail::KeyTooLarge { size: 9 }
        ),
        "{err:?}"
    );

    // An unknown keyspace fails the build.
    let err = Client::builder()
        .embedded(mock.clone())
        .api_version(ApiVersion::V2)
        .keyspace("nope")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}
