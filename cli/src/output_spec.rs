//! Parsing `--output type=...,key=value` into `exporter::Output`. This is the only place
//! rbuild handles key=value option strings; an unknown key or value is an error here.

use exporter::{Destination, Output};
use registry::{Compression, Reference};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why an `--output` value was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --output {spec:?}: {reason}")]
pub struct OutputSpecError {
    /// The rejected value.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

fn parse_bool(spec: &str, key: &str, value: &str) -> Result<bool, OutputSpecError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(OutputSpecError {
            spec: spec.into(),
            reason: format!("{key} must be true or false, not {value:?}"),
        }),
    }
}

fn destination(spec: &str, dest: Option<String>, tar: bool) -> Result<Destination, OutputSpecError> {
    match dest.as_deref() {
        None => Err(OutputSpecError { spec: spec.into(), reason: "dest=<path> is required".into() }),
        Some("-") if tar => Ok(Destination::Stdout),
        Some("-") => {
            Err(OutputSpecError { spec: spec.into(), reason: "a directory cannot go to stdout".into() })
        }
        Some(p) if tar => Ok(Destination::File(PathBuf::from(p))),
        Some(p) => Ok(Destination::Dir(PathBuf::from(p))),
    }
}

/// Parses one `--output` value. `tags` are the `-t` names, used when the spec names none.
pub fn parse_output(spec: &str, tags: &[Reference]) -> Result<Output, OutputSpecError> {
    let err = |reason: String| OutputSpecError { spec: spec.into(), reason };
    // docker buildx shorthands: `-o dir` is a local export, `-o -` a tar on stdout.
    if !spec.contains('=') {
        return Ok(if spec == "-" {
            Output::Tar { dest: Destination::Stdout }
        } else {
            Output::Local { dest: PathBuf::from(spec) }
        });
    }
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| err(format!("{part:?} is not key=value")))?;
        if fields.insert(k.trim().to_string(), v.trim().to_string()).is_some() {
            return Err(err(format!("{k} given twice")));
        }
    }
    let kind = fields
        .remove("type")
        .ok_or_else(|| err("type=<image|registry|oci|docker|local|tar> is required".into()))?;
    let names = match fields.remove("name") {
        Some(list) => list
            .split(';')
            .flat_map(|n| n.split(' '))
            .filter(|n| !n.is_empty())
            .map(|n| n.parse::<Reference>().map_err(|e| err(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?,
        None => tags.to_vec(),
    };
    let take_bool =
        |fields: &mut BTreeMap<String, String>, key: &str, default: bool| -> Result<bool, OutputSpecError> {
            fields.remove(key).map_or(Ok(default), |v| parse_bool(spec, key, &v))
        };
    let output = match kind.as_str() {
        "image" | "registry" => {
            let push = take_bool(&mut fields, "push", kind == "registry")?;
            let compression = match fields.remove("compression").as_deref() {
                None | Some("gzip") => Compression::Gzip,
                Some("zstd") => Compression::Zstd,
                Some("uncompressed") => Compression::Uncompressed,
                Some(other) => {
                    return Err(err(format!("unknown compression {other:?} (gzip, zstd, uncompressed)")));
                }
            };
            let level = match fields.remove("compression-level") {
                None => None,
                Some(v) => Some(
                    v.parse::<u32>().map_err(|_| err(format!("compression-level {v:?} is not a number")))?,
                ),
            };
            let force_compression = take_bool(&mut fields, "force-compression", false)?;
            let oci_media_types = take_bool(&mut fields, "oci-mediatypes", true)?;
            let squash = take_bool(&mut fields, "squash", false)?;
            if push && names.is_empty() {
                return Err(err("push needs a name: give -t or name=".into()));
            }
            Output::Image { names, push, compression, level, force_compression, oci_media_types, squash }
        }
        "oci" => {
            let tar = take_bool(&mut fields, "tar", true)?;
            Output::Oci { dest: destination(spec, fields.remove("dest"), tar)?, names }
        }
        "docker" => Output::Docker { dest: destination(spec, fields.remove("dest"), true)?, names },
        "local" => match destination(spec, fields.remove("dest"), false)? {
            Destination::Dir(dest) => Output::Local { dest },
            _ => unreachable!("destination(tar=false) is always a directory"),
        },
        "tar" => Output::Tar { dest: destination(spec, fields.remove("dest"), true)? },
        other => {
            return Err(err(format!("unknown type {other:?} (image, registry, oci, docker, local, tar)")));
        }
    };
    if let Some(key) = fields.keys().next() {
        return Err(err(format!("unknown key {key:?} for type={kind}")));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let tags: Vec<Reference> = vec!["app:1".parse().unwrap()];
        let ok: &[(&str, Output)] = &[
            (
                "type=oci,dest=out.tar",
                Output::Oci { dest: Destination::File("out.tar".into()), names: tags.clone() },
            ),
            (
                "type=oci,dest=dir,tar=false",
                Output::Oci { dest: Destination::Dir("dir".into()), names: tags.clone() },
            ),
            ("type=docker,dest=-", Output::Docker { dest: Destination::Stdout, names: tags.clone() }),
            ("type=local,dest=out", Output::Local { dest: "out".into() }),
            ("./out", Output::Local { dest: "./out".into() }),
            ("-", Output::Tar { dest: Destination::Stdout }),
            (
                "type=image,push=true,compression=zstd",
                Output::Image {
                    names: tags.clone(),
                    push: true,
                    compression: Compression::Zstd,
                    level: None,
                    force_compression: false,
                    oci_media_types: true,
                    squash: false,
                },
            ),
            (
                "type=image,squash=true",
                Output::Image {
                    names: tags.clone(),
                    push: false,
                    compression: Compression::Gzip,
                    level: None,
                    force_compression: false,
                    oci_media_types: true,
                    squash: true,
                },
            ),
        ];
        for (spec, want) in ok {
            assert_eq!(&parse_output(spec, &tags).unwrap(), want, "{spec}");
        }
        let bad = [
            "type=oci",
            "type=nope,dest=x",
            "type=oci,dest=x,colour=red",
            "type=image,push=maybe",
            "type=local,dest=-",
            "dest=x",
            "type=image,compression=lz4",
            "type=image,squash=yes-please",
            "type=oci,dest=x,squash=true",
        ];
        for spec in bad {
            assert!(parse_output(spec, &tags).is_err(), "{spec}");
        }
        assert!(parse_output("type=image,push=true", &[]).is_err());
    }
}
