//! Compatibility checks for the project's `.proto` files.
//!
//! Two kinds of test live here:
//!
//! * `declarations_match_kvproto` compares our descriptors with pingcap/kvproto's. It needs a
//!   kvproto checkout and runs only when `KVPROTO_DIR` points at one, e.g.
//!   `KVPROTO_DIR=/path/to/kvproto cargo test -p tikv-proto --test kvproto_compat`.
//!   Without the variable it says why on stderr and passes.
//! * The `wire_*` tests always run. They pin, at the byte level, the facts listed in
//!   `shared/parity/proto-subset.md` §5.2 that a careless edit of a `.proto` file would break
//!   without any compiler noticing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
};

// ===== descriptor comparison =====

/// Upstream fields we deliberately leave out: the BatchCommands arms for the old KvImport, the
/// old per-region GC, RawBatchScan and RawCoprocessor (see `proto/README.md`).
const ALLOWED_MISSING: &[&str] = &[
    ".tikvpb.BatchCommandsRequest.Request.Import = 5",
    ".tikvpb.BatchCommandsRequest.Request.GC = 11",
    ".tikvpb.BatchCommandsRequest.Request.RawBatchScan = 21",
    ".tikvpb.BatchCommandsRequest.Request.RawCoprocessor = 34",
    ".tikvpb.BatchCommandsResponse.Response.Import = 5",
    ".tikvpb.BatchCommandsResponse.Response.GC = 11",
    ".tikvpb.BatchCommandsResponse.Response.RawBatchScan = 21",
    ".tikvpb.BatchCommandsResponse.Response.RawCoprocessor = 34",
];

/// Every `.proto` file directly inside `dir`, sorted.
fn proto_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    files
}

/// Compiles every `.proto` file in `dir` (and, through imports, whatever they need).
fn compile_dir(dir: &Path, includes: &[&Path]) -> FileDescriptorSet {
    let files = proto_files(dir);
    assert!(!files.is_empty(), "no .proto files in {}", dir.display());
    let mut all_includes = vec![dir];
    all_includes.extend_from_slice(includes);
    let mut compiler = protox::Compiler::new(all_includes)
        .unwrap_or_else(|e| panic!("protox setup for {}: {e}", dir.display()));
    compiler
        .include_imports(true)
        .include_source_info(false)
        .open_files(&files)
        .unwrap_or_else(|e| panic!("protox failed on {}: {e:?}", dir.display()));
    compiler.file_descriptor_set()
}

/// All definitions of a descriptor set, by fully qualified name (`.pkg.Outer.Inner`).
#[derive(Default)]
struct Index<'a> {
    messages: BTreeMap<String, &'a DescriptorProto>,
    enums: BTreeMap<String, &'a EnumDescriptorProto>,
    services: BTreeMap<String, &'a ServiceDescriptorProto>,
    /// `file name -> (package, syntax)`.
    files: BTreeMap<String, (String, String)>,
}

impl<'a> Index<'a> {
    fn new(set: &'a FileDescriptorSet) -> Self {
        let mut index = Index::default();
        for file in &set.file {
            let scope = format!(".{}", file.package());
            index.files.insert(
                file.name().to_owned(),
                (file.package().to_owned(), file.syntax().to_owned()),
            );
            for m in &file.message_type {
                index.add_message(&scope, m);
            }
            for e in &file.enum_type {
                index.enums.insert(format!("{scope}.{}", e.name()), e);
            }
            for s in &file.service {
                index.services.insert(format!("{scope}.{}", s.name()), s);
            }
        }
        index
    }

    fn add_message(&mut self, scope: &str, m: &'a DescriptorProto) {
        let name = format!("{scope}.{}", m.name());
        for nested in &m.nested_type {
            self.add_message(&name, nested);
        }
        for e in &m.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e);
        }
        self.messages.insert(name, m);
    }
}

