//! Target platforms (`linux/amd64`, `linux/arm64/v8`) and how an index entry is chosen.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An OCI platform: operating system, CPU architecture and optional variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`.
    pub architecture: String,
    /// `v8` for arm64, `v7` for arm, ...; `None` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Why a string is not a platform.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {value:?}: expected os/arch[/variant], e.g. linux/amd64")]
pub struct InvalidPlatform {
    /// The rejected text.
    pub value: String,
}

impl Platform {
    /// The platform of the machine rbuild runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "arm" => "arm",
            other => other,
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: None }.normalized()
    }

    /// Normalises like containerd's `platforms.Normalize`: aliases (`x86_64`, `aarch64`)
    /// map to GOARCH names, `arm64/v8` drops its default variant and `arm` gets `v7`, so
    /// `linux/arm64` prints as BuildKit prints `TARGETPLATFORM`.
    pub fn normalized(mut self) -> Platform {
        self.os = self.os.to_ascii_lowercase();
        self.architecture = match self.architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            "i386" | "i686" => "386".into(),
            "armhf" => {
                self.variant.get_or_insert_with(|| "v7".into());
                "arm".into()
            }
            other => other.into(),
        };
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", Some("8" | "v8" | "v8.0")) => self.variant = None,
            ("arm", None | Some("7")) => self.variant = Some("v7".into()),
            ("arm", Some(v)) if !v.starts_with('v') => self.variant = Some(format!("v{v}")),
            ("amd64", Some("v1")) => self.variant = None,
            (_, Some("")) => self.variant = None,
            _ => {}
        }
        self
    }

    /// True when an image built for `candidate` can serve a request for `self`
    /// (same os and architecture; the variant must match after normalisation).
    pub fn matches(&self, candidate: &Platform) -> bool {
        let want = self.clone().normalized();
        let have = candidate.clone().normalized();
        want.os == have.os && want.architecture == have.architecture && want.variant == have.variant
    }
}

impl FromStr for Platform {
    type Err = InvalidPlatform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || InvalidPlatform { value: s.to_string() };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let p = match parts.as_slice() {
            [os, arch] => Platform { os: os.to_string(), architecture: arch.to_string(), variant: None },
            [os, arch, v] => {
                Platform { os: os.to_string(), architecture: arch.to_string(), variant: Some(v.to_string()) }
            }
            _ => return Err(bad()),
        };
        Ok(p.normalized())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalise() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/x86_64", "linux/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Platform>().unwrap().to_string(), want);
        }
        for bad in ["linux", "linux/", "a/b/c/d", ""] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arm64_with_and_without_variant_match() {
        let want: Platform = "linux/arm64".parse().unwrap();
        let have = Platform { os: "linux".into(), architecture: "arm64".into(), variant: None };
        assert!(want.matches(&have));
        let have_v8 = Platform { variant: Some("v8".into()), ..have };
        assert!(want.matches(&have_v8));
        assert!(!want.matches(&"linux/amd64".parse().unwrap()));
    }
}
