//! `RUN --network`, `--security` and `--device` (BuildKit's `commands_runnetwork.go`,
//! `commands_runsecurity.go`, `commands_rundevice.go`).

use serde::{Deserialize, Serialize};

use super::run_mount::{csv_fields, go_parse_bool};
use crate::suggest;

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The builder's default network.
    #[default]
    Default,
    /// No network access.
    None,
    /// The host's network (needs the `network.host` entitlement).
    Host,
}

impl NetworkMode {
    pub(crate) fn parse(s: &str) -> Result<NetworkMode, String> {
        Ok(match s {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            _ => return Err(format!("invalid network mode {}", crate::syntax::go_quote(s))),
        })
    }
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// The normal sandbox.
    #[default]
    Sandbox,
    /// Full privileges (needs the `security.insecure` entitlement).
    Insecure,
}

impl SecurityMode {
    pub(crate) fn parse(s: &str) -> Result<SecurityMode, String> {
        Ok(match s {
            "sandbox" => SecurityMode::Sandbox,
            "insecure" => SecurityMode::Insecure,
            _ => return Err(format!("security {} is not valid", crate::syntax::go_quote(s))),
        })
    }
}

/// `RUN --device=`: a CDI device request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The CDI device name (`vendor.com/class=name`).
    pub name: String,
    /// Fail instead of skipping when the device is not available.
    pub required: bool,
}

/// Parses a `--device` value: `name[,required[=bool]]` or `name=<name>,...`.
pub fn parse_device(value: &str) -> Result<Device, (String, Option<String>)> {
    let fields = csv_fields(value).map_err(|e| (format!("failed to parse csv devices: {e}"), None))?;
    let mut d = Device { name: String::new(), required: false };
    for field in fields {
        let Some((key, v)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "required" => d.required = true,
                _ if d.name.is_empty() => d.name = field.clone(),
                _ => return Err((format!("invalid field '{field}' must be a key=value pair"), None)),
            }
            continue;
        };
        let key = key.to_lowercase();
        match key.as_str() {
            "name" => {
                if !d.name.is_empty() {
                    return Err((format!("device name already set to {}", d.name), None));
                }
                d.name = v.to_string();
            }
            "required" => {
                d.required =
                    go_parse_bool(v).ok_or_else(|| (format!("invalid value for {key}: {v}"), None))?;
            }
            _ if d.name.is_empty() => d.name = field.clone(),
            _ => {
                return Err((
                    format!("unexpected key '{key}' in '{field}'"),
                    suggest::did_you_mean(&key, &["name", "required"], true),
                ));
            }
        }
    }
    Ok(d)
}
