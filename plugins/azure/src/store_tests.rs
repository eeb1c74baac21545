//! The store against a fake Azure: what each operation sends (signed, with
//! the checksum and conditions walship relies on) and how answers map to the
//! contract. Natively, with no network: every exchange, object_store's and
//! the plugin's own, goes through one recorded fake.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use md5::{Digest, Md5};
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use walship_guest_http::HttpHooks;

use crate::hooks::AzureHooks;
use crate::store::{AzureStore, Transport};
use crate::walship::storage::types::{
    ByteRange, Checksums, Error, PartReceipt, PutMode, PutOptions,
};

const KEY: &str = "a2V5LWJ5dGVzLWZvci10ZXN0cw==";
const ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

type Answer = Box<dyn Fn(&http::Request<Bytes>) -> http::Response<Bytes> + Send + Sync>;

/// Records every request and answers with `answer`.
struct Fake {
    sent: Mutex<Vec<http::Request<Bytes>>>,
    answer: Answer,
}

impl Fake {
    fn new(
        answer: impl Fn(&http::Request<Bytes>) -> http::Response<Bytes> + Send + Sync + 'static,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            sent: Mutex::new(Vec::new()),
            answer: Box::new(answer),
        })
    }

    fn exchange(&self, request: http::Request<Bytes>) -> http::Response<Bytes> {
        let response = (self.answer)(&request);
        self.sent.lock().unwrap().push(request);
        response
    }

    fn sent(&self) -> Vec<http::Request<Bytes>> {
        self.sent.lock().unwrap().clone()
    }
}

/// object_store's side of the fake, passing answers through the hooks as
/// walship-guest-http's connector does.
#[derive(Clone)]
struct Connector {
    fake: Arc<Fake>,
    hooks: Arc<AzureHooks>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake connector")
    }
}

impl HttpConnector for Connector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.clone()))
    }
}

#[async_trait]
impl HttpService for Connector {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let body = body.as_bytes().cloned().unwrap_or_default();
        let request = http::Request::from_parts(parts, body);
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let response = self.fake.exchange(request);
        self.hooks.after_receive(&method, &uri, &response);
        Ok(response.map(HttpResponseBody::from))
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open_with(secrets: &[(&str, &str)], fake: &Arc<Fake>) -> AzureStore {
    let hooks = Arc::new(AzureHooks::default());
    let connector = Connector {
        fake: Arc::clone(fake),
        hooks: Arc::clone(&hooks),
    };
    let direct = Arc::clone(fake);
    let transport: Transport = Arc::new(move |request| Ok(direct.exchange(request)));
    AzureStore::open_with(
        "azure://walship/db1",
        &pairs(&[
            ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"),
            ("AZURE_STORAGE_SERVICE_ENDPOINT", ENDPOINT),
        ]),
        &pairs(secrets),
        hooks,
        connector,
        transport,
    )
    .unwrap_or_else(|e| panic!("open: {e:?}"))
}

fn open(fake: &Arc<Fake>) -> AzureStore {
    open_with(&[("AZURE_STORAGE_ACCESS_KEY", KEY)], fake)
}

fn response(status: u16, code: Option<&str>, body: &str) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(status);
    if let Some(code) = code {
        builder = builder.header("x-ms-error-code", code);
    }
    builder.body(Bytes::from(body.to_string())).unwrap()
}

fn created() -> http::Response<Bytes> {
    http::Response::builder()
        .status(201)
        .header("etag", "\"0x8D\"")
        .body(Bytes::new())
        .unwrap()
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

fn header<'r>(request: &'r http::Request<Bytes>, name: &str) -> Option<&'r str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn query(request: &http::Request<Bytes>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn md5_b64(data: &[u8]) -> String {
    BASE64_STANDARD.encode(Md5::digest(data))
}

#[test]
fn a_create_only_put_is_one_signed_put_blob_with_md5_and_if_none_match() {
    let fake = Fake::new(|_| created());
    let store = open(&fake);
    let meta = store
        .put(
            "wal/0001",
            b"segment".to_vec(),
            &options(PutMode::CreateOnly),
        )
        .unwrap();
    assert_eq!(meta.size, 7);
    assert_eq!(meta.etag.as_deref(), Some("\"0x8D\""));
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    let put = &sent[0];
    assert_eq!(put.method(), http::Method::PUT);
    assert_eq!(
        put.uri().to_string(),
        format!("{ENDPOINT}/walship/db1/wal/0001")
    );
    assert_eq!(header(put, "x-ms-blob-type"), Some("BlockBlob"));
    assert_eq!(
        header(put, "content-md5"),
        Some(md5_b64(b"segment").as_str())
    );
    assert_eq!(header(put, "if-none-match"), Some("*"));
    assert_eq!(header(put, "content-length"), Some("7"));
    assert!(
        header(put, "authorization").is_some_and(|a| a.starts_with("SharedKey devstoreaccount1:")),
        "{put:?}"
    );
    assert!(header(put, "x-ms-version").is_some() && header(put, "date").is_some());
    assert_eq!(put.body().as_ref(), b"segment");

    // An overwrite sends no condition.
    store
        .put("wal/0001", b"x".to_vec(), &options(PutMode::Overwrite))
        .unwrap();
    assert_eq!(header(&fake.sent()[1], "if-none-match"), None);
}

