//! The store's operations against a scripted Swift: what the plugin sends
//! (URLs, headers, bodies) and how it reads the answers.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::store::SwiftStore;
use crate::walship::storage::types::{
    Checksums, Error, ListOptions, PartReceipt, PutMode, PutOptions,
};

const AUTH: &str = "http://127.0.0.1:8080/auth/v1.0";
const STORAGE: &str = "http://127.0.0.1:8080/v1/AUTH_test";
const KEY: &str = "very-secret-key";

type Sent = Arc<Mutex<Vec<http::Request<Bytes>>>>;

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::from(body.to_string())).unwrap()
}

/// A v1 auth answer with a numbered token.
fn auth_ok(n: usize) -> http::Response<Bytes> {
    reply(
        200,
        &[
            ("x-storage-url", STORAGE),
            ("x-auth-token", &format!("AUTH_tk{n}")),
        ],
        "",
    )
}

/// A store with v1 auth whose requests `respond` answers (auth included).
fn store(
    prefix: &str,
    config: &[(&str, &str)],
    secrets: &[(&str, &str)],
    respond: impl Fn(&http::Request<Bytes>, usize) -> http::Response<Bytes> + 'static,
) -> (SwiftStore, Sent) {
    let sent: Sent = Arc::default();
    let log = Arc::clone(&sent);
    let send = move |request: http::Request<Bytes>| {
        let n = log.lock().unwrap().len();
        let response = respond(&request, n);
        log.lock().unwrap().push(request);
        Ok(response)
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let store = SwiftStore::open_with(prefix, &pairs(config), &pairs(secrets), Box::new(send))
        .expect("open");
    (store, sent)
}

fn v1(
    respond: impl Fn(&http::Request<Bytes>, usize) -> http::Response<Bytes> + 'static,
) -> (SwiftStore, Sent) {
    store(
        "swift://walship/db",
        &[("ST_AUTH", AUTH), ("ST_USER", "test:tester")],
        &[("ST_KEY", KEY)],
        respond,
    )
}

fn is_auth(request: &http::Request<Bytes>) -> bool {
    request.uri().path() == "/auth/v1.0"
}

fn header<'r>(request: &'r http::Request<Bytes>, name: &str) -> Option<&'r str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn options(mode: PutMode) -> PutOptions {
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
fn a_create_only_put_authenticates_then_sends_etag_and_if_none_match() {
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            auth_ok(n)
        } else {
            reply(201, &[("etag", "900150983cd24fb0d6963f7d28e17f72")], "")
        }
    });
    let meta = store
        .put("wal/a b", b"abc".to_vec(), &options(PutMode::CreateOnly))
        .unwrap();
    assert_eq!(meta.size, 3);
    assert_eq!(
        meta.etag.as_deref(),
        Some("900150983cd24fb0d6963f7d28e17f72")
    );
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(header(&sent[0], "x-auth-user"), Some("test:tester"));
    assert_eq!(header(&sent[0], "x-auth-key"), Some(KEY));
    let put = &sent[1];
    assert_eq!(put.method(), http::Method::PUT);
    assert_eq!(
        put.uri().to_string(),
        format!("{STORAGE}/walship/db/wal/a%20b")
    );
    assert_eq!(header(put, "x-auth-token"), Some("AUTH_tk0"));
    assert_eq!(
        header(put, "etag"),
        Some("900150983cd24fb0d6963f7d28e17f72")
    );
    assert_eq!(header(put, "if-none-match"), Some("*"));
}

#[test]
fn a_taken_key_is_already_exists() {
    let (store, _) = v1(|request, n| {
        if is_auth(request) {
            auth_ok(n)
        } else {
            reply(412, &[], "<html>Precondition Failed</html>")
        }
    });
    let err = store
        .put("k", b"x".to_vec(), &options(PutMode::CreateOnly))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
}

