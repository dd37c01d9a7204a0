//! Parsing `--cache-to` and `--cache-from` values (docker buildx spellings) into
//! `engine::CacheExport` / `engine::CacheImport`. An unknown key, type or value is an error.

use engine::{CacheExport, CacheImport, CacheLocation, CacheMode};
use registry::{Compression, Reference};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a `--cache-to` / `--cache-from` value was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {flag} {spec:?}: {reason}")]
pub struct CacheSpecError {
    /// `--cache-to` or `--cache-from`.
    pub flag: &'static str,
    /// The rejected value.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

/// Cache backends of BuildKit that rbuild does not implement.
const UNSUPPORTED: &[&str] = &["gha", "s3", "azblob"];

/// The key=value fields of a spec; a value without `=` is a registry reference (buildx).
fn fields(flag: &'static str, spec: &str) -> Result<BTreeMap<String, String>, CacheSpecError> {
    let err = |reason: String| CacheSpecError { flag, spec: spec.into(), reason };
    let mut out = BTreeMap::new();
    if !spec.contains('=') {
        if spec.trim().is_empty() {
            return Err(err("empty value".into()));
        }
        out.insert("type".into(), "registry".into());
        out.insert("ref".into(), spec.trim().into());
        return Ok(out);
    }
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| err(format!("{part:?} is not key=value")))?;
        if out.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
            return Err(err(format!("{} given twice", k.trim())));
        }
    }
    Ok(out)
}

/// The location of a spec: `type=registry,ref=` or `type=local,<path_key>=`.
fn location(
    flag: &'static str,
    spec: &str,
    fields: &mut BTreeMap<String, String>,
    path_key: &str,
) -> Result<CacheLocation, CacheSpecError> {
    let err = |reason: String| CacheSpecError { flag, spec: spec.into(), reason };
    let kind = fields.remove("type").unwrap_or_else(|| "registry".into());
    match kind.as_str() {
        "registry" => {
            let r = fields.remove("ref").ok_or_else(|| err("type=registry needs ref=NAME".into()))?;
            let r = r.parse::<Reference>().map_err(|e| err(format!("invalid ref {r:?}: {}", e.reason)))?;
            Ok(CacheLocation::Registry(r))
        }
        "local" => match fields.remove(path_key) {
            Some(p) if !p.is_empty() => Ok(CacheLocation::Local(PathBuf::from(p))),
            _ => Err(err(format!("type=local needs {path_key}=DIR"))),
        },
        "inline" if flag == "--cache-to" => Ok(CacheLocation::Inline),
        "inline" => Err(err(
            "an inline cache is read from the image itself: use --cache-from type=registry,ref=IMAGE".into(),
        )),
        t if UNSUPPORTED.contains(&t) => {
            Err(err(format!("type={t} is not supported by rbuild: use type=registry or type=local")))
        }
        t => Err(err(format!("unknown type {t:?} (registry, local, inline)"))),
    }
}

