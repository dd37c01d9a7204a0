//! `RUN --mount=...` values, parsed and validated by BuildKit's rules
//! (`instructions/commands_runmount.go`).
//!
//! Like BuildKit, parsing happens twice: when the Dockerfile is read only the CSV syntax and
//! the `from` key are checked (values may still contain variables); [`crate::Command::expand`]
//! expands every value and validates the whole mount.

use serde::{Deserialize, Serialize};

use crate::suggest;

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A read-only (by default) bind of a stage, image or the context.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (or environment variable).
    Secret,
    /// The SSH agent socket.
    Ssh,
}

impl MountType {
    /// The name used in Dockerfiles.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }

    fn parse(s: &str) -> Option<MountType> {
        Some(match s {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return None,
        })
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    /// Concurrent writers share the directory (the default).
    Shared,
    /// Each concurrent writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `RUN --mount` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// The value as written after `--mount=`.
    pub raw: String,
    /// `type=` (default bind).
    pub kind: MountType,
    /// `from=`: stage, image or named context to mount from.
    pub from: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// Read-only; defaults to true except for cache and tmpfs mounts.
    pub readonly: bool,
    /// `id=` (cache id, secret id, ssh id).
    pub id: Option<String>,
    /// `sharing=` of a cache mount.
    pub sharing: Option<CacheSharing>,
    /// `required` of a secret or ssh mount.
    pub required: bool,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `size=` of a tmpfs, in bytes.
    pub size: Option<i64>,
    /// `env=` of a secret mount: expose the secret as this environment variable.
    pub env: Option<String>,
}

/// A mount value that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MountError {
    /// BuildKit's message.
    pub message: String,
    /// A suggested fix.
    pub help: Option<String>,
}

fn err(message: String) -> MountError {
    MountError { message, help: None }
}

const ALL_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

const ALL_TYPES: [&str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];

/// Go's `strconv.ParseBool`.
pub(crate) fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One CSV record the way Go's `encoding/csv` reads it (no lazy quotes, no trimming).
pub(crate) fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        let col = i + 1;
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 1
                        ));
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        match chars.get(i) {
                            None | Some(',') => break,
                            Some(_) => {
                                return Err(format!(
                                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                                    i + 1
                                ));
                            }
                        }
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        i + 1
                    ));
                }
                field.push(c);
                i += 1;
            }
            let _ = col;
        }
        fields.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
            continue;
        }
        return Ok(fields);
    }
}

/// docker/go-units `RAMInBytes`: `512m`, `1.5GiB`, `64k`.
fn ram_in_bytes(s: &str) -> Option<i64> {
    let lower = s.to_lowercase();
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mul) = match t.chars().last() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            let exp = "kmgtp".find(c).unwrap_or(0) as i32 + 1;
            (&t[..t.len() - 1], 1024f64.powi(exp))
        }
        _ => (t, 1.0),
    };
    let num = num.strip_suffix(' ').unwrap_or(num);
    let valid = !num.is_empty()
        && num
            .split('.')
            .enumerate()
            .all(|(i, part)| (i == 0 || !part.is_empty()) && part.bytes().all(|b| b.is_ascii_digit()))
        && num.as_bytes()[0].is_ascii_digit();
    if !valid {
        return None;
    }
    // Go parses the number prefix with ParseFloat on digits and dots only.
    let f: f64 = num.split('.').take(2).collect::<Vec<_>>().join(".").parse().ok()?;
    Some((f * mul) as i64)
}

/// Expands one `--mount` value (the lexer with the build-time variables).
pub type Expander<'a> = &'a mut dyn FnMut(&str) -> Result<String, MountError>;