/// The properties of a field that matter for the wire and for generated names.
fn field_shape(m: &DescriptorProto, f: &FieldDescriptorProto) -> String {
    let oneof = f
        .oneof_index
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| m.oneof_decl.get(i))
        .map(|o| o.name().to_owned());
    let label = Label::try_from(f.label.unwrap_or_default()).map_or("?", |l| l.as_str_name());
    let ty = Type::try_from(f.r#type.unwrap_or_default()).map_or("?", |t| t.as_str_name());
    format!(
        "name={} number={} label={label} type={ty} type_name={:?} oneof={oneof:?} \
         proto3_optional={:?} json_name={:?} packed={:?}",
        f.name(),
        f.number(),
        f.type_name,
        f.proto3_optional,
        f.json_name,
        f.options.as_ref().and_then(|o| o.packed),
    )
}

fn reserved_shape(m: &DescriptorProto) -> (Vec<(i32, i32)>, BTreeSet<String>) {
    let mut ranges: Vec<(i32, i32)> = m
        .reserved_range
        .iter()
        .map(|r| (r.start(), r.end()))
        .collect();
    ranges.sort_unstable();
    (ranges, m.reserved_name.iter().cloned().collect())
}

/// Compares one message we declare with its upstream twin. Upstream fields we lack go to
/// `missing`; every other difference goes to `errors`.
fn compare_message(
    name: &str,
    ours: &DescriptorProto,
    theirs: &DescriptorProto,
    errors: &mut Vec<String>,
    missing: &mut Vec<String>,
) {
    let their_fields: BTreeMap<i32, &FieldDescriptorProto> =
        theirs.field.iter().map(|f| (f.number(), f)).collect();
    let our_numbers: BTreeSet<i32> = ours.field.iter().map(|f| f.number()).collect();
    for f in &ours.field {
        match their_fields.get(&f.number()) {
            None => errors.push(format!(
                "{name}.{} = {}: no such field number upstream",
                f.name(),
                f.number()
            )),
            Some(t) => {
                let (a, b) = (field_shape(ours, f), field_shape(theirs, t));
                if a != b {
                    errors.push(format!(
                        "{name}: field differs\n  ours:     {a}\n  upstream: {b}"
                    ));
                }
            }
        }
    }
    for t in &theirs.field {
        if !our_numbers.contains(&t.number()) {
            missing.push(format!("{name}.{} = {}", t.name(), t.number()));
        }
    }

    let oneofs = |m: &DescriptorProto| -> Vec<String> {
        m.oneof_decl.iter().map(|o| o.name().to_owned()).collect()
    };
    if oneofs(ours) != oneofs(theirs) {
        errors.push(format!(
            "{name}: oneofs differ: ours {:?}, upstream {:?}",
            oneofs(ours),
            oneofs(theirs)
        ));
    }
    if reserved_shape(ours) != reserved_shape(theirs) {
        errors.push(format!(
            "{name}: reserved ranges/names differ: ours {:?}, upstream {:?}",
            reserved_shape(ours),
            reserved_shape(theirs)
        ));
    }
    let map_entry = |m: &DescriptorProto| m.options.as_ref().and_then(|o| o.map_entry);
    if map_entry(ours) != map_entry(theirs) {
        errors.push(format!("{name}: map_entry option differs"));
    }
}

fn compare_enum(
    name: &str,
    ours: &EnumDescriptorProto,
    theirs: &EnumDescriptorProto,
    errors: &mut Vec<String>,
) {
    let values = |e: &EnumDescriptorProto| -> Vec<(String, i32)> {
        e.value
            .iter()
            .map(|v| (v.name().to_owned(), v.number()))
            .collect()
    };
    let sorted = |mut v: Vec<(String, i32)>| {
        v.sort();
        v
    };
    if sorted(values(ours)) != sorted(values(theirs)) {
        errors.push(format!(
            "{name}: enum values differ\n  ours:     {:?}\n  upstream: {:?}",
            values(ours),
            values(theirs)
        ));
    }
    let alias = |e: &EnumDescriptorProto| e.options.as_ref().and_then(|o| o.allow_alias);
    if alias(ours) != alias(theirs) {
        errors.push(format!("{name}: allow_alias differs"));
    }
}

