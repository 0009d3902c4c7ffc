//! Compiles the project's own `.proto` files (under `proto/proto/`) into Rust at build time.
//!
//! `protox` parses the files in pure Rust, so no system `protoc` is needed; the resulting
//! descriptor set is handed to `tonic-prost-build`, which writes prost messages plus tonic
//! client and server stubs into `OUT_DIR`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Keys and values are cheap to share as `bytes::Bytes`? Not yet: the client works on
        // `Vec<u8>` like the rest of the prost ecosystem; switching is a codegen-only change.
        .compile_fds(fds)?;
    Ok(())
}
