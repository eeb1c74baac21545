//! Listing, one List Blobs page per call (object_store's
//! `PaginatedListStore`: prefix, delimiter, `maxresults`, `marker`), with
//! keys relative to the store's path.

use std::borrow::Cow;

use object_store::list::{PaginatedListOptions, PaginatedListStore};

use crate::errors::{Action, Op};
use crate::objects::last_modified_ms;
use crate::store::AzureStore;
use crate::walship::storage::types::{Error, ListOptions, ListPage, ObjectMeta};

/// Keys per page when the host asks for 0 or more than this (Azure allows
/// 5000; the contract's default is at most 1000).
const MAX_PAGE: u32 = 1000;

impl AzureStore {
    pub fn list(&self, options: &ListOptions) -> Result<ListPage, Error> {
        let op = Op::new(Action::List, &options.prefix);
        let prefix = self.context.location.full_key(&options.prefix);
        let delimiter = options.delimiter.clone().filter(|d| !d.is_empty());
        let request = PaginatedListOptions {
            delimiter: delimiter.clone().map(Cow::Owned),
            max_keys: Some(match options.max_keys {
                0 => MAX_PAGE,
                n => n.min(MAX_PAGE),
            } as usize),
            page_token: options.page_token.clone(),
            ..Default::default()
        };
        let page = self.call(
            &op,
            self.client
                .list_paginated((!prefix.is_empty()).then_some(prefix.as_str()), request),
        )?;
        let objects = page
            .result
            .objects
            .iter()
            .filter_map(|object| {
                Some(ObjectMeta {
                    key: self.relative(object.location.as_ref())?.to_string(),
                    size: object.size,
                    last_modified_ms: last_modified_ms(object),
                    etag: object.e_tag.clone(),
                })
            })
            .collect();
        let common_prefixes = page
            .result
            .common_prefixes
            .iter()
            .filter_map(|group| {
                let group = with_delimiter(group.as_ref(), delimiter.as_deref()?);
                Some(self.relative(&group)?.to_string())
            })
            .collect();
        Ok(ListPage {
            objects,
            common_prefixes,
            next_page_token: page.page_token,
        })
    }
}

/// Azure's common prefixes end with the delimiter, as the contract's do, but
/// object_store's `Path` drops a trailing `/`: put it back.
fn with_delimiter(group: &str, delimiter: &str) -> String {
    if group.ends_with(delimiter) {
        group.to_string()
    } else {
        format!("{group}/")
    }
}

#[cfg(test)]
mod tests {
    use super::with_delimiter;

    #[test]
    fn common_prefixes_keep_their_delimiter() {
        assert_eq!(with_delimiter("db1/wal", "/"), "db1/wal/");
        assert_eq!(with_delimiter("db1/wal-", "-"), "db1/wal-");
    }
}
