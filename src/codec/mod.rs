//! Key encodings shared by the transaction layer.
