//! The TiKV wire protocol as the `tikv` client speaks it.
//!
//! The `.proto` files under `proto/proto/` are written in this repository and are
//! field-for-field compatible with pingcap/kvproto (same packages, message and field names,
//! field numbers, types and labels, and the same gRPC service paths). They declare only what
//! the client and the embedded mock cluster use; `proto/README.md` records the kvproto commit
//! they were checked against. Code is generated at build time by `protox` and
//! `tonic-prost-build`: prost messages plus tonic client and server stubs.
//!
//! Each module below is one protobuf package; the names match kvproto's Go packages so that
//! code ported from client-go reads the same (`kvrpcpb::GetRequest`, `errorpb::Error`, ...).

// Generated code: naming and docs come from the .proto files, not from our lint rules.
#![allow(
    missing_docs,
    unreachable_pub,
    non_camel_case_types,
    clippy::all,
    clippy::unwrap_used,
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]

macro_rules! package {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
        }
    };
}

package!(
    /// Keyspace identity shared by several packages.
    apipb
);
package!(
    /// Coprocessor (push-down) requests and responses.
    coprocessor
);
package!(
    /// The deadlock detector's wait-for entries.
    deadlock
);
package!(
    /// The TiKV debug service (region properties).
    debugpb
);
package!(
    /// Encryption metadata carried by regions.
    encryptionpb
);
package!(
    /// Region errors returned by TiKV.
    errorpb
);
package!(
    /// Keyspace metadata and the PD keyspace service.
    keyspacepb
);
package!(
    /// Every TiKV key-value request and response (transactional and raw).
    kvrpcpb
);
package!(
    /// Cluster metadata: stores, regions, peers, epochs, buckets.
    metapb
);
package!(
    /// TiFlash MPP task messages (kept for the coprocessor closure).
    mpp
);
package!(
    /// The PD service: members, TSO, regions, stores, GC, keyspaces.
    pdpb
);
package!(
    /// Resource-control consumption and resource groups.
    resource_manager
);
package!(
    /// The TiKV gRPC service, including the `BatchCommands` stream.
    tikvpb
);
package!(
    /// Trace context propagated with requests.
    tracepb
);