#[test]
fn a_refused_token_is_renewed_once() {
    // auth, 200, then 401 to the same token, auth again, 200.
    let (store, sent) = v1(|request, n| match (is_auth(request), n) {
        (true, _) => auth_ok(n),
        (false, 2) => reply(401, &[], ""),
        (false, _) => reply(200, &[("content-length", "0")], ""),
    });
    store.head("k").unwrap();
    store.head("k").unwrap();
    let sent = sent.lock().unwrap();
    let auths = sent.iter().filter(|r| is_auth(r)).count();
    assert_eq!(auths, 2, "{sent:?}");
    assert_eq!(header(&sent[2], "x-auth-token"), Some("AUTH_tk0"));
    assert_eq!(header(&sent[4], "x-auth-token"), Some("AUTH_tk3"));
}

#[test]
fn a_token_refused_twice_is_unauthenticated_without_looping() {
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            auth_ok(n)
        } else {
            reply(401, &[], "")
        }
    });
    let err = store.head("k").unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");
    // Token refused, one new token, refused again: four requests.
    assert_eq!(sent.lock().unwrap().len(), 4);
}

#[test]
fn a_token_tempauth_hands_out_again_just_before_it_lapses_is_renewed() {
    // tempauth returns its cached token: fresh to the plugin, refused.
    let (store, sent) = v1(|request, n| match (is_auth(request), n) {
        (true, _) => auth_ok(n),
        (false, 1) => reply(401, &[], ""),
        (false, _) => reply(200, &[("content-length", "0")], ""),
    });
    store.head("k").unwrap();
    assert_eq!(sent.lock().unwrap().len(), 4);
}

#[test]
fn a_wrong_key_is_unauthenticated_and_not_shown() {
    let (store, _) = v1(|_, _| reply(401, &[], &format!("bad key {KEY}")));
    let err = store.head("k").unwrap_err();
    let Error::Unauthenticated(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("ST_KEY"), "{message}");
    assert!(!message.contains(KEY), "{message}");
}

#[test]
fn a_pre_issued_token_is_used_and_cannot_be_renewed() {
    let (store, sent) = store(
        "swift://walship",
        &[("OS_STORAGE_URL", STORAGE)],
        &[("OS_AUTH_TOKEN", "AUTH_given")],
        |_, n| {
            if n == 0 {
                reply(200, &[("content-length", "5")], "")
            } else {
                reply(401, &[], "")
            }
        },
    );
    assert_eq!(store.head("k").unwrap().size, 5);
    assert_eq!(
        header(&sent.lock().unwrap()[0], "x-auth-token"),
        Some("AUTH_given")
    );
    let err = store.head("k").unwrap_err();
    let Error::Unauthenticated(message) = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("OS_AUTH_TOKEN"), "{message}");
    assert!(!message.contains("AUTH_given"), "{message}");
}

#[test]
fn ranged_gets_read_the_size_from_content_range_and_416_is_empty() {
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            return auth_ok(n);
        }
        match (request.method().as_str(), header(request, "range")) {
            ("GET", Some("bytes=2-4")) => reply(206, &[("content-range", "bytes 2-4/10")], "cde"),
            ("GET", Some(_)) => reply(416, &[], ""),
            _ => reply(200, &[("content-length", "10")], ""),
        }
    });
    use crate::walship::storage::types::ByteRange;
    let got = store
        .get(
            "k",
            Some(ByteRange {
                offset: 2,
                length: Some(3),
            }),
        )
        .unwrap();
    assert_eq!((got.data.as_slice(), got.meta.size), (&b"cde"[..], 10));
    let past = store
        .get(
            "k",
            Some(ByteRange {
                offset: 20,
                length: None,
            }),
        )
        .unwrap();
    assert_eq!((past.data.len(), past.meta.size), (0, 10));
    assert_eq!(header(&sent.lock().unwrap()[2], "range"), Some("bytes=20-"));
}