fn compare_service(
    name: &str,
    ours: &ServiceDescriptorProto,
    theirs: &ServiceDescriptorProto,
    errors: &mut Vec<String>,
) {
    for m in &ours.method {
        let Some(t) = theirs.method.iter().find(|t| t.name() == m.name()) else {
            errors.push(format!("{name}/{}: no such method upstream", m.name()));
            continue;
        };
        let shape = |m: &prost_types::MethodDescriptorProto| {
            format!(
                "({}{}) -> ({}{})",
                if m.client_streaming() { "stream " } else { "" },
                m.input_type(),
                if m.server_streaming() { "stream " } else { "" },
                m.output_type(),
            )
        };
        if shape(m) != shape(t) {
            errors.push(format!(
                "{name}/{}: signature differs: ours {}, upstream {}",
                m.name(),
                shape(m),
                shape(t)
            ));
        }
    }
}

/// Counts of what was compared, to show the check did real work.
#[derive(Debug, Default)]
struct Tally {
    messages: usize,
    enums: usize,
    fields: usize,
    services: usize,
    methods: usize,
}

#[test]
#[allow(clippy::print_stderr)]
fn declarations_match_kvproto() {
    let Some(kvproto) = std::env::var_os("KVPROTO_DIR") else {
        eprintln!(
            "skipping declarations_match_kvproto: set KVPROTO_DIR to a pingcap/kvproto checkout"
        );
        return;
    };
    let kvproto = PathBuf::from(kvproto);
    let ours_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let ours_set = compile_dir(&ours_dir, &[]);
    let theirs_set = compile_dir(&kvproto.join("proto"), &[&kvproto.join("include")]);
    let ours = Index::new(&ours_set);
    let theirs = Index::new(&theirs_set);

    let mut errors = Vec::new();
    let mut missing = Vec::new();
    let mut tally = Tally::default();

    for (file, (package, syntax)) in &ours.files {
        match theirs.files.get(file) {
            None => errors.push(format!("{file}: no such file upstream")),
            Some((p, s)) if (p, s) != (package, syntax) => errors.push(format!(
                "{file}: package/syntax {package}/{syntax}, upstream {p}/{s}"
            )),
            Some(_) => {}
        }
    }
    for (name, m) in &ours.messages {
        tally.messages += 1;
        tally.fields += m.field.len();
        match theirs.messages.get(name) {
            None => errors.push(format!("{name}: no such message upstream")),
            Some(t) => compare_message(name, m, t, &mut errors, &mut missing),
        }
    }
    for (name, e) in &ours.enums {
        tally.enums += 1;
        match theirs.enums.get(name) {
            None => errors.push(format!("{name}: no such enum upstream")),
            Some(t) => compare_enum(name, e, t, &mut errors),
        }
    }
    for (name, s) in &ours.services {
        tally.services += 1;
        tally.methods += s.method.len();
        match theirs.services.get(name) {
            None => errors.push(format!("{name}: no such service upstream")),
            Some(t) => compare_service(name, s, t, &mut errors),
        }
    }

    eprintln!(
        "compared with {}: {tally:?}; upstream fields we do not declare: {missing:?}",
        kvproto.display()
    );
    let allowed: BTreeSet<&str> = ALLOWED_MISSING.iter().copied().collect();
    let lacking: BTreeSet<&str> = missing.iter().map(String::as_str).collect();
    for extra in lacking.difference(&allowed) {
        errors.push(format!("{extra}: declared upstream, missing here"));
    }
    for gone in allowed.difference(&lacking) {
        errors.push(format!(
            "{gone}: listed as a deliberate omission but no longer missing; update ALLOWED_MISSING"
        ));
    }
    assert!(
        errors.is_empty(),
        "{} difference(s) from kvproto:\n{}",
        errors.len(),
        errors.join("\n")
    );
    // The check compiled something real: the subset has hundreds of messages.
    assert!(tally.messages > 250 && tally.methods > 70, "{tally:?}");
}

// ===== wire facts (always run) =====

use tikv_proto::{errorpb, keyspacepb, kvrpcpb, pdpb, tikvpb};

