//! RU v2 accounting (being written).
