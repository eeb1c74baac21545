//! The three places a setting can come from, and where each value came
//! from. Precedence is by source, never by name: a flag beats every
//! environment variable, an environment variable beats everything in the
//! settings file. Within one source, walship's own name beats WAL-G's.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where a value came from, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    File(PathBuf),
}

/// A setting as the user wrote it: which source and under which name
/// (`--prefix`, `WALG_FILE_PREFIX`, or a file's `prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: Source,
    /// The name as written in that source.
    pub key: String,
}

impl Origin {
    /// `NAME="value"` the way the user wrote it, for error messages: the
    /// message must name what the user set, not an alias of it.
    pub fn assignment(&self, value: &str) -> String {
        match &self.source {
            Source::Flag => format!("{} {value:?}", self.key),
            Source::Environment => format!("{}={value:?}", self.key),
            Source::File(path) => format!("{} = {value:?} in {}", self.key, path.display()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Flag => write!(f, "{} (command line)", self.key),
            Source::Environment => write!(f, "{} (environment)", self.key),
            Source::File(path) => write!(f, "{} (in {})", self.key, path.display()),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub origin: Origin,
}

/// One source: canonical setting name -> (name as written, value). An empty
/// value counts as unset, as in WAL-G.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    source: Option<Source>,
    values: BTreeMap<String, (String, String)>,
}

impl Layer {
    pub fn new(source: Source) -> Self {
        Self {
            source: Some(source),
            values: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, name: &str, written_as: &str, value: String) {
        self.values
            .insert(name.to_string(), (written_as.to_string(), value));
    }

    pub fn get(&self, name: &str) -> Option<Found> {
        let (key, value) = self.values.get(name)?;
        if value.is_empty() {
            return None;
        }
        Some(Found {
            value: value.clone(),
            origin: Origin {
                source: self.source.clone()?,
                key: key.clone(),
            },
        })
    }

    /// Replaces `name`'s value (if set here) with `placeholder`.
    pub fn redact(&mut self, name: &str, placeholder: &str) {
        if let Some((_, value)) = self.values.get_mut(name)
            && !value.is_empty()
        {
            *value = placeholder.to_string();
        }
    }

    /// Every name set (non-empty) in this source.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(|(_, (_, v))| !v.is_empty())
            .map(|(k, _)| k.as_str())
    }
}

/// Flags, environment and file, in that order.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub flags: Layer,
    pub env: Layer,
    pub file: Layer,
    /// The settings file read, if any.
    pub file_path: Option<PathBuf>,
}

impl Sources {
    pub fn layers(&self) -> [&Layer; 3] {
        [&self.flags, &self.env, &self.file]
    }

    /// The first of `names` set in the highest source: a file's walship name
    /// never beats the environment's WAL-G name.
    pub fn get(&self, names: &[&str]) -> Option<Found> {
        self.layers()
            .into_iter()
            .find_map(|layer| names.iter().find_map(|n| layer.get(n)))
    }

    /// Replaces `name`'s value with `placeholder` in every source (a key,
    /// once it has been read).
    pub fn redact(&mut self, name: &str, placeholder: &str) {
        for layer in [&mut self.flags, &mut self.env, &mut self.file] {
            layer.redact(name, placeholder);
        }
    }

    /// Environment-style settings for plugins and libpq-style names: the
    /// environment over the file. (Flags name only walship's own settings.)
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = self
            .file
            .values
            .iter()
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        vars.extend(
            self.env
                .values
                .iter()
                .filter(|(_, (_, v))| !v.is_empty())
                .map(|(k, (_, v))| (k.clone(), v.clone())),
        );
        vars
    }

    /// Every name set in the environment or the file, each with the value
    /// that wins.
    pub fn all_set(&self) -> BTreeMap<String, Found> {
        let mut all = BTreeMap::new();
        for layer in [&self.file, &self.env, &self.flags] {
            for name in layer.names() {
                if let Some(found) = layer.get(name) {
                    all.insert(name.to_string(), found);
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(source: Source, pairs: &[(&str, &str, &str)]) -> Layer {
        let mut l = Layer::new(source);
        for (name, key, value) in pairs {
            l.insert(name, key, value.to_string());
        }
        l
    }

    #[test]
    fn the_source_decides_not_the_name() {
        let sources = Sources {
            flags: Layer::new(Source::Flag),
            env: layer(Source::Environment, &[("WALG_X", "WALG_X", "env")]),
            file: layer(
                Source::File("/f.toml".into()),
                &[("WALSHIP_X", "x", "file")],
            ),
            file_path: None,
        };
        let found = sources.get(&["WALSHIP_X", "WALG_X"]).unwrap();
        assert_eq!(found.value, "env");
        assert_eq!(found.origin.assignment("env"), "WALG_X=\"env\"");
        let file = sources.file.get("WALSHIP_X").unwrap();
        assert_eq!(file.origin.assignment("v"), "x = \"v\" in /f.toml");
        assert_eq!(
            sources.vars().get("WALG_X").map(String::as_str),
            Some("env")
        );
    }

    #[test]
    fn empty_values_are_unset() {
        let sources = Sources {
            env: layer(Source::Environment, &[("A", "A", "")]),
            file: layer(Source::File("/f".into()), &[("A", "A", "file")]),
            ..Default::default()
        };
        assert_eq!(sources.get(&["A"]).unwrap().value, "file");
    }
}
