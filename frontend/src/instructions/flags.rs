//! Instruction flags (`--from=...`, `--link`), validated the way BuildKit's `BFlags` does.

use std::collections::BTreeMap;

use crate::suggest;

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--flag`, `--flag=true`, `--flag=false`.
    Bool,
    /// `--flag=value`, once.
    String,
    /// `--flag=value`, any number of times.
    Strings,
}

/// A flag that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FlagError {
    /// BuildKit's message (`unknown flag: --mont`).
    pub message: String,
    /// A suggested fix (`did you mean mount?`).
    pub help: Option<String>,
    /// Index of the offending flag in the instruction's flag list.
    pub index: usize,
}

#[derive(Debug, Clone)]
struct Flag {
    kind: FlagKind,
    value: String,
    values: Vec<String>,
}

/// The flags one instruction accepts, and what was given for them.
#[derive(Debug, Clone, Default)]
pub struct BFlags {
    args: Vec<String>,
    flags: BTreeMap<String, Flag>,
    used: BTreeMap<String, ()>,
    order: Vec<String>,
}

impl BFlags {
    /// Flags as the parser extracted them (`--name[=value]`).
    pub fn new(args: &[String]) -> BFlags {
        BFlags { args: args.to_vec(), ..BFlags::default() }
    }

    fn add(&mut self, name: &str, kind: FlagKind, value: &str) {
        self.order.push(name.to_string());
        self.flags.insert(name.to_string(), Flag { kind, value: value.to_string(), values: vec![] });
    }

    /// Declares a boolean flag with its default.
    pub fn add_bool(&mut self, name: &str, default: bool) {
        self.add(name, FlagKind::Bool, if default { "true" } else { "false" });
    }

    /// Declares a string flag with its default.
    pub fn add_string(&mut self, name: &str, default: &str) {
        self.add(name, FlagKind::String, default);
    }

    /// Declares a repeatable string flag.
    pub fn add_strings(&mut self, name: &str) {
        self.add(name, FlagKind::Strings, "");
    }

    /// Checks the given flags against the declared ones and records their values.
    pub fn parse(&mut self) -> Result<(), FlagError> {
        let args = std::mem::take(&mut self.args);
        let result = self.parse_args(&args);
        self.args = args;
        result
    }

    fn parse_args(&mut self, args: &[String]) -> Result<(), FlagError> {
        for (index, arg) in args.iter().enumerate() {
            let err = |message: String| FlagError { message, help: None, index };
            let Some(body) = arg.strip_prefix("--") else {
                return Err(err(format!("arg should start with -- : {arg}")));
            };
            if body.is_empty() {
                return Ok(());
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(flag) = self.flags.get_mut(name) else {
                let names: Vec<&str> = self.order.iter().map(String::as_str).collect();
                return Err(FlagError {
                    message: format!("unknown flag: --{name}"),
                    help: suggest::did_you_mean(name, &names, true),
                    index,
                });
            };
            if self.used.contains_key(name) && flag.kind != FlagKind::Strings {
                return Err(err(format!("duplicate flag specified: {name}")));
            }
            self.used.insert(name.to_string(), ());
            match flag.kind {
                FlagKind::Bool => {
                    if value == Some("") {
                        return Err(err(format!("missing a value on flag: {name}")));
                    }
                    let v = value.unwrap_or("");
                    flag.value = match v.to_lowercase().as_str() {
                        "true" | "" => "true".into(),
                        "false" => "false".into(),
                        _ => return Err(err(format!("expecting boolean value for flag {name}, not: {v}"))),
                    };
                }
                FlagKind::String => {
                    let Some(v) = value else {
                        return Err(err(format!("missing a value on flag: {name}")));
                    };
                    flag.value = v.to_string();
                }
                FlagKind::Strings => {
                    let Some(v) = value else {
                        return Err(err(format!("missing a value on flag: {name}")));
                    };
                    flag.values.push(v.to_string());
                }
            }
        }
        Ok(())
    }

    /// The value of a string or bool flag (`"true"`/`"false"` for bools).
    pub fn value(&self, name: &str) -> &str {
        self.flags.get(name).map(|f| f.value.as_str()).unwrap_or("")
    }

    /// The value of a string flag, `None` when it was not given.
    pub fn given(&self, name: &str) -> Option<String> {
        self.is_used(name).then(|| self.value(name).to_string())
    }

    /// True when a bool flag is true.
    pub fn is_true(&self, name: &str) -> bool {
        self.value(name) == "true"
    }

    /// The values given for a repeatable flag.
    pub fn values(&self, name: &str) -> &[String] {
        self.flags.get(name).map(|f| f.values.as_slice()).unwrap_or(&[])
    }

    /// True when the flag was given explicitly, whatever its value.
    pub fn is_used(&self, name: &str) -> bool {
        self.used.contains_key(name)
    }

    /// Names of the flags given, sorted.
    pub fn used(&self) -> Vec<String> {
        self.used.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> BFlags {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut f = BFlags::new(&args);
        f.add_bool("link", false);
        f.add_string("from", "");
        f.add_strings("exclude");
        f
    }

    #[test]
    fn accepts_and_rejects() {
        let mut f = flags(&["--link", "--from=a", "--exclude=x", "--exclude=y"]);
        f.parse().unwrap();
        assert!(f.is_true("link"));
        assert_eq!(f.value("from"), "a");
        assert_eq!(f.values("exclude"), ["x", "y"]);
        let cases: &[(&[&str], &str)] = &[
            (&["--lnk"], "unknown flag: --lnk"),
            (&["--link=maybe"], "expecting boolean value for flag link, not: maybe"),
            (&["--link="], "missing a value on flag: link"),
            (&["--from"], "missing a value on flag: from"),
            (&["--from=a", "--from=b"], "duplicate flag specified: from"),
        ];
        for (args, want) in cases {
            assert_eq!(flags(args).parse().unwrap_err().message, *want);
        }
        assert_eq!(flags(&["--lnk"]).parse().unwrap_err().help.as_deref(), Some("did you mean link?"));
    }
}
