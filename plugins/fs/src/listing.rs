//! list-objects: the directory walk, paged, with each object's metadata.

use std::fs;

use crate::errors::{from_io, is_missing};
use crate::paging::{self, Entry};
use crate::store::{FsStore, object_meta};
use crate::walk::Walker;
use crate::walship::storage::types::{Error, ListOptions, ListPage};

impl FsStore {
    pub fn list(&self, options: &ListOptions) -> Result<ListPage, Error> {
        let mut walker = Walker::new(self.root(), &options.prefix, options.delimiter.as_deref());
        let page = paging::page(&mut walker, options)?;
        let mut objects = Vec::new();
        let mut common_prefixes = Vec::new();
        for entry in page.entries {
            match entry {
                Entry::CommonPrefix(prefix) => common_prefixes.push(prefix),
                Entry::Object(key) => {
                    let path = self.root().join(&key);
                    match fs::metadata(&path) {
                        Ok(metadata) => objects.push(object_meta(&key, &metadata)),
                        // Deleted since the walk saw it: it is no longer listed.
                        Err(err) if is_missing(&err) => {}
                        Err(err) => {
                            return Err(from_io(
                                &format!("list-objects: stat of {}", path.display()),
                                &err,
                            ));
                        }
                    }
                }
            }
        }
        Ok(ListPage {
            objects,
            common_prefixes,
            next_page_token: page.next_token,
        })
    }
}
