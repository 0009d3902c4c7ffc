//! Store paths: `tikv://pd1:2379,pd2:2379?disableGC=true&keyspaceName=ks` (client-go
//! `config.ParsePath`).

use tikv_layers::{Error, ErrorDetail};

/// What a store path names (client-go `ParsePath`'s three results).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StorePath {
    /// The PD endpoints, `host:port`, in the order given (client-go `etcdAddrs`).
    pub pd_endpoints: Vec<String>,
    /// The `disableGC` query parameter: whether the caller should not run GC (client-go
    /// `disableGC`; default `false`).
    pub disable_gc: bool,
    /// The `keyspaceName` query parameter; `None` when absent or empty (client-go
    /// `keyspaceName`, "" there).
    pub keyspace_name: Option<String>,
}

/// Why a store path was rejected by [`parse_path`].
///
/// Converts into [`Error`] as [`ErrorDetail::InvalidConfig`] on the field `path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path has no `scheme://` prefix.
    #[error("missing `tikv://` prefix in {0:?}")]
    MissingScheme(String),
    /// The scheme is not `tikv` (compared case-insensitively).
    #[error("URI scheme expected [tikv] but found [{0}]")]
    WrongScheme(String),
    /// The host list is empty or has an empty entry (as in `tikv://a,,b`).
    #[error("empty PD endpoint in {0:?}")]
    EmptyEndpoint(String),
    /// `disableGC` is neither `true` nor `false` (any case).
    #[error("disableGC flag should be true/false, got {0:?}")]
    InvalidDisableGc(String),
    /// A `%` escape in the query is not followed by two hex digits, or decodes to invalid
    /// UTF-8.
    #[error("invalid percent-encoding in query parameter {0:?}")]
    InvalidEscape(String),
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Self {
        Error::new(ErrorDetail::InvalidConfig {
            field: "path",
            reason: e.to_string(),
        })
        .with_source(e)
    }
}

/// Parses a store path `tikv://host1:port,host2:port[/...][?disableGC=..&keyspaceName=..]`
/// (client-go `config.ParsePath`).
///
/// The scheme is matched case-insensitively. Other query parameters (such as client-go's
/// `cluster`) are ignored; of a repeated parameter the first counts, as in Go's
/// `url.Values.Get`. Query values are percent-decoded, `+` meaning a space. Unlike client-go,
/// an empty endpoint (`tikv://` or `tikv://a,,b`) is an error instead of an empty address.
///
/// ```
/// use tikv::config::parse_path;
///
/// let p = parse_path("tikv://pd1:2379,pd2:2379?disableGC=true&keyspaceName=ks")?;
/// assert_eq!(p.pd_endpoints, ["pd1:2379", "pd2:2379"]);
/// assert!(p.disable_gc);
/// assert_eq!(p.keyspace_name.as_deref(), Some("ks"));
/// assert!(parse_path("http://pd1:2379").is_err());
/// # Ok::<(), tikv::config::PathError>(())
/// ```
pub fn parse_path(path: &str) -> Result<StorePath, PathError> {
    let (scheme, rest) = path
        .split_once("://")
        .ok_or_else(|| PathError::MissingScheme(path.to_owned()))?;
    if !scheme.eq_ignore_ascii_case("tikv") {
        return Err(PathError::WrongScheme(scheme.to_owned()));
    }
    // Drop the fragment, then split authority[/path] from the query.
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    // Go's URL host excludes any `user:password@` prefix.
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let pd_endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
    if pd_endpoints.iter().any(String::is_empty) {
        return Err(PathError::EmptyEndpoint(path.to_owned()));
    }

    let mut disable_gc = None;
    let mut keyspace_name = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key)?;
        match key.as_str() {
            "disableGC" if disable_gc.is_none() => disable_gc = Some(decode(value)?),
            "keyspaceName" if keyspace_name.is_none() => keyspace_name = Some(decode(value)?),
            _ => {}
        }
    }
    let disable_gc = match disable_gc
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("true") => true,
        None | Some("false" | "") => false,
        Some(_) => {
            return Err(PathError::InvalidDisableGc(disable_gc.unwrap_or_default()));
        }
    };
    Ok(StorePath {
        pd_endpoints,
        disable_gc,
        keyspace_name: keyspace_name.filter(|k| !k.is_empty()),
    })
}

/// Percent-decodes one query component (`+` is a space).
fn decode(s: &str) -> Result<String, PathError> {
    let bad = || PathError::InvalidEscape(s.to_owned());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}
