//! Deleting: bulk delete (one request for up to 1,000 names) where the
//! cluster offers it (`/info`), one DELETE per name otherwise; a Static
//! Large Object's manifest with `?multipart-manifest=delete`, so that its
//! segments go too (bulk delete would leave them behind).

use std::collections::HashSet;

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::errors::{self, Action, Op, one_line};
use crate::listing::{Entry, Query};
use crate::names;
use crate::store::{SwiftStore, authed, finish};
use crate::walship::storage::types::{DeleteFailure, Error};

/// Entries a manifest search may read beyond the keys asked for, before it
/// gives up and deletes every key the slow, sure way.
const SEARCH_SLACK: usize = 2000;
/// Swift's largest listing page.
const LISTING_PAGE: u32 = 10_000;

/// Bulk delete's answer (also `?multipart-manifest=delete`'s).
#[derive(Debug, Deserialize)]
struct BulkReply {
    #[serde(rename = "Response Status", default)]
    status: String,
    #[serde(rename = "Errors", default)]
    errors: Vec<(String, String)>,
}

impl SwiftStore {
    pub fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        let op = Op::new(Action::Delete, self.location.url_of(""));
        let mut failures = Vec::new();
        let mut wanted: Vec<(String, String)> = Vec::new();
        for key in keys {
            match self.object_name(&key) {
                Ok(name) => wanted.push((name, key)),
                Err(error) => failures.push(DeleteFailure { key, error }),
            }
        }
        if wanted.is_empty() {
            return Ok(failures);
        }
        let names: Vec<String> = wanted.iter().map(|(name, _)| name.clone()).collect();
        let key_of = |name: &str| {
            wanted
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| name.to_string(), |(_, k)| k.clone())
        };
        let (manifests, plain): (Vec<String>, Vec<String>) =
            match self.manifests_among(&op, &names)? {
                Some(manifests) => names.into_iter().partition(|n| manifests.contains(n)),
                // Not found out cheaply: every key as a manifest (`delete_large`
                // falls back to a plain DELETE when it is not one).
                None => (names, Vec::new()),
            };
        for name in &manifests {
            let op = Op::new(Action::Delete, self.location.url_of(&key_of(name)));
            if let Err(error) = self.delete_large(&op, name) {
                failures.push(DeleteFailure {
                    key: key_of(name),
                    error,
                });
            }
        }
        for (name, error) in self.delete_names(&op, &plain)? {
            failures.push(DeleteFailure {
                key: key_of(&name),
                error,
            });
        }
        Ok(failures)
    }

    /// Which of `names` are Static Large Object manifests, from the
    /// container listing between the first and last of them (it marks
    /// manifests with `slo_etag`): one request for a run of WAL segments.
    /// `None` when that range holds too many other objects to read.
    fn manifests_among(&self, op: &Op, names: &[String]) -> Result<Option<HashSet<String>>, Error> {
        let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
        let prefix = common_prefix(first, last);
        // Names after `first` minus its last character include `first`.
        let mut marker: Option<String> = first
            .char_indices()
            .last()
            .map(|(at, _)| first[..at].to_string())
            .filter(|m| !m.is_empty());
        let wanted: HashSet<&str> = sorted.iter().copied().collect();
        let mut manifests = HashSet::new();
        let mut read = 0usize;
        loop {
            let entries = self.list_raw(
                op,
                &Query {
                    prefix,
                    marker: marker.as_deref(),
                    delimiter: None,
                    limit: LISTING_PAGE,
                },
            );
            let entries = match entries {
                Ok(entries) => entries,
                // No container: nothing to delete, no manifests.
                Err(Error::InvalidConfig(_)) => return Ok(Some(manifests)),
                Err(e) => return Err(e),
            };
            let full = entries.len() as u32 >= LISTING_PAGE;
            read += entries.len();
            for entry in &entries {
                if let Entry::Object {
                    name,
                    slo_etag: Some(_),
                    ..
                } = entry
                    && wanted.contains(name.as_str())
                {
                    manifests.insert(name.clone());
                }
            }
            match entries.last() {
                Some(entry) if full && entry.name() < last => {
                    if read > names.len() + SEARCH_SLACK {
                        return Ok(None);
                    }
                    marker = Some(entry.name().to_string());
                }
                _ => return Ok(Some(manifests)),
            }
        }
    }

    /// Every object name under `prefix` (for an upload's segments).
    pub(crate) fn names_under(&self, op: &Op, prefix: &str) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        loop {
            let entries = self.list_raw(
                op,
                &Query {
                    prefix,
                    marker: names.last().map(String::as_str),
                    delimiter: None,
                    limit: LISTING_PAGE,
                },
            );
            let entries = match entries {
                Ok(entries) => entries,
                Err(Error::InvalidConfig(_) | Error::NotFound(_)) => return Ok(names),
                Err(e) => return Err(e),
            };
            let full = entries.len() as u32 >= LISTING_PAGE;
            names.extend(entries.iter().map(|e| e.name().to_string()));
            if !full {
                return Ok(names);
            }
        }
    }

    /// Deletes plain objects; returns those that could not be deleted.
    pub(crate) fn delete_names(
        &self,
        op: &Op,
        names: &[String],
    ) -> Result<Vec<(String, Error)>, Error> {
        if names.len() > 1 && self.bulk_available(op)? {
            let container = &self.location.container;
            let mut failures = Vec::new();
            for chunk in names.chunks(crate::info::MAX_DELETE_BATCH as usize) {
                let mut refused = self.bulk_delete(op, chunk)?;
                // Each name is deleted with the token: it may lapse midway.
                let lapsed: Vec<String> = refused
                    .iter()
                    .filter(|(_, why)| status_code(why) == 401)
                    .map(|(name, _)| name.clone())
                    .collect();
                if !lapsed.is_empty() {
                    self.sessions.renew(op);
                    refused.retain(|(_, why)| status_code(why) != 401);
                    refused.extend(self.bulk_delete(op, &lapsed)?);
                }
                failures.extend(refused.into_iter().map(|(name, why)| {
                    let op = Op::new(Action::Delete, format!("swift://{container}/{name}"));
                    let error =
                        errors::from_status(&op, status_code(&why), &http::HeaderMap::new(), &why);
                    (name, error)
                }));
            }
            return Ok(failures);
        }
        let mut failures = Vec::new();
        for name in names {
            let op = Op::new(
                Action::Delete,
                format!("swift://{}/{name}", self.location.container),
            );
            let response = self.request(&op, |s| {
                finish(
                    authed(http::Method::DELETE, &self.object_url(s, name), s),
                    Bytes::new(),
                )
            })?;
            let status = response.status().as_u16();
            if !response.status().is_success() && status != 404 {
                failures.push((name.clone(), self.failed(&op, &response)));
            }
        }
        Ok(failures)
    }

    /// `DELETE ?multipart-manifest=delete`: the segments, then the manifest.
    /// Swift refuses it for a plain object, which is then deleted as one.
    fn delete_large(&self, op: &Op, name: &str) -> Result<(), Error> {
        match self.delete_large_once(op, name)? {
            Some(reply) if reply.errors.iter().any(|(_, why)| status_code(why) == 401) => {
                self.sessions.renew(op);
                self.delete_large_once(op, name)?
                    .map_or(Ok(()), |reply| self.large_delete_outcome(op, name, reply))
            }
            Some(reply) => self.large_delete_outcome(op, name, reply),
            None => Ok(()),
        }
    }

    /// One `DELETE ?multipart-manifest=delete`: its report, or `None` when
    /// there was nothing to delete.
    fn delete_large_once(&self, op: &Op, name: &str) -> Result<Option<BulkReply>, Error> {
        let response = self.request(op, |s| {
            let url = format!("{}?multipart-manifest=delete", self.object_url(s, name));
            finish(
                authed(http::Method::DELETE, &url, s).header("accept", "application/json"),
                Bytes::new(),
            )
        })?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.failed(op, &response));
        }
        bulk_reply(op, response.body()).map(Some)
    }

    fn large_delete_outcome(&self, op: &Op, name: &str, reply: BulkReply) -> Result<(), Error> {
        // A plain object after all (replaced since it was listed): SLO
        // refuses it as "400 Not an SLO manifest"; delete it as one.
        let itself = names::object_path(&self.location.container, name);
        if let [(path, why)] = reply.errors.as_slice()
            && decode(path) == decode(&itself)
            && (why.contains("Not an SLO manifest") || status_code(why) == 400)
        {
            return match self.delete_names(op, &[name.to_string()])?.pop() {
                Some((_, error)) => Err(error),
                None => Ok(()),
            };
        }
        match reply.errors.first() {
            Some((path, why)) => Err(errors::from_status(
                op,
                status_code(why),
                &http::HeaderMap::new(),
                &format!("segment {} could not be deleted: {why}", decode(path)),
            )),
            None if !reply_ok(&reply.status) => Err(errors::from_status(
                op,
                status_code(&reply.status),
                &http::HeaderMap::new(),
                "",
            )),
            None => Ok(()),
        }
    }

    /// Whether `/info` names `bulk_delete`; asked once per instance. A
    /// cluster that hides `/info` gets one DELETE per object.
    fn bulk_available(&self, op: &Op) -> Result<bool, Error> {
        if let Some(known) = self.bulk_delete.get() {
            return Ok(known);
        }
        let storage_url = self.sessions.storage_url()?;
        let info_url = match url::Url::parse(&storage_url) {
            Ok(url) => format!("{}/info", url.origin().ascii_serialization()),
            Err(_) => return Ok(false),
        };
        let info_op = Op::new(Action::Info, info_url.clone());
        let response = self.request(&info_op, |s| {
            finish(
                authed(http::Method::GET, &info_url, s).header("accept", "application/json"),
                Bytes::new(),
            )
        });
        let available = match response {
            Ok(r) if r.status().is_success() => {
                serde_json::from_slice::<serde_json::Value>(r.body())
                    .map(|info| info.get("bulk_delete").is_some())
                    .unwrap_or(false)
            }
            Ok(_) => false,
            Err(e @ (Error::Transient(_) | Error::Throttled(_))) => return Err(e),
            Err(_) => false,
        };
        crate::host::debug(&format!(
            "swift: bulk delete {} at {} ({})",
            if available {
                "available"
            } else {
                "not offered"
            },
            info_url,
            op.what
        ));
        self.bulk_delete.set(Some(available));
        Ok(available)
    }

    /// One `POST ?bulk-delete` for `names`; the names Swift could not delete,
    /// with its reason (`"409 Conflict"`).
    fn bulk_delete(&self, op: &Op, names: &[String]) -> Result<Vec<(String, String)>, Error> {
        let container = &self.location.container;
        let body: String = names
            .iter()
            .map(|name| names::object_path(container, name) + "\n")
            .collect();
        let body = Bytes::from(body);
        let response = self.request(op, |s| {
            let url = format!("{}?bulk-delete", s.storage_url);
            finish(
                authed(http::Method::POST, &url, s)
                    .header("content-type", "text/plain")
                    .header("accept", "application/json"),
                body.clone(),
            )
        })?;
        if !response.status().is_success() {
            return Err(self.failed(op, &response));
        }
        let reply = bulk_reply(op, response.body())?;
        let mut failures = Vec::new();
        let base = format!("/{container}/");
        for (path, why) in &reply.errors {
            let path = decode(path);
            let name = path.strip_prefix(&base).unwrap_or(&path).to_string();
            failures.push((name, why.clone()));
        }
        if failures.is_empty() && !reply_ok(&reply.status) {
            return Err(errors::from_status(
                op,
                status_code(&reply.status),
                &http::HeaderMap::new(),
                "bulk delete",
            ));
        }
        Ok(failures)
    }
}

