//! The raw KV client in a minute: puts, gets, a scan across several regions and a
//! compare-and-swap.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! With no setup it starts the embedded mock cluster (PD and TiKV in this process) and
//! splits it into three regions, so the scan below really crosses region boundaries. To
//! run the same code against a real cluster, name its PD endpoints:
//!
//! ```sh
//! TIKV_PD_ADDRS=127.0.0.1:2379 cargo run --example quickstart
//! ```
#![allow(clippy::print_stdout)]

use tikv::layers::Result;
use tikv::mock::{Mock, MockOptions};
use tikv::raw::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let client = connect().await?;

    // Puts and gets. A missing key is `None`; an empty value is `Some(vec![])`.
    let fruits = [
        ("apple", "red"),
        ("banana", "yellow"),
        ("cherry", "dark red"),
    ];
    for (k, v) in fruits {
        client.put(format!("fruit/{k}"), v).await?;
    }
    client
        .batch_put([("fruit/lime", "green"), ("fruit/plum", "purple")])
        .await?;
    println!(
        "get fruit/apple  -> {}",
        show(client.get("fruit/apple").await?)
    );
    println!(
        "get fruit/durian -> {}",
        show(client.get("fruit/durian").await?)
    );

    // A scan over every key under `fruit/`, in order, whatever regions hold them.
    println!("scan fruit/..fruit0:");
    for pair in client.scan("fruit/".."fruit0", 100).await? {
        println!(
            "  {} = {}",
            String::from_utf8_lossy(&pair.key),
            String::from_utf8_lossy(&pair.value)
        );
    }
    // The two largest keys below `fruit0`, largest first.
    let last_two = client.reverse_scan_keys(.."fruit0", 2).await?;
    let last_two: Vec<_> = last_two
        .iter()
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    println!("reverse scan, limit 2 -> {last_two:?}");

    // Compare-and-swap needs a handle in atomic mode.
    let atomic = client.with_atomic_for_cas(true);
    let (before, swapped) = atomic
        .compare_and_swap("fruit/apple", Some(b"green".to_vec()), "golden")
        .await?;
    println!(
        "cas apple green->golden: swapped={swapped}, value was {}",
        show(before)
    );
    let (before, swapped) = atomic
        .compare_and_swap("fruit/apple", Some(b"red".to_vec()), "golden")
        .await?;
    println!(
        "cas apple red->golden:   swapped={swapped}, value was {}",
        show(before)
    );
    println!(
        "get fruit/apple  -> {}",
        show(client.get("fruit/apple").await?)
    );

    // Leave a real cluster as it was.
    client.delete_range("fruit/".."fruit0").await?;
    client.close().await;
    Ok(())
}

/// A client over the cluster in `TIKV_PD_ADDRS`, or over a fresh embedded mock cluster.
async fn connect() -> Result<Client> {
    let pd: Vec<String> = std::env::var("TIKV_PD_ADDRS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !pd.is_empty() {
        println!("connecting to PD at {pd:?}");
        return Client::connect(&pd).await;
    }
    let mock = Mock::new(MockOptions::default());
    mock.cluster().bootstrap_with_single_store();
    // Raw keys are region keys as they are (API V1): three regions.
    mock.cluster()
        .split_at_keys(&[b"fruit/c".to_vec(), b"fruit/m".to_vec()]);
    println!(
        "embedded mock cluster with {} regions (set TIKV_PD_ADDRS to use a real cluster)",
        mock.cluster().get_all_regions().len()
    );
    Client::builder().embedded(mock).build().await
}

fn show(v: Option<Vec<u8>>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(&v)),
        None => "(not found)".to_owned(),
    }
}
