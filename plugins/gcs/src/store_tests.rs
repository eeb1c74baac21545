//! The store against a scripted transport: what goes out for each
//! operation, and how answers come back.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use walship_guest_http::HttpFailure;

use crate::auth;
use crate::auth::tests::MemoryKeep;
use crate::client::Transport;
use crate::store::GcsStore;
use crate::walship::storage::types::{Checksums, Error, ListOptions, PutMode, PutOptions};

#[derive(Clone, Default)]
struct Script {
    sent: Rc<RefCell<Vec<http::Request<Bytes>>>>,
    answers: Rc<RefCell<Vec<(u16, &'static str)>>>,
}

impl Transport for Script {
    fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure> {
        self.sent.borrow_mut().push(request);
        let (status, body) = self.answers.borrow_mut().remove(0);
        Ok(http::Response::builder()
            .status(status)
            .body(Bytes::from(body))
            .unwrap())
    }
}

fn store(config: &[(&str, &str)], secrets: &[(&str, String)], script: &Script) -> GcsStore {
    store_keeping(config, secrets, script, &MemoryKeep::default())
}

/// A store whose token cache is `keep`.
fn store_keeping(
    config: &[(&str, &str)],
    secrets: &[(&str, String)],
    script: &Script,
    keep: &MemoryKeep,
) -> GcsStore {
    let config: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let secrets: Vec<(String, String)> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    GcsStore::open_with(
        "gs://bkt/db1",
        &config,
        &secrets,
        Box::new(script.clone()),
        Box::new(keep.clone()),
    )
    .unwrap()
}

fn emulator(script: &Script) -> GcsStore {
    store(
        &[("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443")],
        &[],
        script,
    )
}

fn create_only() -> PutOptions {
    PutOptions {
        mode: PutMode::CreateOnly,
        checksums: Checksums {
            md5: None,
            sha256: None,
            crc32c: None,
        },
        content_type: None,
    }
}

#[test]
fn a_create_only_put_is_a_multipart_upload_with_generation_match_and_crc32c() {
    let script = Script::default();
    script.answers.borrow_mut().push((
        200,
        r#"{"name":"db1/wal/1","size":"5","generation":"7","crc32c":"mnG7TA=="}"#,
    ));
    let meta = emulator(&script)
        .put("wal/1", b"hello".to_vec(), &create_only())
        .unwrap();
    assert_eq!(meta.size, 5);
    let sent = script.sent.borrow();
    let uri = sent[0].uri().to_string();
    assert!(
        uri.starts_with("http://127.0.0.1:4443/upload/storage/v1/b/bkt/o?uploadType=multipart&ifGenerationMatch=0"),
        "{uri}"
    );
    let body = String::from_utf8_lossy(sent[0].body());
    assert!(body.contains(r#""name":"db1/wal/1""#), "{body}");
    assert!(body.contains(r#""crc32c":"mnG7TA==""#), "{body}");
    assert!(sent[0].headers().get("authorization").is_none());
}

#[test]
fn a_taken_key_is_already_exists_and_a_damaged_upload_is_removed() {
    let script = Script::default();
    script.answers.borrow_mut().extend([
        (
            412,
            r#"{"error":{"code":412,"message":"Precondition failed"}}"#,
        ),
        (
            200,
            r#"{"name":"db1/k","size":"5","generation":"9","crc32c":"AAAAAA=="}"#,
        ),
        (200, "null"),
    ]);
    let store = emulator(&script);
    let err = store
        .put("k", b"hello".to_vec(), &create_only())
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(m) if m.contains("gs://bkt/db1/k")));
    let err = store
        .put("k", b"hello".to_vec(), &create_only())
        .unwrap_err();
    assert!(matches!(err, Error::Transient(m) if m.contains("damaged")));
    let sent = script.sent.borrow();
    assert_eq!(sent[2].method(), http::Method::DELETE);
    assert!(
        sent[2]
            .uri()
            .to_string()
            .ends_with("/o/db1%2Fk?ifGenerationMatch=9")
    );
}

#[test]
fn listings_hide_unfinished_uploads_and_honour_start_after() {
    let script = Script::default();
    script.answers.borrow_mut().push((
        200,
        r#"{"items":[{"name":"db1/.walship-uploads/0123/00001","size":"1"},
                      {"name":"db1/a","size":"1"},{"name":"db1/b","size":"2"}],
            "prefixes":["db1/.walship-uploads/","db1/d/"],"nextPageToken":"db1/c"}"#,
    ));
    let page = emulator(&script)
        .list(&ListOptions {
            prefix: String::new(),
            delimiter: Some("/".into()),
            start_after: Some("a".into()),
            page_token: None,
            max_keys: 0,
        })
        .unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["b"]);
    assert_eq!(page.common_prefixes, ["d/"]);
    assert_eq!(page.next_page_token.as_deref(), Some("db1/c"));
    let uri = script.sent.borrow()[0].uri().to_string();
    assert!(
        uri.contains("prefix=db1%2F&delimiter=%2F&maxResults=1000&startOffset=db1%2Fa"),
        "{uri}"
    );
}

