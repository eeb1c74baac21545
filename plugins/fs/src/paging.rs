//! Paging through keys the S3 way, independent of where the keys come from.
//!
//! A page holds at most `max-keys` entries (objects and common prefixes count
//! alike) in lexicographic byte order. The page token is the last entry of the
//! page itself, not an offset or a cursor in memory, so a listing can resume
//! from any process and stays correct while keys are added or removed.

use crate::walship::storage::types::{Error, ListOptions};

/// Entries per page when the host asks for 0 or for more than this.
pub const MAX_PAGE: usize = 1000;

/// Keys in lexicographic byte order, each starting with the listing's prefix.
pub trait KeySource {
    /// The next key not excluded by `bounds`. A source may skip excluded keys
    /// wholesale (the point of passing them) but need not.
    fn next_key(&mut self, bounds: &[Bound]) -> Result<Option<String>, Error>;
}

/// A lower bound on the keys still to list.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    pub key: String,
    /// Also exclude every key starting with `key` (it was a common prefix,
    /// and all keys under it were already accounted for).
    pub with_prefix: bool,
}

impl Bound {
    pub fn excludes(&self, key: &str) -> bool {
        key <= self.key.as_str() || (self.with_prefix && key.starts_with(&self.key))
    }

    /// Whether every key starting with `prefix` is excluded, so a source can
    /// skip a whole directory without reading it.
    pub fn excludes_all_under(&self, prefix: &str) -> bool {
        // All such keys sort below `key` unless `key` itself starts with `prefix`.
        (self.key.as_str() > prefix && !self.key.starts_with(prefix))
            || (self.with_prefix && prefix.starts_with(&self.key))
    }
}

#[derive(Debug, PartialEq)]
pub enum Entry {
    Object(String),
    CommonPrefix(String),
}

#[derive(Debug, PartialEq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next_token: Option<String>,
}

/// The group a key falls into under `delimiter`: the key up to and including
/// the first delimiter after `prefix`, or `None` if the key stands alone.
pub fn common_prefix<'k>(prefix: &str, delimiter: Option<&str>, key: &'k str) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let at = key.get(prefix.len()..)?.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// Where listing starts: after `start-after`, and after the previous page.
pub fn initial_bounds(options: &ListOptions) -> Vec<Bound> {
    let mut bounds = Vec::new();
    if let Some(after) = &options.start_after {
        bounds.push(Bound {
            key: after.clone(),
            with_prefix: false,
        });
    }
    if let Some(token) = &options.page_token {
        // A token that is a common prefix stands for every key under it.
        let is_group = common_prefix(&options.prefix, options.delimiter.as_deref(), token)
            == Some(token.as_str());
        bounds.push(Bound {
            key: token.clone(),
            with_prefix: is_group,
        });
    }
    bounds
}

