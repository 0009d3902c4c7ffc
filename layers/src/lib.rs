//! tikv-layers
