//! The configuration file: `/etc/rbuild/rbuild.toml`, then `~/.config/rbuild/rbuild.toml`
//! (`$XDG_CONFIG_HOME`), the later overriding the earlier key by key; `RBUILD_CONFIG` names a
//! single file instead. Command-line flags override both. Unknown keys are errors, so a
//! misspelled setting is never silently ignored.
//!
//! ```toml
//! root = "/var/lib/rbuild"      # store root
//! parallelism = 4               # RUN steps at once (default: number of CPUs)
//! platform = "linux/amd64"      # default --platform
//! runtime = "runc"              # default --runtime (native, runc, crun or a path)
//!
//! [gc]
//! keep_storage = "20GB"         # the store never grows past this (GC runs before and after builds)
//!
//! [registry]
//! insecure = ["registry.lan:5000"]           # plain HTTP (loopback registries always are)
//! mirrors = { "docker.io" = ["mirror.lan"] } # tried first for pulls
//! ```

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The settings of the configuration files.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Store root.
    pub root: Option<PathBuf>,
    /// Upper bound on RUN steps running at once.
    pub parallelism: Option<usize>,
    /// Default target platform.
    pub platform: Option<String>,
    /// What isolates RUN steps (`native`, `runc`, `crun` or a runtime's path).
    pub runtime: Option<String>,
    /// Garbage collection.
    #[serde(default)]
    pub gc: GcConfig,
    /// Registry access.
    #[serde(default)]
    pub registry: RegistryConfig,
}

/// `[gc]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GcConfig {
    /// Cap on the store's size (`20GB`).
    pub keep_storage: Option<String>,
}

/// `[registry]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Registries spoken to over plain HTTP.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Pull mirrors per registry host.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
}

impl Config {
    /// Reads the configuration files that exist.
    pub fn load() -> Result<Config> {
        if let Some(one) = std::env::var_os("RBUILD_CONFIG") {
            return Config::from_file(Path::new(&one));
        }
        let mut config = Config::default();
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
            .map(|d| d.join("rbuild/rbuild.toml"));
        for path in [Some(PathBuf::from("/etc/rbuild/rbuild.toml")), user].into_iter().flatten() {
            if path.is_file() {
                config.merge(Config::from_file(&path)?);
            }
        }
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
        if let Some(size) = &config.gc.keep_storage {
            crate::commands::store::parse_size(size)
                .with_context(|| format!("{}: gc.keep_storage", path.display()))?;
        }
        if config.parallelism == Some(0) {
            bail!("{}: parallelism must be at least 1", path.display());
        }
        Ok(config)
    }

    fn merge(&mut self, other: Config) {
        self.root = other.root.or(self.root.take());
        self.parallelism = other.parallelism.or(self.parallelism);
        self.platform = other.platform.or(self.platform.take());
        self.runtime = other.runtime.or(self.runtime.take());
        self.gc.keep_storage = other.gc.keep_storage.or(self.gc.keep_storage.take());
        if !other.registry.insecure.is_empty() {
            self.registry.insecure = other.registry.insecure;
        }
        self.registry.mirrors.extend(other.registry.mirrors);
    }

    /// The store cap in bytes, if configured.
    pub fn keep_storage_bytes(&self) -> Option<u64> {
        self.gc.keep_storage.as_deref().and_then(|s| crate::commands::store::parse_size(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_merges_and_rejects_unknown_keys() {
        let a: Config = toml::from_str(
            "root = \"/a\"\nparallelism = 2\n[gc]\nkeep_storage = \"1GB\"\n[registry]\ninsecure = [\"r:5000\"]\n",
        )
        .unwrap();
        let b: Config =
            toml::from_str("parallelism = 8\n[registry.mirrors]\n\"docker.io\" = [\"m\"]\n").unwrap();
        let mut merged = a.clone();
        merged.merge(b);
        assert_eq!(merged.root.as_deref(), Some(Path::new("/a")));
        assert_eq!(merged.parallelism, Some(8));
        assert_eq!(merged.keep_storage_bytes(), Some(1_000_000_000));
        assert_eq!(merged.registry.insecure, vec!["r:5000"]);
        assert_eq!(merged.registry.mirrors["docker.io"], vec!["m"]);
        assert!(toml::from_str::<Config>("colour = 1").is_err());
        assert!(toml::from_str::<Config>("[gc]\nkeep = 1").is_err());
    }
}
