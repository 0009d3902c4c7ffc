//! The data set and the keys each workload touches, shared by the server (split points) and
//! the clients (what to read and write), so both clients do exactly the same work.
//!
//! Raw API V1: keys are PD keys as they are, no encoding on either side.
//!
//! - `row/0000` .. `row/0999`: 1000 rows of [`VALUE_LEN`] bytes. Split points every 200 rows
//!   put them in five regions, so the 1000-row scan crosses five regions (and, with leaders
//!   spread round-robin, all three stores).
//! - `put/NN`: the keys the put workload overwrites (the region before the rows).
//! - keys from `s` on: an empty last region.

/// Rows preloaded for the read workloads.
pub(crate) const ROWS: usize = 1000;
/// Bytes per row value.
pub(crate) const VALUE_LEN: usize = 100;
/// Rows per region of the row range.
const ROWS_PER_REGION: usize = 200;
/// Keys of one batch get.
pub(crate) const BATCH: usize = 100;
/// Distinct keys the get workload cycles through (spread over the five row regions).
pub(crate) const GET_KEYS: usize = 16;
/// Distinct keys the put workload cycles through.
const PUT_KEYS: usize = 64;

/// The key of row `i`.
pub(crate) fn row(i: usize) -> Vec<u8> {
    format!("row/{i:04}").into_bytes()
}

/// The value of row `i`: [`VALUE_LEN`] bytes starting with the row number.
pub(crate) fn value(i: usize) -> Vec<u8> {
    let mut v = format!("value-{i:04}-").into_bytes();
    v.resize(VALUE_LEN, b'x');
    v
}

/// PD-space split keys: every [`ROWS_PER_REGION`] rows, and after the rows.
pub(crate) fn split_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (ROWS_PER_REGION..ROWS)
        .step_by(ROWS_PER_REGION)
        .map(row)
        .collect();
    keys.push(b"s".to_vec());
    keys
}

/// The row index the `n`-th get reads: [`GET_KEYS`] rows spread evenly over the row range.
pub(crate) fn get_row(n: usize) -> usize {
    (n % GET_KEYS) * (ROWS / GET_KEYS) + 7
}

/// The key the `n`-th put writes.
pub(crate) fn put_key(n: usize) -> Vec<u8> {
    format!("put/{:02}", n % PUT_KEYS).into_bytes()
}

/// The value every put writes (as long as a row value).
pub(crate) fn put_value() -> Vec<u8> {
    value(0)
}

/// The keys of the `n`-th batch get: every tenth row, offset by `n`, so each batch spans all
/// five row regions.
pub(crate) fn batch_keys(n: usize) -> Vec<Vec<u8>> {
    let step = ROWS / BATCH;
    (0..BATCH).map(|i| row(i * step + n % step)).collect()
}

/// The scan range: exactly the [`ROWS`] rows.
pub(crate) fn scan_range() -> (Vec<u8>, Vec<u8>) {
    (row(0), row(ROWS))
}