/// `Context.keyspace` is a oneof, so keyspace id 0 (the DEFAULT keyspace) is still written.
#[test]
fn wire_context_keyspace_id_zero_is_encoded() {
    let ctx = kvrpcpb::Context {
        keyspace: Some(kvrpcpb::context::Keyspace::KeyspaceId(0)),
        ..Default::default()
    };
    // Field 32, varint: key (32 << 3) | 0 = 256 = 0x80 0x02, then the value 0.
    assert_eq!(ctx.encode_to_vec(), [0x80, 0x02, 0x00]);
    let back = kvrpcpb::Context::decode(&[0x80, 0x02, 0x00][..]).unwrap();
    assert_eq!(
        back.keyspace,
        Some(kvrpcpb::context::Keyspace::KeyspaceId(0))
    );
    // Unset, nothing is written at all.
    assert!(kvrpcpb::Context::default().encode_to_vec().is_empty());

    // The null keyspace that API V1 sends.
    let v1 = kvrpcpb::Context {
        keyspace: Some(kvrpcpb::context::Keyspace::KeyspaceId(u32::MAX)),
        ..Default::default()
    };
    assert_eq!(
        v1.encode_to_vec(),
        [0x80, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f]
    );

    // Same rule on the PD side.
    let meta = keyspacepb::KeyspaceMeta {
        keyspace: Some(keyspacepb::keyspace_meta::Keyspace::Id(0)),
        ..Default::default()
    };
    assert_eq!(meta.encode_to_vec(), [0x08, 0x00]);
    let scope = pdpb::KeyspaceScope {
        keyspace: Some(pdpb::keyspace_scope::Keyspace::KeyspaceId(0)),
    };
    assert_eq!(scope.encode_to_vec(), [0x08, 0x00]);
}

/// The `Empty` arm of both BatchCommands oneofs is number 255.
#[test]
fn wire_batch_commands_empty_arm_is_255() {
    use tikvpb::batch_commands_request::request::Cmd as ReqCmd;
    use tikvpb::batch_commands_response::response::Cmd as RespCmd;

    let req = tikvpb::batch_commands_request::Request {
        cmd: Some(ReqCmd::Empty(tikvpb::BatchCommandsEmptyRequest::default())),
    };
    // Field 255, length-delimited: key (255 << 3) | 2 = 2042 = 0xfa 0x0f, then length 0.
    assert_eq!(req.encode_to_vec(), [0xfa, 0x0f, 0x00]);
    let resp = tikvpb::batch_commands_response::Response {
        cmd: Some(RespCmd::Empty(tikvpb::BatchCommandsEmptyResponse {
            test_id: 7,
        })),
    };
    assert_eq!(resp.encode_to_vec(), [0xfa, 0x0f, 0x02, 0x08, 0x07]);
    let back = tikvpb::batch_commands_response::Response::decode(&[0xfa, 0x0f, 0x00][..]).unwrap();
    assert_eq!(
        back.cmd,
        Some(RespCmd::Empty(tikvpb::BatchCommandsEmptyResponse::default()))
    );

    // A whole batch: request 1 carries an empty Get under id 42 (packed ids).
    let batch = tikvpb::BatchCommandsRequest {
        requests: vec![tikvpb::batch_commands_request::Request {
            cmd: Some(ReqCmd::Get(kvrpcpb::GetRequest::default())),
        }],
        request_ids: vec![42],
        client_send_time_ns: 0,
    };
    assert_eq!(
        batch.encode_to_vec(),
        [0x0a, 0x02, 0x0a, 0x00, 0x12, 0x01, 0x2a]
    );
}

/// Keys are `bytes`: any byte string round-trips. Text fields are `string`, which prost checks.
#[test]
fn wire_binary_keys_round_trip() {
    let key = vec![0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28];
    assert!(std::str::from_utf8(&key).is_err());
    let req = kvrpcpb::GetRequest {
        key: key.clone(),
        version: 400_000_000_000_000_000,
        ..Default::default()
    };
    let back = kvrpcpb::GetRequest::decode(req.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back.key, key);
    assert_eq!(back, req);

    let pair = kvrpcpb::KvPair {
        key: key.clone(),
        value: key.clone(),
        ..Default::default()
    };
    let resp = kvrpcpb::BatchGetResponse {
        pairs: vec![pair.clone()],
        ..Default::default()
    };
    let back = kvrpcpb::BatchGetResponse::decode(resp.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back.pairs, vec![pair]);

    // The same bytes in a `string` field (errorpb.Error.message = 1) make prost reject the
    // message; this is why no key may ever be declared `string`.
    let mut raw = vec![0x0a, u8::try_from(key.len()).unwrap()];
    raw.extend_from_slice(&key);
    assert!(errorpb::Error::decode(raw.as_slice()).is_err());
    // ...while PD's service id, text carried as `bytes`, accepts it.
    let sp = pdpb::UpdateServiceGcSafePointRequest {
        service_id: key.clone(),
        ..Default::default()
    };
    let back =
        pdpb::UpdateServiceGcSafePointRequest::decode(sp.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back.service_id, key);
}