#[test]
fn a_listing_at_the_container_root_hides_segments_and_pages_on() {
    let (store, sent) = store(
        "swift://walship",
        &[("ST_AUTH", AUTH), ("ST_USER", "test:tester")],
        &[("ST_KEY", KEY)],
        |request, n| {
            if is_auth(request) {
                return auth_ok(n);
            }
            reply(
                200,
                &[],
                r#"[{"name": ".walship-segments/0123/00001", "bytes": 1, "hash": "h"},
                    {"name": "a", "bytes": 2, "hash": "h", "last_modified": "2026-12-01T23:26:11.874470"}]"#,
            )
        },
    );
    let page = store
        .list(&ListOptions {
            prefix: String::new(),
            delimiter: None,
            start_after: Some("0".into()),
            page_token: None,
            max_keys: 2,
        })
        .unwrap();
    let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a"]);
    assert_eq!(page.next_page_token.as_deref(), Some("a"));
    let url = sent.lock().unwrap()[1].uri().to_string();
    assert!(
        url.contains("format=json") && url.contains("limit=2"),
        "{url}"
    );
    assert!(url.contains("marker=0"), "{url}");
    let err = store
        .put(
            ".walship-segments/x",
            Vec::new(),
            &options(PutMode::Overwrite),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[test]
fn deleting_sends_manifests_to_multipart_delete_and_the_rest_to_bulk() {
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            return auth_ok(n);
        }
        let query = request.uri().query().unwrap_or_default();
        if request.uri().path() == "/info" {
            reply(
                200,
                &[],
                r#"{"bulk_delete": {"max_deletes_per_request": 10000}}"#,
            )
        } else if query.contains("format=json") {
            reply(
                200,
                &[],
                r#"[{"name": "db/big", "bytes": 9, "hash": "h", "slo_etag": "\"e\""},
                    {"name": "db/small1", "bytes": 1, "hash": "h"},
                    {"name": "db/small2", "bytes": 1, "hash": "h"}]"#,
            )
        } else if query.contains("multipart-manifest=delete") {
            reply(200, &[], r#"{"Response Status": "200 OK", "Errors": []}"#)
        } else {
            reply(
                200,
                &[],
                r#" {"Response Status": "400 Bad Request", "Errors": [["/walship/db/small2", "409 Conflict"]]}"#,
            )
        }
    });
    let failures = store
        .delete(vec!["big".into(), "small1".into(), "small2".into()])
        .unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].key, "small2");
    assert!(matches!(failures[0].error, Error::Transient(_)));
    let sent = sent.lock().unwrap();
    let slo = sent
        .iter()
        .find(|r| r.method() == http::Method::DELETE)
        .expect("a DELETE");
    assert_eq!(
        slo.uri().to_string(),
        format!("{STORAGE}/walship/db/big?multipart-manifest=delete")
    );
    let bulk = sent
        .iter()
        .find(|r| r.method() == http::Method::POST)
        .expect("a bulk delete");
    assert_eq!(bulk.uri().to_string(), format!("{STORAGE}?bulk-delete"));
    assert_eq!(
        bulk.body().as_ref(),
        b"/walship/db/small1\n/walship/db/small2\n"
    );
}