#[test]
fn the_hosts_md5_is_sent_when_given() {
    let fake = Fake::new(|_| created());
    let store = open(&fake);
    let mut options = options(PutMode::Overwrite);
    let host_md5 = Md5::digest(b"as the host saw it").to_vec();
    options.checksums.md5 = Some(host_md5.clone());
    store.put("k", b"data".to_vec(), &options).unwrap();
    assert_eq!(
        header(&fake.sent()[0], "content-md5"),
        Some(BASE64_STANDARD.encode(&host_md5).as_str())
    );
}

#[test]
fn a_taken_key_is_already_exists() {
    let fake = Fake::new(|_| response(409, Some("BlobAlreadyExists"), ""));
    let store = open(&fake);
    let err = store
        .put("wal/0001", b"x".to_vec(), &options(PutMode::CreateOnly))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
}

#[test]
fn sas_tokens_go_in_the_query_not_a_header() {
    let fake = Fake::new(|_| created());
    let store = open_with(
        &[(
            "AZURE_STORAGE_SAS_TOKEN",
            "?sv=2019-12-12&sp=rwl&sig=c2ln%2B",
        )],
        &fake,
    );
    store
        .put("k", b"x".to_vec(), &options(PutMode::Overwrite))
        .unwrap();
    let put = &fake.sent()[0];
    assert_eq!(header(put, "authorization"), None);
    let q = query(put);
    assert!(q.contains(&("sig".into(), "c2ln+".into())), "{q:?}");
    assert!(q.contains(&("sp".into(), "rwl".into())), "{q:?}");
}

#[test]
fn parts_are_blocks_whose_ids_any_instance_derives() {
    let fake = Fake::new(|_| created());
    let store = open(&fake);
    let id = store
        .start_multipart("big", &options(PutMode::CreateOnly))
        .unwrap();
    assert!(fake.sent().is_empty(), "starting an upload sends nothing");

    // Two parts through two stores (two plugin instances).
    let other = open(&fake);
    let two = other.put_part("big", &id, 2, b"second".to_vec()).unwrap();
    let one = store.put_part("big", &id, 1, b"first".to_vec()).unwrap();
    let sent = fake.sent();
    let block_of = |request: &http::Request<Bytes>| {
        let q = query(request);
        assert!(q.contains(&("comp".into(), "block".into())), "{q:?}");
        q.into_iter().find(|(k, _)| k == "blockid").unwrap().1
    };
    assert_eq!(block_of(&sent[0]), two.etag);
    assert_eq!(block_of(&sent[1]), one.etag);
    assert_eq!(
        header(&sent[1], "content-md5"),
        Some(md5_b64(b"first").as_str())
    );
    assert_eq!(one.etag.len(), two.etag.len());

    let meta = store
        .complete_multipart("big", &id, &[two, one], &options(PutMode::CreateOnly))
        .unwrap();
    assert_eq!(meta.size, 11);
    let commit = &fake.sent()[2];
    assert!(query(commit).contains(&("comp".into(), "blocklist".into())));
    assert_eq!(header(commit, "if-none-match"), Some("*"));
    let body = std::str::from_utf8(commit.body()).unwrap();
    let first = body.find("<Latest>").unwrap();
    assert!(
        body[first..].starts_with(&format!("<Latest>{}</Latest>", block_of(&fake.sent()[1]))),
        "{body}"
    );
    assert_eq!(
        header(commit, "content-md5"),
        Some(md5_b64(commit.body()).as_str())
    );
}

#[test]
fn a_commit_needs_every_part_of_this_upload() {
    let fake = Fake::new(|_| created());
    let store = open(&fake);
    let id = store
        .start_multipart("big", &options(PutMode::Overwrite))
        .unwrap();
    let other_id = store
        .start_multipart("big", &options(PutMode::Overwrite))
        .unwrap();
    let receipt = |number, etag: &str| PartReceipt {
        number,
        etag: etag.to_string(),
        size: 1,
    };
    let one = store.put_part("big", &id, 1, b"a".to_vec()).unwrap();
    let foreign = store.put_part("big", &other_id, 2, b"b".to_vec()).unwrap();
    let gap = store.complete_multipart(
        "big",
        &id,
        &[receipt(1, &one.etag), receipt(3, "x")],
        &options(PutMode::Overwrite),
    );
    assert!(matches!(gap, Err(Error::Other(_))), "{gap:?}");
    let mixed = store.complete_multipart("big", &id, &[one, foreign], &options(PutMode::Overwrite));
    assert!(matches!(mixed, Err(Error::NotFound(_))), "{mixed:?}");
    let unknown = store.put_part("big", "nonsense", 1, b"a".to_vec());
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    assert!(store.abort_multipart("big", &id).is_ok());
}

