//! Variable lookup for the lexer.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Where the lexer looks variables up.
pub trait Env {
    /// The value of `name`, or `None` when it is not set (set-but-empty is `Some("")`).
    fn get(&self, name: &str) -> Option<String>;

    /// All names that are set, for "did you mean" suggestions.
    fn keys(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An ordered list of variables; setting an existing name replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvList {
    vars: Vec<(String, String)>,
}

impl EnvList {
    /// An empty list.
    pub fn new() -> EnvList {
        EnvList::default()
    }

    /// A list from name/value pairs; a later pair for the same name wins.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> EnvList {
        let mut list = EnvList::new();
        for (k, v) in pairs {
            list.set(k, v);
        }
        list
    }

    /// A list from `KEY=VALUE` strings; an entry without `=` sets the name to `""` and a later
    /// entry for the same name wins (BuildKit's `EnvsFromSlice`).
    pub fn from_kv_strings<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> EnvList {
        let mut list = EnvList::new();
        for e in entries {
            let e = e.as_ref();
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            list.set(k, v);
        }
        list
    }

    /// Sets `name` to `value`, keeping its position if it was already set.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<String> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn keys(&self) -> Vec<String> {
        self.vars.iter().map(|(k, _)| k.clone()).collect()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }

    fn keys(&self) -> Vec<String> {
        HashMap::keys(self).cloned().collect()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }

    fn keys(&self) -> Vec<String> {
        BTreeMap::keys(self).cloned().collect()
    }
}

/// No variable is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}
