//! The store's operations against a real directory, run natively
//! (`cargo test -p walship-plugin-fs`). The host's conformance suite runs the
//! same contract through the sandbox; these catch mistakes in the plugin's own
//! logic without one.

use std::fs;
use std::path::{Path, PathBuf};

use crate::paging::tests::{Memory, all_pages, options};
use crate::random;
use crate::store::FsStore;
use crate::walship::storage::types::{
    ByteRange, Checksums, Error, ListOptions, PartReceipt, PutMode, PutOptions,
};

/// A fresh directory under the system temp dir, removed afterwards.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new() -> TempRoot {
        let path = std::env::temp_dir().join(format!("walship-fs-test-{}", random::hex(1)));
        fs::create_dir(&path).unwrap();
        TempRoot(path)
    }

    fn store(&self) -> FsStore {
        FsStore::open(&format!("file://{}", self.0.display())).unwrap()
    }

    /// Every file and directory below the root, relative to it.
    fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(base).unwrap().display().to_string());
                if path.is_dir() {
                    walk(&path, base, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out.sort();
        out
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn opts(mode: PutMode) -> PutOptions {
    PutOptions {
        mode,
        checksums: Checksums {
            md5: None,
            sha256: None,
            crc32c: None,
        },
        content_type: None,
    }
}

#[test]
fn put_then_get_and_head() {
    let root = TempRoot::new();
    let store = root.store();
    let meta = store
        .put("a/b/c", b"hello world", &opts(PutMode::CreateOnly))
        .unwrap();
    assert_eq!((meta.key.as_str(), meta.size), ("a/b/c", 11));
    assert!(meta.last_modified_ms.is_some());
    assert_eq!(store.get("a/b/c", None).unwrap().data, b"hello world");
    assert_eq!(store.head("a/b/c").unwrap().size, 11);
    let range = |offset, length| Some(ByteRange { offset, length });
    assert_eq!(store.get("a/b/c", range(6, Some(3))).unwrap().data, b"wor");
    assert_eq!(store.get("a/b/c", range(6, None)).unwrap().data, b"world");
    let past_end = store.get("a/b/c", range(20, Some(3))).unwrap();
    assert!(past_end.data.is_empty());
    assert_eq!(past_end.meta.size, 11);
    // Only the object itself and its directories: no temp files left.
    assert_eq!(root.tree(), ["a", "a/b", "a/b/c"]);
}

#[test]
fn create_only_never_replaces() {
    let root = TempRoot::new();
    let store = root.store();
    store
        .put("k", b"first", &opts(PutMode::CreateOnly))
        .unwrap();
    let err = store
        .put("k", b"second", &opts(PutMode::CreateOnly))
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists(m) if m.contains("\"k\"")),
        "{err:?}"
    );
    assert_eq!(store.get("k", None).unwrap().data, b"first");
    store.put("k", b"third", &opts(PutMode::Overwrite)).unwrap();
    assert_eq!(store.get("k", None).unwrap().data, b"third");
    assert_eq!(root.tree(), ["k"]);
}

#[test]
fn a_key_cannot_also_be_a_directory() {
    let root = TempRoot::new();
    let store = root.store();
    store.put("a/b", b"1", &opts(PutMode::CreateOnly)).unwrap();
    for mode in [PutMode::CreateOnly, PutMode::Overwrite] {
        let err = store.put("a", b"2", &opts(mode)).unwrap_err();
        assert!(
            matches!(&err, Error::Other(m) if m.contains("directory")),
            "{err:?}"
        );
    }
    store.put("c", b"1", &opts(PutMode::CreateOnly)).unwrap();
    let err = store
        .put("c/d", b"2", &opts(PutMode::CreateOnly))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Other(m) if m.contains("is a file")),
        "{err:?}"
    );
    assert_eq!(root.tree(), ["a", "a/b", "c"]);
}