fn take_bool(
    flag: &'static str,
    spec: &str,
    fields: &mut BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, CacheSpecError> {
    match fields.remove(key).as_deref() {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(CacheSpecError {
            flag,
            spec: spec.into(),
            reason: format!("{key} must be true or false, not {v:?}"),
        }),
    }
}

fn no_unknown_keys(
    flag: &'static str,
    spec: &str,
    fields: &BTreeMap<String, String>,
) -> Result<(), CacheSpecError> {
    match fields.keys().next() {
        Some(key) => Err(CacheSpecError { flag, spec: spec.into(), reason: format!("unknown key {key:?}") }),
        None => Ok(()),
    }
}

/// Parses one `--cache-to` value.
pub fn parse_cache_to(spec: &str) -> Result<CacheExport, CacheSpecError> {
    const FLAG: &str = "--cache-to";
    let err = |reason: String| CacheSpecError { flag: FLAG, spec: spec.into(), reason };
    let mut fields = fields(FLAG, spec)?;
    let location = location(FLAG, spec, &mut fields, "dest")?;
    if location == CacheLocation::Inline {
        // The cache goes into the image config and uses the image's own layers.
        return match fields.remove("mode").as_deref() {
            None | Some("min") => {
                no_unknown_keys(FLAG, spec, &fields)?;
                Ok(CacheExport::inline_defaults())
            }
            Some(other) => Err(err(format!("type=inline supports only mode=min, not {other:?}"))),
        };
    }
    let mode = match fields.remove("mode").as_deref() {
        None | Some("min") => CacheMode::Min,
        Some("max") => CacheMode::Max,
        Some(other) => return Err(err(format!("unknown mode {other:?} (min, max)"))),
    };
    let compression = match fields.remove("compression").as_deref() {
        None | Some("gzip") => Compression::Gzip,
        Some("zstd") => Compression::Zstd,
        Some("uncompressed") => Compression::Uncompressed,
        Some(other) => return Err(err(format!("unknown compression {other:?} (gzip, zstd, uncompressed)"))),
    };
    let oci_media_types = take_bool(FLAG, spec, &mut fields, "oci-mediatypes", true)?;
    let image_manifest = take_bool(FLAG, spec, &mut fields, "image-manifest", true)?;
    let ignore_error = take_bool(FLAG, spec, &mut fields, "ignore-error", false)?;
    no_unknown_keys(FLAG, spec, &fields)?;
    if !oci_media_types && image_manifest {
        return Err(
            err("image-manifest=true needs oci-mediatypes=true (or set image-manifest=false)".into()),
        );
    }
    if !oci_media_types && compression == Compression::Zstd {
        return Err(err("compression=zstd needs oci-mediatypes=true".into()));
    }
    Ok(CacheExport { location, mode, compression, oci_media_types, image_manifest, ignore_error })
}

/// Parses one `--cache-from` value (a bare `REF` is `type=registry,ref=REF`).
pub fn parse_cache_from(spec: &str) -> Result<CacheImport, CacheSpecError> {
    const FLAG: &str = "--cache-from";
    let mut fields = fields(FLAG, spec)?;
    let location = location(FLAG, spec, &mut fields, "src")?;
    no_unknown_keys(FLAG, spec, &fields)?;
    Ok(CacheImport { location })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(r: &str) -> CacheLocation {
        CacheLocation::Registry(r.parse().unwrap())
    }

    fn export(location: CacheLocation) -> CacheExport {
        CacheExport {
            location,
            mode: CacheMode::Min,
            compression: Compression::Gzip,
            oci_media_types: true,
            image_manifest: true,
            ignore_error: false,
        }
    }

    #[test]
    fn cache_to_table() {
        let cases: Vec<(&str, CacheExport)> = vec![
            ("type=registry,ref=reg:5000/app:buildcache", export(reg("reg:5000/app:buildcache"))),
            ("reg:5000/app:buildcache", export(reg("reg:5000/app:buildcache"))),
            (
                "type=registry,ref=reg/app:c,mode=max,compression=zstd,ignore-error=true",
                CacheExport {
                    mode: CacheMode::Max,
                    compression: Compression::Zstd,
                    ignore_error: true,
                    ..export(reg("reg/app:c"))
                },
            ),
            (
                "type=registry,ref=reg/app:c,oci-mediatypes=false,image-manifest=false,compression=uncompressed",
                CacheExport {
                    oci_media_types: false,
                    image_manifest: false,
                    compression: Compression::Uncompressed,
                    ..export(reg("reg/app:c"))
                },
            ),
            ("type=local,dest=/tmp/c,mode=min", export(CacheLocation::Local("/tmp/c".into()))),
            ("type=inline", export(CacheLocation::Inline)),
            ("type=inline,mode=min", export(CacheLocation::Inline)),
            (
                "type=local, dest=/tmp/c ,mode=max",
                CacheExport { mode: CacheMode::Max, ..export(CacheLocation::Local("/tmp/c".into())) },
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_cache_to(spec), Ok(want), "{spec}");
        }
    }

    #[test]
    fn cache_from_table() {
        let cases: Vec<(&str, CacheLocation)> = vec![
            ("type=registry,ref=reg/app:buildcache", reg("reg/app:buildcache")),
            ("reg/app:buildcache", reg("reg/app:buildcache")),
            ("ref=reg/app:c", reg("reg/app:c")),
            ("type=local,src=/tmp/c", CacheLocation::Local("/tmp/c".into())),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_cache_from(spec), Ok(CacheImport { location: want }), "{spec}");
        }
    }

    #[test]
    fn rejections_name_the_problem() {
        let to: &[(&str, &str)] = &[
            ("type=gha", "type=gha is not supported"),
            ("type=s3,region=x", "type=s3 is not supported"),
            ("type=azblob", "type=azblob is not supported"),
            ("type=inline,mode=max", "type=inline supports only mode=min"),
            ("type=inline,compression=zstd", "unknown key \"compression\""),
            ("type=redis,ref=x", "unknown type \"redis\""),
            ("type=registry", "needs ref=NAME"),
            ("type=registry,ref=r/a:c,colour=blue", "unknown key \"colour\""),
            ("type=registry,ref=r/a:c,mode=all", "unknown mode \"all\""),
            ("type=registry,ref=r/a:c,compression=lz4", "unknown compression \"lz4\""),
            ("type=registry,ref=r/a:c,ignore-error=maybe", "ignore-error must be true or false"),
            ("type=registry,ref=r/a:c,oci-mediatypes=false", "image-manifest=true needs oci-mediatypes=true"),
            ("type=local", "type=local needs dest=DIR"),
            ("type=local,src=/x", "type=local needs dest=DIR"),
            ("type=registry,ref=r/a:c,mode=max,mode=min", "mode given twice"),
            ("type=registry,ref=r/a:c,junk", "\"junk\" is not key=value"),
            ("type=registry,ref=UPPER/Case", "invalid ref"),
        ];
        for (spec, want) in to {
            let e = parse_cache_to(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.starts_with("invalid --cache-to"), "{e}");
        }
        let from: &[(&str, &str)] = &[
            ("type=gha,scope=x", "type=gha is not supported"),
            ("type=local,dest=/x", "type=local needs src=DIR"),
            ("type=registry,ref=r/a:c,mode=max", "unknown key \"mode\""),
            ("type=inline", "--cache-from type=registry,ref=IMAGE"),
            ("", "empty value"),
        ];
        for (spec, want) in from {
            let e = parse_cache_from(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