fn bulk_reply(op: &Op, body: &[u8]) -> Result<BulkReply, Error> {
    // Swift sends spaces while it works, then the JSON.
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(text.trim()).map_err(|e| {
        Error::Transient(one_line(&format!(
            "cannot {} {}: unreadable bulk-delete answer ({e})",
            op.action, op.what
        )))
    })
}

/// `"200 OK"` → 200; an unreadable status counts as a server error.
fn status_code(status: &str) -> u16 {
    status
        .split_whitespace()
        .next()
        .and_then(|code| code.parse().ok())
        .unwrap_or(500)
}

fn reply_ok(status: &str) -> bool {
    matches!(status_code(status), 200..=299 | 404)
}

fn decode(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

/// The longest common prefix of two names, cut at a character boundary.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            break;
        }
        end = i + ca.len_utf8();
    }
    &a[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_replies_and_statuses() {
        let body = b"   \n{\"Number Not Found\": 1, \"Response Status\": \"400 Bad Request\", \
            \"Errors\": [[\"/c/a%20b\", \"409 Conflict\"]], \"Number Deleted\": 2, \"Response Body\": \"\"}";
        let reply = bulk_reply(&Op::new(Action::Delete, "x"), body).unwrap();
        assert_eq!(
            reply.errors,
            vec![("/c/a%20b".to_string(), "409 Conflict".to_string())]
        );
        assert_eq!(decode(&reply.errors[0].0), "/c/a b");
        assert!(!reply_ok(&reply.status));
        assert!(reply_ok("200 OK"));
        assert_eq!(status_code("garbage"), 500);
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("db/wal/0001", "db/wal/0009"), "db/wal/000");
        assert_eq!(common_prefix("a", "b"), "");
        assert_eq!(common_prefix("xé1", "xé2"), "xé");
        assert_eq!(common_prefix("same", "same"), "same");
    }
}