#[test]
fn service_account_requests_carry_a_signed_jwt_and_a_bad_key_file_fails_cleanly() {
    let script = Script::default();
    script
        .answers
        .borrow_mut()
        .push((200, r#"{"name":"db1/k","size":"3"}"#));
    let key_file = auth::tests::key_file(auth::tests::TEST_KEY);
    let good = store(&[], &[(auth::SETTING, key_file)], &script);
    assert_eq!(good.head("k").unwrap().size, 3);
    let sent = script.sent.borrow();
    let bearer = sent[0].headers()["authorization"].to_str().unwrap();
    assert!(bearer.starts_with("Bearer ey") && bearer.matches('.').count() == 2);
    assert!(
        sent[0]
            .uri()
            .to_string()
            .starts_with("https://storage.googleapis.com/storage/v1/b/bkt/o/db1%2Fk")
    );
    drop(sent);

    let broken = store(
        &[],
        &[(auth::SETTING, "{\"uzqf\": 1}".to_string())],
        &script,
    );
    let err = broken.head("k").unwrap_err();
    assert!(
        matches!(err, Error::Unauthenticated(m) if m.contains("GOOGLE_APPLICATION_CREDENTIALS"))
    );
    assert_eq!(
        script.sent.borrow().len(),
        1,
        "nothing sent with a broken key file"
    );
}

/// A token kept by an earlier process is sent as it is; when the service
/// refuses it (401), it is dropped, a new one is signed and the request is
/// sent once more, and the new token is what is kept.
#[test]
fn a_refused_kept_token_is_replaced_once() {
    let script = Script::default();
    let keep = MemoryKeep::default();
    let key_file = auth::tests::key_file(auth::tests::TEST_KEY);
    let stale = "4102444800 eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    keep.0.borrow_mut().replace((
        stale.as_bytes().to_vec(),
        std::time::Duration::from_secs(60),
    ));
    script.answers.borrow_mut().extend([
        (
            401,
            r#"{"error":{"code":401,"message":"Invalid Credentials"}}"#,
        ),
        (200, r#"{"name":"db1/k","size":"3"}"#),
    ]);
    let gcs = store_keeping(&[], &[(auth::SETTING, key_file)], &script, &keep);
    assert_eq!(gcs.head("k").unwrap().size, 3);
    let sent = script.sent.borrow();
    let bearer = |i: usize| {
        sent[i].headers()["authorization"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(sent.len(), 2);
    assert_eq!(
        bearer(0),
        format!("Bearer {}", stale.split_once(' ').unwrap().1)
    );
    assert_ne!(bearer(1), bearer(0));
    let kept = String::from_utf8(keep.0.borrow().clone().unwrap().0).unwrap();
    assert!(
        bearer(1).ends_with(kept.split_once(' ').unwrap().1),
        "the new token is kept"
    );
    drop(sent);

    // A token this process signed itself and the service refuses is a
    // wrong key: no second try.
    script.answers.borrow_mut().push((
        401,
        r#"{"error":{"code":401,"message":"Invalid Credentials"}}"#,
    ));
    assert!(matches!(gcs.head("k"), Err(Error::Unauthenticated(_))));
    assert_eq!(script.sent.borrow().len(), 3);
}

#[test]
fn no_credentials_and_no_emulator_is_a_configuration_error() {
    let err = GcsStore::open_with(
        "gs://bkt",
        &[],
        &[],
        Box::new(Script::default()),
        Box::new(MemoryKeep::default()),
    )
    .err();
    assert!(
        matches!(err, Some(Error::InvalidConfig(m)) if m.contains("GOOGLE_APPLICATION_CREDENTIALS"))
    );
}

#[test]
fn reserved_keys_are_refused() {
    let store = emulator(&Script::default());
    assert!(matches!(
        store.put(".walship-uploads/x", vec![], &create_only()),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn more_than_32_parts_compose_in_a_tree_and_the_final_compose_is_create_only() {
    use crate::walship::storage::types::PartReceipt;
    let script = Script::default();
    script.answers.borrow_mut().extend([
        (200, r#"{"name":"i0","generation":"100"}"#),
        (200, r#"{"name":"i1","generation":"101"}"#),
        (404, r#"{"error":{"code":404,"message":"Not Found"}}"#),
        (200, r#"{"name":"db1/big","size":"33","generation":"102"}"#),
        (200, r#"{"items":[]}"#),
    ]);
    let store = emulator(&script);
    let id = store.start_multipart("big", &create_only()).unwrap();
    let parts: Vec<PartReceipt> = (1..=33)
        .map(|n| PartReceipt {
            number: n,
            etag: format!("{n}:{}", crate::store::encode_crc32c(crc32c::crc32c(b"x"))),
            size: 1,
        })
        .collect();
    let meta = store
        .complete_multipart("big", &id, &parts, &create_only())
        .unwrap();
    assert_eq!(meta.size, 33);
    let sent = script.sent.borrow();
    let uris: Vec<String> = sent.iter().map(|r| r.uri().to_string()).collect();
    let uploads = format!("db1%2F.walship-uploads%2F{id}%2F");
    assert!(
        uris[0].contains(&format!("/o/{uploads}c0-00000/compose?fields")),
        "{}",
        uris[0]
    );
    assert!(
        uris[1].contains(&format!("/o/{uploads}c0-00001/compose?fields")),
        "{}",
        uris[1]
    );
    assert_eq!(
        sent[2].method(),
        http::Method::GET,
        "a look before the create-only compose"
    );
    assert!(
        uris[3].contains("/o/db1%2Fbig/compose?ifGenerationMatch=0"),
        "{}",
        uris[3]
    );
    let first = String::from_utf8_lossy(sent[0].body());
    assert_eq!(first.matches("\"generation\"").count(), 32, "{first}");
    assert!(
        first.contains(&format!(r#""name":"db1/.walship-uploads/{id}/00001""#)),
        "{first}"
    );
    let last = String::from_utf8_lossy(sent[3].body());
    assert!(last.contains(r#""generation":"100""#) && last.contains(r#""generation":"101""#));
    assert!(
        uris[4].contains(&format!("prefix={uploads}")),
        "{}",
        uris[4]
    );
}

#[test]
fn aborting_an_upload_this_plugin_never_issued_is_ok() {
    let script = Script::default();
    let store = emulator(&script);
    assert_eq!(store.abort_multipart("k", "../../etc"), Ok(()));
    assert!(script.sent.borrow().is_empty());
    assert!(matches!(
        store.put_part("k", "../../etc", 1, vec![1]),
        Err(Error::NotFound(_))
    ));
}

/// Fails the first request with a broken connection, then answers.
struct ResetOnce {
    inner: Script,
    failed: RefCell<bool>,
}

impl Transport for ResetOnce {
    fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure> {
        if !self.failed.replace(true) {
            self.inner.sent.borrow_mut().push(request);
            return Err(HttpFailure::new(
                walship_guest_http::FailureKind::Interrupted,
                "127.0.0.1:4443",
                "connection reset",
            ));
        }
        self.inner.send(request)
    }
}

#[test]
fn a_read_on_a_connection_that_broke_is_sent_once_more_but_an_upload_is_not() {
    let script = Script::default();
    script
        .answers
        .borrow_mut()
        .push((200, r#"{"name":"db1/k","size":"3"}"#));
    let config = [(
        "STORAGE_EMULATOR_HOST".to_string(),
        "http://127.0.0.1:4443".to_string(),
    )];
    let open = |script: &Script| {
        let transport = ResetOnce {
            inner: script.clone(),
            failed: RefCell::new(false),
        };
        GcsStore::open_with(
            "gs://bkt/db1",
            &config,
            &[],
            Box::new(transport),
            Box::new(MemoryKeep::default()),
        )
        .unwrap()
    };
    assert_eq!(open(&script).head("k").unwrap().size, 3);
    assert_eq!(script.sent.borrow().len(), 2);

    let script = Script::default();
    let err = open(&script)
        .put("k", b"abc".to_vec(), &create_only())
        .unwrap_err();
    assert!(matches!(err, Error::Transient(m) if m.contains("connection reset")));
    assert_eq!(
        script.sent.borrow().len(),
        1,
        "an upload is the host's to retry"
    );
}