/// One page of the listing `options` asks for, drawn from `source`.
pub fn page(source: &mut dyn KeySource, options: &ListOptions) -> Result<Page, Error> {
    let max = match options.max_keys as usize {
        0 => MAX_PAGE,
        n => n.min(MAX_PAGE),
    };
    let delimiter = options.delimiter.as_deref();
    let mut bounds = initial_bounds(options);
    let fixed_bounds = bounds.len();
    let mut entries = Vec::new();
    while let Some(key) = source.next_key(&bounds)? {
        if !key.starts_with(&options.prefix) || bounds.iter().any(|b| b.excludes(&key)) {
            continue;
        }
        if entries.len() == max {
            let next_token = entries.last().map(|entry| match entry {
                Entry::Object(key) | Entry::CommonPrefix(key) => key.clone(),
            });
            return Ok(Page {
                entries,
                next_token,
            });
        }
        match common_prefix(&options.prefix, delimiter, &key) {
            Some(group) => {
                // Keys arrive in order, so only the latest group can still
                // match anything: one bound replaces the previous one.
                bounds.truncate(fixed_bounds);
                bounds.push(Bound {
                    key: group.to_string(),
                    with_prefix: true,
                });
                entries.push(Entry::CommonPrefix(group.to_string()));
            }
            None => entries.push(Entry::Object(key)),
        }
    }
    Ok(Page {
        entries,
        next_token: None,
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A sorted in-memory key list; it leaves all filtering to `page`.
    pub struct Memory(pub std::vec::IntoIter<String>);

    impl Memory {
        pub fn new(keys: &[&str]) -> Memory {
            let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            keys.sort();
            Memory(keys.into_iter())
        }
    }

    impl KeySource for Memory {
        fn next_key(&mut self, _: &[Bound]) -> Result<Option<String>, Error> {
            Ok(self.0.next())
        }
    }

    pub fn options(prefix: &str, delimiter: Option<&str>, max_keys: u32) -> ListOptions {
        ListOptions {
            prefix: prefix.to_string(),
            delimiter: delimiter.map(str::to_string),
            start_after: None,
            page_token: None,
            max_keys,
        }
    }

    /// Every page of a listing, flattened, as "o:key" / "p:prefix" strings.
    pub fn all_pages(
        mut source: impl FnMut() -> Box<dyn KeySource>,
        mut options: ListOptions,
    ) -> (Vec<String>, usize) {
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = page(&mut *source(), &options).unwrap();
            pages += 1;
            assert!(pages < 1000, "listing does not terminate");
            seen.extend(page.entries.iter().map(|e| match e {
                Entry::Object(k) => format!("o:{k}"),
                Entry::CommonPrefix(p) => format!("p:{p}"),
            }));
            match page.next_token {
                Some(token) => options.page_token = Some(token),
                None => return (seen, pages),
            }
        }
    }

    const KEYS: &[&str] = &[
        "a",
        "a.b",
        "a/1",
        "a/2/x",
        "a/2/y",
        "a0",
        "b/c/d",
        "b/e",
        "wal/000000010000000000000001",
        "wal/000000010000000000000002",
        "wal/000000010000000000000002.partial",
        "wal/000000020000000000000003",
    ];

    fn flat(prefix: &str, delimiter: Option<&str>, max: u32) -> Vec<String> {
        all_pages(
            || Box::new(Memory::new(KEYS)),
            options(prefix, delimiter, max),
        )
        .0
    }

    #[test]
    fn lists_everything_in_byte_order() {
        let all: Vec<String> = KEYS.iter().map(|k| format!("o:{k}")).collect();
        assert_eq!(flat("", None, 0), all);
        for max in 1..=KEYS.len() as u32 + 1 {
            assert_eq!(flat("", None, max), all, "max-keys {max}");
        }
    }

    #[test]
    fn filters_by_prefix() {
        assert_eq!(
            flat("wal/00000001", None, 2),
            [
                "o:wal/000000010000000000000001",
                "o:wal/000000010000000000000002",
                "o:wal/000000010000000000000002.partial"
            ]
        );
        assert_eq!(flat("a/", None, 1), ["o:a/1", "o:a/2/x", "o:a/2/y"]);
        assert!(flat("zzz", None, 1).is_empty());
    }

    #[test]
    fn groups_by_delimiter_across_pages() {
        let expected = ["o:a", "o:a.b", "p:a/", "o:a0", "p:b/", "p:wal/"];
        for max in 1..=7 {
            assert_eq!(flat("", Some("/"), max), expected, "max-keys {max}");
        }
        assert_eq!(flat("a/", Some("/"), 1), ["o:a/1", "p:a/2/"]);
        assert_eq!(flat("b", Some("/"), 1), ["p:b/"]);
        assert_eq!(
            flat("wal/", Some("."), 1),
            [
                "o:wal/000000010000000000000001",
                "o:wal/000000010000000000000002",
                "p:wal/000000010000000000000002.",
                "o:wal/000000020000000000000003"
            ]
        );
    }

    #[test]
    fn honours_start_after() {
        let mut opts = options("", None, 3);
        opts.start_after = Some("a/2".to_string());
        let page = page(&mut Memory::new(KEYS), &opts).unwrap();
        assert_eq!(
            page.entries,
            [
                Entry::Object("a/2/x".into()),
                Entry::Object("a/2/y".into()),
                Entry::Object("a0".into())
            ]
        );
        assert_eq!(page.next_token.as_deref(), Some("a0"));

        // S3 semantics: start-after applies to keys, so a group whose later
        // keys follow it still appears.
        let mut opts = options("", Some("/"), 0);
        opts.start_after = Some("a/1".to_string());
        let (seen, _) = all_pages(|| Box::new(Memory::new(KEYS)), opts);
        assert_eq!(seen, ["p:a/", "o:a0", "p:b/", "p:wal/"]);
    }

    #[test]
    fn token_is_set_only_when_more_remain() {
        let page = page(
            &mut Memory::new(KEYS),
            &options("", None, KEYS.len() as u32),
        )
        .unwrap();
        assert_eq!(page.entries.len(), KEYS.len());
        assert_eq!(page.next_token, None);
        let (_, pages) = all_pages(
            || Box::new(Memory::new(KEYS)),
            options("", None, KEYS.len() as u32 - 1),
        );
        assert_eq!(pages, 2);
    }

    #[test]
    fn bounds() {
        let plain = Bound {
            key: "a/1".into(),
            with_prefix: false,
        };
        assert!(plain.excludes("a/1") && plain.excludes("a/0") && !plain.excludes("a/10"));
        assert!(plain.excludes_all_under("a/0/") && !plain.excludes_all_under("a/"));
        assert!(!plain.excludes_all_under("a/1/"));
        let group = Bound {
            key: "a/".into(),
            with_prefix: true,
        };
        assert!(group.excludes("a/zzz") && !group.excludes("a0"));
        assert!(group.excludes_all_under("a/b/") && !group.excludes_all_under("b/"));
    }
}
