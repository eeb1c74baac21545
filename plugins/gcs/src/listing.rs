//! Listing, one JSON API page per call, with keys relative to the store's
//! path. The parts of unfinished uploads (`.walship-uploads/`) never show.

use bytes::Bytes;
use http::Method;

use crate::client::query;
use crate::errors::{Action, Op};
use crate::store::{GcsStore, Resource};
use crate::walship::storage::types::{Error, ListOptions, ListPage};

/// Keys per page when the host asks for 0 or more: the JSON API's maximum.
const MAX_PAGE: u32 = 1000;
const FIELDS: &str = "items(name,size,generation,etag,updated),prefixes,nextPageToken";

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    items: Vec<Resource>,
    #[serde(default)]
    prefixes: Vec<String>,
    next_page_token: Option<String>,
}

impl GcsStore {
    pub fn list(&self, options: &ListOptions) -> Result<ListPage, Error> {
        let op = Op::new(Action::List, &options.prefix);
        let location = &self.context.location;
        let prefix = location.full_key(&options.prefix);
        let delimiter = options.delimiter.clone().filter(|d| !d.is_empty());
        let max = match options.max_keys {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        }
        .to_string();
        // startOffset is inclusive; the contract's start-after is not, so
        // that one key is dropped from the page below.
        let start_after = options
            .start_after
            .as_deref()
            .map(|key| location.full_key(key));
        let mut params: Vec<(&str, &str)> = Vec::new();
        if !prefix.is_empty() {
            params.push(("prefix", &prefix));
        }
        if let Some(delimiter) = &delimiter {
            params.push(("delimiter", delimiter));
        }
        params.push(("maxResults", &max));
        if let Some(token) = &options.page_token {
            params.push(("pageToken", token));
        }
        if let Some(start) = &start_after {
            params.push(("startOffset", start));
        }
        params.push(("fields", FIELDS));
        let url = format!("{}{}", self.client.objects_url(), query(&params));
        let reply = self.call(&op, Method::GET, &url, &[], Bytes::new(), &[200])?;
        let page: Page = serde_json::from_slice(&reply.body).map_err(|e| {
            Error::Other(format!(
                "cannot read the listing {} sent for {}: {e}",
                self.context.endpoint,
                location.url_of(&options.prefix)
            ))
        })?;
        let hidden = location.uploads_base();
        let objects = page
            .items
            .iter()
            .filter(|item| Some(&item.name) != start_after.as_ref())
            .filter(|item| !item.name.starts_with(&hidden))
            .filter_map(|item| Some(item.meta(self.relative(&item.name)?)))
            .collect();
        let common_prefixes = page
            .prefixes
            .iter()
            .filter(|group| !group.starts_with(&hidden))
            .filter_map(|group| Some(self.relative(group)?.to_string()))
            .collect();
        Ok(ListPage {
            objects,
            common_prefixes,
            next_page_token: page.next_page_token.filter(|t| !t.is_empty()),
        })
    }
}