impl MountSpec {
    /// Parses a `--mount` value. Without `expand` only what BuildKit checks before expansion
    /// is checked; with it, every value is expanded and the mount is fully validated.
    pub fn parse(raw: &str, mut expand: Option<Expander<'_>>) -> Result<MountSpec, MountError> {
        let fields = csv_fields(raw).map_err(|e| err(format!("failed to parse csv mounts: {e}")))?;
        let mut m = MountSpec {
            raw: raw.to_string(),
            kind: MountType::Bind,
            from: None,
            source: None,
            target: None,
            readonly: false,
            id: None,
            sharing: None,
            required: false,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            env: None,
        };
        let mut ro_auto = true;
        let secretish = |m: &MountSpec| matches!(m.kind, MountType::Secret | MountType::Ssh);
        for field in &fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_lowercase(), Some(v)),
                None => (field.to_lowercase(), None),
            };
            let Some(value) = value else {
                if expand.is_none() {
                    continue;
                }
                match key.as_str() {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required" if secretish(&m) => m.required = true,
                    "required" => {
                        return Err(err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        )));
                    }
                    _ => return Err(err(format!("invalid field '{field}' must be a key=value pair"))),
                }
                continue;
            };
            let value = match expand.as_mut() {
                Some(f) => f(value)?,
                None if key == "from" => {
                    if value.find('$').is_some_and(|i| i + 1 != value.len()) {
                        return Err(err(format!(
                            "'{key}' doesn't support variable expansion, define alias stage instead"
                        )));
                    }
                    value.to_string()
                }
                None => continue,
            };
            let invalid_value = || err(format!("invalid value for {key}: {value}"));
            match key.as_str() {
                "type" => {
                    let Some(t) = MountType::parse(&value.to_lowercase()) else {
                        return Err(MountError {
                            message: format!("unsupported mount type {}", crate::syntax::go_quote(&value)),
                            help: suggest::did_you_mean(&value, &ALL_TYPES, true),
                        });
                    };
                    m.kind = t;
                }
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    m.readonly = go_parse_bool(&value).ok_or_else(invalid_value)?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = !go_parse_bool(&value).ok_or_else(invalid_value)?;
                    ro_auto = false;
                }
                "required" => {
                    if !secretish(&m) {
                        return Err(err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        )));
                    }
                    m.required = go_parse_bool(&value).ok_or_else(invalid_value)?;
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    m.sharing = Some(match value.to_lowercase().as_str() {
                        "shared" => CacheSharing::Shared,
                        "private" => CacheSharing::Private,
                        "locked" => CacheSharing::Locked,
                        _ => {
                            return Err(err(format!(
                                "unsupported sharing value {}",
                                crate::syntax::go_quote(&value)
                            )));
                        }
                    });
                }
                "mode" => {
                    let mode = u32::from_str_radix(&value, 8)
                        .map_err(|_| err(format!("invalid value {value} for mode")))?;
                    m.mode = Some(mode);
                }
                "uid" => {
                    m.uid = Some(value.parse().map_err(|_| err(format!("invalid value {value} for uid")))?)
                }
                "gid" => {
                    m.gid = Some(value.parse().map_err(|_| err(format!("invalid value {value} for gid")))?)
                }
                "size" => {
                    if m.kind != MountType::Tmpfs {
                        return Err(err(format!("size not allowed for {:?} type mounts", m.kind.as_str())));
                    }
                    m.size = Some(ram_in_bytes(&value).ok_or_else(invalid_value)?);
                }
                "env" => m.env = Some(value),
                _ => {
                    return Err(MountError {
                        message: format!("unexpected key '{key}' in '{field}'"),
                        help: suggest::did_you_mean(&key, &ALL_KEYS, true),
                    });
                }
            }
        }
        let file_info = matches!(m.kind, MountType::Secret | MountType::Ssh | MountType::Cache);
        for (name, set) in [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())] {
            if set && !file_info && expand.is_some() {
                return Err(err(format!("{name} not allowed for {:?} type mounts", m.kind.as_str())));
            }
        }
        if ro_auto {
            m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if expand.is_none() {
            return Ok(m);
        }
        if m.sharing.is_some() && m.kind != MountType::Cache {
            return Err(err(format!("invalid cache sharing set for {} mount", m.kind.as_str())));
        }
        if m.env.is_some() && m.kind != MountType::Secret {
            return Err(err(format!("env not allowed for {:?} type mounts", m.kind.as_str())));
        }
        if m.kind == MountType::Secret {
            if m.from.is_some() {
                return Err(err("secret mount should not have a from".into()));
            }
            if m.sharing.is_some() {
                return Err(err("secret mount should not define sharing".into()));
            }
            let empty = |v: &Option<String>| v.as_deref().unwrap_or("").is_empty();
            if empty(&m.source) && empty(&m.target) && empty(&m.id) && m.env.is_none() {
                return Err(err("invalid secret mount. one of source, target required".into()));
            }
            if !empty(&m.source) && !empty(&m.id) {
                return Err(err("both source and id can't be set".into()));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(raw: &str) -> Result<MountSpec, MountError> {
        let mut id = |v: &str| Ok(v.to_string());
        MountSpec::parse(raw, Some(&mut id))
    }

    #[test]
    fn valid_mounts() {
        let m = full("type=cache,target=/root/.cache,sharing=locked,id=x,mode=0755,uid=1").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.readonly);
        let m = full("target=/src,rw").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(!m.readonly);
        assert!(full("type=bind,target=/x").unwrap().readonly);
        let m = full("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = full("type=secret,id=tok,required").unwrap();
        assert!(m.required);
        assert_eq!(full("type=bind,\"target=/a b\"").unwrap().target.as_deref(), Some("/a b"));
    }

    #[test]
    fn invalid_mounts() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("typ=tmpfs", "unexpected key 'typ' in 'typ=tmpfs'", Some("did you mean type?")),
            ("type=tmp", "unsupported mount type \"tmp\"", Some("did you mean tmpfs?")),
            ("type=bind,mode=0700", "mode not allowed for \"bind\" type mounts", None),
            ("type=bind,sharing=locked", "invalid cache sharing set for bind mount", None),
            ("type=secret", "invalid secret mount. one of source, target required", None),
            ("required,type=secret,id=x", "unexpected key 'required' for mount type 'bind'", None),
            ("type=cache,sharing=nope", "unsupported sharing value \"nope\"", None),
            ("foo", "invalid field 'foo' must be a key=value pair", None),
            (
                "a\"b",
                "failed to parse csv mounts: parse error on line 1, column 2: bare \" in non-quoted-field",
                None,
            ),
        ];
        for (raw, msg, help) in cases {
            let e = full(raw).unwrap_err();
            assert_eq!((e.message.as_str(), e.help.as_deref()), (*msg, *help), "{raw}");
        }
    }

    #[test]
    fn deferred_parse_checks_only_from() {
        let m = MountSpec::parse("typ=tmpfs,from=stage", None).unwrap();
        assert_eq!(m.from.as_deref(), Some("stage"));
        let e = MountSpec::parse("from=$x,type=cache", None).unwrap_err();
        assert_eq!(e.message, "'from' doesn't support variable expansion, define alias stage instead");
    }
}