/// Empty messages are flags: their presence is the signal, and it survives the wire.
#[test]
fn wire_empty_messages_are_flags() {
    let err = errorpb::Error {
        stale_command: Some(errorpb::StaleCommand {}),
        ..Default::default()
    };
    // Field 7, length-delimited, zero length.
    assert_eq!(err.encode_to_vec(), [0x3a, 0x00]);
    let back = errorpb::Error::decode(&[0x3a, 0x00][..]).unwrap();
    assert!(back.stale_command.is_some());
    assert!(errorpb::Error::default().stale_command.is_none());

    let compact = kvrpcpb::CompactError {
        error: Some(kvrpcpb::compact_error::Error::ErrCompactInProgress(
            kvrpcpb::CompactErrorCompactInProgress {},
        )),
    };
    assert_eq!(compact.encode_to_vec(), [0x1a, 0x00]);
}

/// Signed fields stay two's-complement varints (not zigzag), and repeated scalars are packed.
#[test]
fn wire_signed_and_packed_scalars() {
    let sp = pdpb::UpdateServiceGcSafePointRequest {
        ttl: -1,
        ..Default::default()
    };
    assert_eq!(
        sp.encode_to_vec(),
        [
            0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ]
    );

    let ctx = kvrpcpb::Context {
        resolved_locks: vec![1, 300],
        ..Default::default()
    };
    // Field 13 packed: key 0x6a, length 3, then 1 and 300 (0xac 0x02).
    assert_eq!(ctx.encode_to_vec(), [0x6a, 0x03, 0x01, 0xac, 0x02]);
    // The unpacked form (one key per element) decodes to the same value.
    let unpacked = [0x68, 0x01, 0x68, 0xac, 0x02];
    assert_eq!(kvrpcpb::Context::decode(&unpacked[..]).unwrap(), ctx);

    // Nested-message field numbers that are easy to get wrong.
    let prewrite = kvrpcpb::PrewriteRequest {
        txn_file_chunks: vec![5],
        ..Default::default()
    };
    // Field 100 packed: key (100 << 3) | 2 = 802 = 0xa2 0x06.
    assert_eq!(prewrite.encode_to_vec(), [0xa2, 0x06, 0x01, 0x05]);
}

/// Maps are repeated entry messages with the key at 1 and the value at 2.
#[test]
fn wire_map_entries() {
    let mut meta = keyspacepb::KeyspaceMeta::default();
    meta.config
        .insert("gc_management_type".to_owned(), "keyspace_level".to_owned());
    let bytes = meta.encode_to_vec();
    assert_eq!(bytes[0], 0x3a, "config is field 7, length-delimited");
    let back = keyspacepb::KeyspaceMeta::decode(bytes.as_slice()).unwrap();
    assert_eq!(back.config, meta.config);
}

/// Service names form the gRPC paths, so they must match kvproto letter for letter.
#[test]
fn grpc_service_names() {
    assert_eq!(tikvpb::tikv_server::SERVICE_NAME, "tikvpb.Tikv");
    assert_eq!(pdpb::pd_server::SERVICE_NAME, "pdpb.PD");
    assert_eq!(
        keyspacepb::keyspace_server::SERVICE_NAME,
        "keyspacepb.Keyspace"
    );
    assert_eq!(
        tikv_proto::debugpb::debug_server::SERVICE_NAME,
        "debugpb.Debug"
    );
    assert_eq!(
        tikv_proto::resource_manager::resource_manager_server::SERVICE_NAME,
        "resource_manager.ResourceManager"
    );
}