#[test]
fn racing_creates_have_one_winner() {
    let root = TempRoot::new();
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let store = root.store();
                scope.spawn(move || {
                    let data = format!("writer {i}");
                    match store.put("race/key", data.as_bytes(), &opts(PutMode::CreateOnly)) {
                        Ok(_) => 1,
                        Err(Error::AlreadyExists(_)) => 0,
                        Err(err) => panic!("{err:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(root.tree(), ["race", "race/key"]);
}

#[test]
fn missing_objects_and_directories_are_not_found() {
    let root = TempRoot::new();
    let store = root.store();
    store
        .put("dir/obj", b"x", &opts(PutMode::Overwrite))
        .unwrap();
    for key in ["nope", "dir", "dir/obj/below", "dir/nope"] {
        assert!(
            matches!(store.head(key), Err(Error::NotFound(_))),
            "head {key}"
        );
        assert!(
            matches!(store.get(key, None), Err(Error::NotFound(_))),
            "get {key}"
        );
    }
    let err = store.get("../escape", None).unwrap_err();
    assert!(
        matches!(&err, Error::Other(m) if m.starts_with("invalid key")),
        "{err:?}"
    );
}

#[test]
fn open_rejects_bad_prefixes_and_missing_directories() {
    let root = TempRoot::new();
    for prefix in [
        "s3://bucket".to_string(),
        "file://relative/path".to_string(),
        format!("file://{}/missing", root.0.display()),
    ] {
        assert!(
            matches!(FsStore::open(&prefix), Err(Error::InvalidConfig(_))),
            "{prefix}"
        );
    }
}

/// The paging tests' keys less "a": a file cannot also be the directory "a/".
const KEYS: &[&str] = &[
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

#[test]
fn listing_the_tree_matches_listing_the_sorted_keys() {
    let root = TempRoot::new();
    let store = root.store();
    for key in KEYS {
        store
            .put(key, key.as_bytes(), &opts(PutMode::CreateOnly))
            .unwrap();
    }
    // Things that are not objects: bookkeeping, an empty directory.
    fs::write(root.0.join("a/.walship-tmp-leftover"), b"").unwrap();
    fs::create_dir_all(root.0.join(".walship-multipart/0123")).unwrap();
    fs::create_dir_all(root.0.join("empty/inner")).unwrap();

    let prefixes = [
        "",
        "a",
        "a/",
        "a/2",
        "b/c",
        "wal/",
        "wal/00000001",
        "z",
        "../",
        "/a",
    ];
    let delimiters = [None, Some("/"), Some("."), Some("2/")];
    let starts = [
        None,
        Some("a/1"),
        Some("a/"),
        Some("b"),
        Some("wal/000000010000000000000002"),
    ];
    for prefix in prefixes {
        for delimiter in delimiters {
            for start_after in starts {
                for max_keys in [0, 1, 2, 5] {
                    let mut query = options(prefix, delimiter, max_keys);
                    query.start_after = start_after.map(str::to_string);
                    let expected = all_pages(|| Box::new(Memory::new(KEYS)), query.clone()).0;
                    assert_eq!(
                        list_all(&store, query.clone()),
                        expected,
                        "prefix {prefix:?} delimiter {delimiter:?} start-after {start_after:?} \
                         max-keys {max_keys}"
                    );
                }
            }
        }
    }
}

/// Every page of a listing through the store, in the form `all_pages` uses.
fn list_all(store: &FsStore, mut query: ListOptions) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let page = store.list(&query).unwrap();
        // Objects and prefixes come back separately; merged they are in order.
        let mut entries: Vec<(String, String)> = page
            .objects
            .iter()
            .map(|o| (o.key.clone(), format!("o:{}", o.key)))
            .chain(
                page.common_prefixes
                    .iter()
                    .map(|p| (p.clone(), format!("p:{p}"))),
            )
            .collect();
        entries.sort();
        seen.extend(entries.into_iter().map(|(_, tagged)| tagged));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => return seen,
        }
    }
}

#[test]
fn delete_removes_objects_and_empty_directories() {
    let root = TempRoot::new();
    let store = root.store();
    for key in ["x/y/z", "x/keep", "solo"] {
        store.put(key, b"1", &opts(PutMode::Overwrite)).unwrap();
    }
    let failures = store
        .delete(vec![
            "x/y/z".into(),
            "solo".into(),
            "never/was".into(),
            "x".into(),
            "bad//key".into(),
        ])
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].key, "bad//key");
    assert_eq!(root.tree(), ["x", "x/keep"]);
    store.delete(vec!["x/keep".into()]).unwrap();
    assert!(root.tree().is_empty());
    assert!(root.0.is_dir(), "the root itself stays");
}

#[test]
fn multipart_assembles_parts_in_order() {
    let root = TempRoot::new();
    let store = root.store();
    let id = store.start_multipart("big/object").unwrap();
    let second = store.put_part("big/object", &id, 2, b"world").unwrap();
    let first = store.put_part("big/object", &id, 1, b"hello ").unwrap();
    assert!(
        root.tree().iter().all(|p| !p.starts_with("big")),
        "nothing visible yet"
    );

    let mut wrong = second.clone();
    wrong.size = 4;
    let err = store
        .complete_multipart(
            "big/object",
            &id,
            &[first.clone(), wrong],
            &opts(PutMode::CreateOnly),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Other(_)), "{err:?}");

    let meta = store
        .complete_multipart(
            "big/object",
            &id,
            &[first, second],
            &opts(PutMode::CreateOnly),
        )
        .unwrap();
    assert_eq!(meta.size, 11);
    assert_eq!(store.get("big/object", None).unwrap().data, b"hello world");
    assert_eq!(root.tree(), [".walship-multipart", "big", "big/object"]);

    let unknown = store.put_part("big/object", &id, 1, b"late");
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    store.abort_multipart("big/object", &id).unwrap();
    store.abort_multipart("big/object", "not-an-id").unwrap();
}

#[test]
fn multipart_create_only_leaves_existing_object_alone() {
    let root = TempRoot::new();
    let store = root.store();
    store
        .put("k", b"original", &opts(PutMode::CreateOnly))
        .unwrap();
    let id = store.start_multipart("k").unwrap();
    let part = store.put_part("k", &id, 1, b"new").unwrap();
    let err = store
        .complete_multipart("k", &id, &[part], &opts(PutMode::CreateOnly))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(store.get("k", None).unwrap().data, b"original");
    let wrong_key = store.abort_multipart("other", &id);
    assert!(matches!(wrong_key, Err(Error::Other(_))), "{wrong_key:?}");
    store.abort_multipart("k", &id).unwrap();
    assert_eq!(root.tree(), [".walship-multipart", "k"]);
    let receipt = PartReceipt {
        number: 1,
        etag: String::new(),
        size: 3,
    };
    let gone = store.complete_multipart("k", &id, &[receipt], &opts(PutMode::Overwrite));
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
}
