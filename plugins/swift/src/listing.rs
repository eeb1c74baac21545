//! Listing: one JSON container listing per call, `prefix` + `marker`
//! paging, `delimiter` for common prefixes.

use bytes::Bytes;
use serde::Deserialize;

use crate::errors::{Action, Op, one_line};
use crate::names::{self, SEGMENTS_PREFIX};
use crate::objects::unquote;
use crate::store::{SwiftStore, authed, finish};
use crate::time;
use crate::walship::storage::types::{Error, ListOptions, ListPage, ObjectMeta};

/// Keys per page when the host asks for 0 or more (Swift allows 10,000).
const MAX_PAGE: u32 = 1000;

/// One entry of `?format=json`: an object or, with a delimiter, a subdir.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Entry {
    Subdir {
        subdir: String,
    },
    Object {
        name: String,
        bytes: u64,
        #[serde(default)]
        hash: Option<String>,
        #[serde(default)]
        last_modified: Option<String>,
        /// Set for Static Large Object manifests (whose `bytes` is the
        /// whole object's size).
        #[serde(default)]
        slo_etag: Option<String>,
    },
}

impl Entry {
    pub(crate) fn name(&self) -> &str {
        match self {
            Entry::Subdir { subdir } => subdir,
            Entry::Object { name, .. } => name,
        }
    }
}

/// What one listing request asks for (names are Swift's, not the store's).
pub(crate) struct Query<'a> {
    pub prefix: &'a str,
    pub marker: Option<&'a str>,
    pub delimiter: Option<&'a str>,
    pub limit: u32,
}

impl SwiftStore {
    pub fn list(&self, options: &ListOptions) -> Result<ListPage, Error> {
        let base = self.location.key_base();
        let prefix = format!("{base}{}", options.prefix);
        let op = Op::new(Action::List, self.location.url_of(&options.prefix));
        let delimiter = options.delimiter.as_deref().filter(|d| !d.is_empty());
        if let Some(d) = delimiter
            && d.chars().count() != 1
        {
            return Err(Error::Unsupported(format!(
                "Swift groups listings by a single-character delimiter, not {d:?}"
            )));
        }
        let marker = match (&options.page_token, &options.start_after) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(after)) => Some(format!("{base}{after}")),
            (None, None) => None,
        };
        let limit = match options.max_keys {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        };
        let entries = self.list_raw(
            &op,
            &Query {
                prefix: &prefix,
                marker: marker.as_deref(),
                delimiter,
                limit,
            },
        )?;
        let next_page_token = (entries.len() as u32 >= limit)
            .then(|| entries.last().map(|e| next_marker(e, delimiter)))
            .flatten();
        let hidden = |name: &str| base.is_empty() && name.starts_with(SEGMENTS_PREFIX);
        let mut objects = Vec::new();
        let mut common_prefixes = Vec::new();
        for entry in entries {
            if hidden(entry.name()) {
                continue;
            }
            match entry {
                Entry::Subdir { subdir } => {
                    if let Some(key) = subdir.strip_prefix(&base) {
                        common_prefixes.push(key.to_string());
                    }
                }
                Entry::Object {
                    name,
                    bytes,
                    hash,
                    last_modified,
                    slo_etag,
                } => {
                    let Some(key) = name.strip_prefix(&base) else {
                        continue;
                    };
                    objects.push(ObjectMeta {
                        key: key.to_string(),
                        size: bytes,
                        last_modified_ms: last_modified.as_deref().and_then(time::listing_ms),
                        etag: slo_etag.or(hash).map(|e| unquote(&e)),
                    });
                }
            }
        }
        Ok(ListPage {
            objects,
            common_prefixes,
            next_page_token,
        })
    }

    /// One `GET container?format=json` page.
    pub(crate) fn list_raw(&self, op: &Op, query: &Query<'_>) -> Result<Vec<Entry>, Error> {
        let mut params = format!("format=json&limit={}", query.limit);
        if !query.prefix.is_empty() {
            params.push_str(&format!("&prefix={}", names::query_value(query.prefix)));
        }
        if let Some(marker) = query.marker {
            params.push_str(&format!("&marker={}", names::query_value(marker)));
        }
        if let Some(delimiter) = query.delimiter {
            params.push_str(&format!("&delimiter={}", names::query_value(delimiter)));
        }
        let response = self.request(op, |s| {
            let url = format!("{}?{params}", self.container_url(s));
            finish(
                authed(http::Method::GET, &url, s).header("accept", "application/json"),
                Bytes::new(),
            )
        })?;
        if !response.status().is_success() {
            return Err(self.failed(op, &response));
        }
        // 204: an empty container.
        if response.body().is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(response.body()).map_err(|e| {
            Error::Other(one_line(&format!(
                "cannot {} {}: unreadable listing ({e})",
                op.action, op.what
            )))
        })
    }
}

/// The marker that continues after `last`. After a subdir (`a/`) it skips
/// every name under it (`a0`: `/` + 1), as Swift does inside one listing;
/// `a/` itself would list `a/x` and group it into `a/` again.
fn next_marker(last: &Entry, delimiter: Option<&str>) -> String {
    match (last, delimiter.and_then(|d| d.chars().next())) {
        (Entry::Subdir { subdir }, Some(d)) if subdir.ends_with(d) => {
            let stem = &subdir[..subdir.len() - d.len_utf8()];
            match char::from_u32(d as u32 + 1) {
                Some(next) => format!("{stem}{next}"),
                None => subdir.clone(),
            }
        }
        _ => last.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_from_swift_json() {
        let json = r#"[{"subdir": "db/wal/"},
            {"bytes": 3, "hash": "abc", "name": "db/x", "content_type": "a/b", "last_modified": "2026-12-01T23:26:11.874470"},
            {"bytes": 9, "hash": "def", "name": "db/big", "last_modified": "2026-12-01T23:26:12.100710", "slo_etag": "\"d98\""}]"#;
        let entries: Vec<Entry> = serde_json::from_str(json).unwrap();
        assert!(matches!(&entries[0], Entry::Subdir { subdir } if subdir == "db/wal/"));
        assert!(
            matches!(&entries[2], Entry::Object { slo_etag: Some(e), bytes: 9, .. } if e == "\"d98\"")
        );
    }

    #[test]
    fn paging_after_a_subdir_skips_it() {
        let subdir = Entry::Subdir {
            subdir: "db/wal/".into(),
        };
        assert_eq!(next_marker(&subdir, Some("/")), "db/wal0");
        let object = Entry::Object {
            name: "db/x".into(),
            bytes: 0,
            hash: None,
            last_modified: None,
            slo_etag: None,
        };
        assert_eq!(next_marker(&object, Some("/")), "db/x");
        assert_eq!(next_marker(&object, None), "db/x");
    }
}