#[test]
fn head_and_get_map_azures_codes() {
    let fake = Fake::new(|request| {
        if request.uri().path().ends_with("/missing") {
            response(404, Some("BlobNotFound"), "")
        } else {
            response(404, Some("ContainerNotFound"), "")
        }
    });
    let store = open(&fake);
    assert!(matches!(store.head("missing"), Err(Error::NotFound(_))));
    assert!(matches!(
        store.get("missing", None),
        Err(Error::NotFound(_))
    ));
    let err = store.head("other").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("container walship")),
        "{err:?}"
    );
}

#[test]
fn a_bodiless_403_to_head_is_explained_by_a_one_byte_get() {
    // Azurite answers a wrong key with 403 AuthorizationFailure either way;
    // only the GET's body says it is authentication.
    let fake = Fake::new(|request| {
        if request.method() == http::Method::HEAD {
            response(403, Some("AuthorizationFailure"), "")
        } else {
            response(
                403,
                Some("AuthorizationFailure"),
                "<?xml version=\"1.0\"?><Error><Code>AuthorizationFailure</Code><Message>Server \
                 failed to authenticate the request. Make sure the value of the Authorization \
                 header is formed correctly including the signature.\nRequestId:1</Message></Error>",
            )
        }
    });
    let store = open(&fake);
    let err = store.head("wal/0001").unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated(m) if m.contains("AZURE_STORAGE_ACCESS_KEY")),
        "{err:?}"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(header(&sent[1], "range"), Some("bytes=0-0"));
}

#[test]
fn ranges_past_the_end_are_empty() {
    let fake = Fake::new(|request| {
        if request.method() == http::Method::HEAD {
            http::Response::builder()
                .status(200)
                .header("content-length", "10")
                .header("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT")
                .header("etag", "\"e\"")
                .body(Bytes::new())
                .unwrap()
        } else {
            response(416, Some("InvalidRange"), "")
        }
    });
    let store = open(&fake);
    let got = store
        .get(
            "k",
            Some(ByteRange {
                offset: 20,
                length: Some(5),
            }),
        )
        .unwrap();
    assert!(got.data.is_empty());
    assert_eq!(got.meta.size, 10);
}

#[test]
fn deletes_ignore_missing_blobs_but_not_refusals() {
    let fake = Fake::new(|request| {
        if request.uri().path().ends_with("/gone") {
            response(404, Some("BlobNotFound"), "")
        } else if request.uri().path().ends_with("/locked") {
            response(412, Some("LeaseIdMissing"), "")
        } else {
            response(202, None, "")
        }
    });
    let store = open(&fake);
    let failures = store
        .delete(vec!["a".into(), "gone".into(), "locked".into()])
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].key, "locked");
    let sent = fake.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.method() == http::Method::DELETE));
    assert_eq!(header(&sent[0], "x-ms-delete-snapshots"), Some("include"));

    let refused = Fake::new(|_| response(403, Some("AuthorizationPermissionMismatch"), ""));
    let store = open(&refused);
    let err = store.delete(vec!["a".into(), "b".into()]).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
    assert_eq!(refused.sent().len(), 1, "stops at the first refusal");
}

#[test]
fn listing_pages_with_markers() {
    let fake = Fake::new(|request| {
        let q = query(request);
        let marker = q
            .iter()
            .find(|(k, _)| k == "marker")
            .map(|(_, v)| v.as_str());
        let (name, next) = match marker {
            None => ("db1/wal/a", "<NextMarker>m2</NextMarker>"),
            Some("m2") => ("db1/wal/b", "<NextMarker/>"),
            Some(other) => panic!("marker {other}"),
        };
        http::Response::builder()
            .status(200)
            .body(Bytes::from(format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults \
                 ContainerName=\"walship\"><Prefix>db1/wal/</Prefix><MaxResults>1</MaxResults>\
                 <Blobs><Blob><Name>{name}</Name><Properties><Last-Modified>Tue, 01 Dec 2026 \
                 10:00:00 GMT</Last-Modified><Etag>0x1</Etag><Content-Length>3</Content-Length>\
                 <Content-Type>application/octet-stream</Content-Type></Properties></Blob></Blobs>\
                 {next}</EnumerationResults>"
            )))
            .unwrap()
    });
    let store = open(&fake);
    let options = |token: Option<String>| crate::walship::storage::types::ListOptions {
        prefix: "wal/".into(),
        delimiter: None,
        start_after: None,
        page_token: token,
        max_keys: 1,
    };
    let first = store.list(&options(None)).unwrap();
    assert_eq!(first.objects[0].key, "wal/a");
    assert_eq!(first.next_page_token.as_deref(), Some("m2"));
    let second = store.list(&options(first.next_page_token)).unwrap();
    assert_eq!(second.objects[0].key, "wal/b");
    assert_eq!(second.objects[0].size, 3);
    assert_eq!(second.next_page_token, None);
    let q = query(&fake.sent()[0]);
    assert!(q.contains(&("prefix".into(), "db1/wal/".into())), "{q:?}");
    assert!(q.contains(&("maxresults".into(), "1".into())), "{q:?}");
}