#[test]
fn large_objects_put_segments_then_a_manifest() {
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            auth_ok(n)
        } else {
            reply(201, &[("etag", "\"slo\"")], "")
        }
    });
    let create_only = options(PutMode::CreateOnly);
    let id = store.start_multipart("big", &create_only).unwrap();
    let one = store.put_part("big", &id, 1, b"abc".to_vec()).unwrap();
    let two = store.put_part("big", &id, 2, b"de".to_vec()).unwrap();
    let meta = store
        .complete_multipart("big", &id, &[two, one], &create_only)
        .unwrap();
    assert_eq!((meta.size, meta.etag.as_deref()), (5, Some("slo")));
    let sent = sent.lock().unwrap();
    assert_eq!(
        sent[1].uri().to_string(),
        format!("{STORAGE}/walship/.walship-segments/{id}/00001")
    );
    let manifest = sent.last().unwrap();
    assert_eq!(
        manifest.uri().to_string(),
        format!("{STORAGE}/walship/db/big?multipart-manifest=put")
    );
    assert_eq!(header(manifest, "if-none-match"), Some("*"));
    let body: serde_json::Value = serde_json::from_slice(manifest.body()).unwrap();
    assert_eq!(
        body[0]["path"],
        format!("/walship/.walship-segments/{id}/00001")
    );
    assert_eq!(body[0]["etag"], "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(body[1]["size_bytes"], 2);

    let gap = [PartReceipt {
        number: 2,
        etag: "x".into(),
        size: 1,
    }];
    drop(sent);
    assert!(
        store
            .complete_multipart("big", &id, &gap, &create_only)
            .is_err()
    );
    assert!(matches!(
        store.put_part("big", "../etc", 1, Vec::new()),
        Err(Error::NotFound(_))
    ));
    assert!(store.abort_multipart("big", "not-ours").is_ok());
}

#[test]
fn a_plain_object_refused_by_multipart_delete_is_deleted_plainly() {
    // A listing that does not reach the key makes the plugin treat it as a
    // possible manifest; Swift 2.30's answer for a plain object follows.
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            return auth_ok(n);
        }
        let query = request.uri().query().unwrap_or_default();
        if query.contains("format=json") {
            reply(500, &[], "")
        } else if query.contains("multipart-manifest=delete") {
            reply(
                200,
                &[],
                r#"{"Response Status": "400 Bad Request", "Response Body": "", "Number Deleted": 0,
                    "Number Not Found": 0, "Errors": [["/walship/db/plain%20one", "Not an SLO manifest"]]}"#,
            )
        } else {
            reply(204, &[], "")
        }
    });
    // The listing fails (500): the delete is a transient error as a whole.
    assert!(matches!(
        store.delete(vec!["plain one".into()]),
        Err(Error::Transient(_))
    ));
    drop(sent);
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            return auth_ok(n);
        }
        let query = request.uri().query().unwrap_or_default();
        if query.contains("format=json") {
            reply(
                200,
                &[],
                r#"[{"name": "db/plain one", "bytes": 1, "hash": "h", "slo_etag": "\"x\""}]"#,
            )
        } else if query.contains("multipart-manifest=delete") {
            reply(
                200,
                &[],
                r#"{"Response Status": "400 Bad Request", "Errors": [["/walship/db/plain%20one", "Not an SLO manifest"]]}"#,
            )
        } else {
            reply(204, &[], "")
        }
    });
    let failures = store.delete(vec!["plain one".into()]).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let last = sent.lock().unwrap().last().unwrap().uri().to_string();
    assert_eq!(last, format!("{STORAGE}/walship/db/plain%20one"));
}

#[test]
fn names_a_bulk_delete_could_not_delete_with_a_lapsed_token_are_retried_with_a_new_one() {
    let (store, sent) = v1(|request, n| {
        if is_auth(request) {
            return auth_ok(n);
        }
        let query = request.uri().query().unwrap_or_default();
        if request.uri().path() == "/info" {
            reply(200, &[], r#"{"bulk_delete": {}}"#)
        } else if query.contains("format=json") {
            reply(200, &[], "[]")
        } else if header(request, "x-auth-token") == Some("AUTH_tk0") {
            reply(
                200,
                &[],
                r#"{"Response Status": "400 Bad Request", "Errors": [["/walship/db/b", "401 Unauthorized"]]}"#,
            )
        } else {
            reply(200, &[], r#"{"Response Status": "200 OK", "Errors": []}"#)
        }
    });
    let failures = store.delete(vec!["a".into(), "b".into()]).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let sent = sent.lock().unwrap();
    let posts: Vec<&http::Request<Bytes>> = sent
        .iter()
        .filter(|r| r.method() == http::Method::POST)
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].body().as_ref(), b"/walship/db/b\n");
    assert_eq!(sent.iter().filter(|r| is_auth(r)).count(), 2);
}
