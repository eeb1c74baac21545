//! The store's operations against a scripted S3: what object_store sends
//! (URLs, headers) and how the plugin reads the answers.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use walship_guest_http::HttpHooks;

use crate::config::Settings;
use crate::endpoints;
use crate::hooks::S3Hooks;
use crate::store::S3Store;
use crate::walship::storage::types::{
    ByteRange, Checksums, Endpoint, Error, Features, ListOptions, PartReceipt, PutMode, PutOptions,
};

type Responder = dyn Fn(&http::Request<Bytes>) -> http::Response<Bytes> + Send + Sync;

/// An S3 that answers from a script and records what it was sent, passing
/// every exchange through the hooks as the real connector does.
#[derive(Clone)]
struct Scripted {
    hooks: Arc<S3Hooks>,
    respond: Arc<Responder>,
    sent: Arc<Mutex<Vec<http::Request<Bytes>>>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

impl HttpConnector for Scripted {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.clone()))
    }
}

#[async_trait]
impl HttpService for Scripted {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let mut request = http::Request::from_parts(parts, body.collect().await?.to_bytes());
        self.hooks.before_send(&mut request);
        let response = (self.respond)(&request);
        self.hooks
            .after_receive(request.method(), request.uri(), &response);
        self.sent.lock().unwrap().push(request);
        Ok(response.map(HttpResponseBody::from))
    }
}

const KEY_ID: &str = "AKIAEXAMPLE";
const SECRET: &str = "secret/key/never/shown";

struct Harness {
    store: S3Store,
    sent: Arc<Mutex<Vec<http::Request<Bytes>>>>,
    /// What `plan` granted for this configuration.
    grant: Endpoint,
}

impl Harness {
    fn new(
        prefix: &str,
        config: &[(&str, &str)],
        respond: impl Fn(&http::Request<Bytes>) -> http::Response<Bytes> + Send + Sync + 'static,
    ) -> Harness {
        let mut pairs: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.push(("AWS_ACCESS_KEY_ID".into(), KEY_ID.into()));
        let secrets = vec![("AWS_SECRET_ACCESS_KEY".to_string(), SECRET.to_string())];
        let hooks = Arc::new(S3Hooks::default());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let connector = Scripted {
            hooks: Arc::clone(&hooks),
            respond: Arc::new(respond),
            sent: Arc::clone(&sent),
        };
        let store = S3Store::open_with(prefix, &pairs, &secrets, hooks, connector).unwrap();
        let mut grants = endpoints::grants(&Settings::parse(prefix, &pairs).unwrap()).endpoints;
        assert_eq!(grants.len(), 1);
        Harness {
            store,
            sent,
            grant: grants.remove(0),
        }
    }

    /// What was sent so far, each request checked against the grant: the
    /// host would deny a request anywhere else.
    fn requests(&self) -> Vec<http::Request<Bytes>> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .map(|request| {
                let uri = request.uri();
                let grant = &self.grant;
                assert_eq!(uri.scheme_str(), Some(grant.scheme.as_str()), "{uri}");
                assert_eq!(uri.host(), Some(grant.host.as_str()), "{uri}");
                let default_port = if grant.scheme == "http" { 80 } else { 443 };
                assert_eq!(uri.port_u16().unwrap_or(default_port), grant.port, "{uri}");
                let mut copy = http::Request::new(request.body().clone());
                *copy.method_mut() = request.method().clone();
                *copy.uri_mut() = uri.clone();
                *copy.headers_mut() = request.headers().clone();
                copy
            })
            .collect()
    }

    fn last(&self) -> http::Request<Bytes> {
        self.requests().pop().expect("a request was sent")
    }
}

fn reply(status: u16, body: &str) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header("content-length", body.len())
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn s3_error(status: u16, code: &str) -> http::Response<Bytes> {
    reply(
        status,
        &format!("<Error><Code>{code}</Code><Message>{code} happened</Message></Error>"),
    )
}

fn found(size: usize) -> http::Response<Bytes> {
    http::Response::builder()
        .status(200)
        .header("content-length", size)
        .header("etag", "\"abc\"")
        .header("last-modified", "Wed, 01 Jan 2025 00:00:00 GMT")
        .body(Bytes::new())
        .unwrap()
}

fn put_options(mode: PutMode) -> PutOptions {
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
fn urls_match_the_plan_virtual_hosted_on_aws() {
    let h = Harness::new("s3://archive/db1", &[("AWS_REGION", "eu-west-1")], |_| {
        found(0)
    });
    h.store.head("wal/1").unwrap();
    let request = h.last();
    assert_eq!(request.method(), http::Method::HEAD);
    assert_eq!(
        request.uri().to_string(),
        "https://archive.s3.eu-west-1.amazonaws.com/db1/wal/1"
    );
}

#[test]
fn urls_match_the_plan_path_style_with_a_port() {
    let h = Harness::new(
        "s3://archive/db1",
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:19150")],
        |_| found(0),
    );
    h.store.head("wal/1").unwrap();
    assert_eq!(
        h.last().uri().to_string(),
        "http://127.0.0.1:19150/archive/db1/wal/1"
    );
}

#[test]
fn urls_match_the_plan_virtual_hosted_custom_endpoint() {
    let h = Harness::new(
        "s3://archive",
        &[("AWS_ENDPOINT", "https://minio.internal:9000")],
        |_| found(0),
    );
    h.store.head("wal/1").unwrap();
    assert_eq!(
        h.last().uri().to_string(),
        "https://archive.minio.internal:9000/wal/1"
    );
}

/// The host's SHA-256 of the body (computed natively) is what goes out as
/// the checksum and the signed payload hash: not hashed again in wasm. A
/// made-up value shows which one was used; a real store would refuse it.
#[test]
fn a_put_uses_the_hosts_sha256_of_the_body() {
    let h = Harness::new("s3://archive/db1", &[], |_| {
        http::Response::builder()
            .status(200)
            .header("etag", "\"e1\"")
            .body(Bytes::new())
            .unwrap()
    });
    let mut options = put_options(PutMode::CreateOnly);
    options.checksums.sha256 = Some(vec![0xab; 32]);
    h.store.put("wal/1", b"abc".to_vec(), &options).unwrap();
    let request = h.last();
    let header = |name: &str| request.headers()[name].to_str().unwrap().to_string();
    assert_eq!(
        header("x-amz-checksum-sha256"),
        "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
    );
    assert_eq!(header("x-amz-content-sha256"), "ab".repeat(32));

    // Without one, the plugin hashes the body itself.
    h.store
        .put("wal/2", b"abc".to_vec(), &put_options(PutMode::CreateOnly))
        .unwrap();
    assert_eq!(
        h.last().headers()["x-amz-checksum-sha256"],
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
}

#[test]
fn create_only_put_sends_if_none_match_and_checksums() {
    let h = Harness::new(
        "s3://archive/db1",
        &[
            ("WALG_S3_STORAGE_CLASS", "STANDARD_IA"),
            ("WALG_S3_SSE", "aws:kms"),
            ("WALG_S3_SSE_KMS_ID", "arn:aws:kms:eu-west-1:1:key/k"),
        ],
        |_| {
            http::Response::builder()
                .status(200)
                .header("etag", "\"e1\"")
                .body(Bytes::new())
                .unwrap()
        },
    );
    let meta = h
        .store
        .put("wal/1", b"abc".to_vec(), &put_options(PutMode::CreateOnly))
        .unwrap();
    assert_eq!(meta.size, 3);
    assert_eq!(meta.etag.as_deref(), Some("\"e1\""));
    let request = h.last();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(request.method(), http::Method::PUT);
    assert_eq!(header("if-none-match").as_deref(), Some("*"));
    // sha256("abc"), base64 and hex.
    assert_eq!(
        header("x-amz-checksum-sha256").as_deref(),
        Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
    );
    assert_eq!(
        header("x-amz-content-sha256").as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        "the payload is signed, not UNSIGNED-PAYLOAD"
    );
    assert_eq!(
        header("x-amz-storage-class").as_deref(),
        Some("STANDARD_IA")
    );
    assert_eq!(
        header("x-amz-server-side-encryption").as_deref(),
        Some("aws:kms")
    );
    assert_eq!(
        header("x-amz-server-side-encryption-aws-kms-key-id").as_deref(),
        Some("arn:aws:kms:eu-west-1:1:key/k")
    );
    let authorization = header("authorization").unwrap();
    assert!(authorization.contains(KEY_ID), "{authorization}");
    assert!(!authorization.contains(SECRET));
    assert_eq!(request.body().as_ref(), b"abc");
}

#[test]
fn overwrite_put_has_no_condition() {
    let h = Harness::new("s3://archive", &[], |_| found(0));
    h.store
        .put("k", b"x".to_vec(), &put_options(PutMode::Overwrite))
        .unwrap();
    assert!(!h.last().headers().contains_key("if-none-match"));
}

#[test]
fn create_only_put_of_an_existing_key() {
    let h = Harness::new("s3://archive/db1", &[], |_| {
        s3_error(412, "PreconditionFailed")
    });
    let err = h
        .store
        .put("wal/1", b"abc".to_vec(), &put_options(PutMode::CreateOnly))
        .unwrap_err();
    assert_eq!(
        err,
        Error::AlreadyExists("s3://archive/db1/wal/1 already exists".into())
    );
}

#[test]
fn wrong_secret_and_unknown_key_are_named() {
    let h = Harness::new("s3://archive", &[], |_| {
        s3_error(403, "SignatureDoesNotMatch")
    });
    let err = h.store.get("k", None).unwrap_err();
    assert_eq!(
        err,
        Error::Unauthenticated(format!(
            "the secret key does not match access key id {KEY_ID} (check AWS_SECRET_ACCESS_KEY)"
        ))
    );
    let h = Harness::new("s3://archive", &[], |_| s3_error(403, "InvalidAccessKeyId"));
    let err = h
        .store
        .put("k", vec![1], &put_options(PutMode::Overwrite))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated(m) if m.starts_with(&format!("access key id {KEY_ID} is not known to https://archive.s3.us-east-1.amazonaws.com:443"))),
        "{err:?}"
    );
}

#[test]
fn head_403_is_explained_by_a_probe() {
    let h = Harness::new("s3://archive", &[], |request| {
        if request.method() == http::Method::HEAD {
            reply(403, "")
        } else {
            s3_error(403, "SignatureDoesNotMatch")
        }
    });
    let err = h.store.head("k").unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");
    let requests = h.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].headers()["range"], "bytes=0-0");
}

#[test]
fn missing_objects_and_buckets() {
    let h = Harness::new("s3://archive", &[], |_| reply(404, ""));
    assert!(
        matches!(h.store.head("k"), Err(Error::NotFound(m)) if m == "s3://archive/k not found")
    );
    let h = Harness::new("s3://archive", &[], |_| s3_error(404, "NoSuchBucket"));
    assert!(
        matches!(h.store.get("k", None), Err(Error::InvalidConfig(m)) if m.contains("bucket archive does not exist"))
    );
}

#[test]
fn ranges() {
    let h = Harness::new("s3://archive", &[], |request| {
        match request.headers().get("range").map(|v| v.to_str().unwrap()) {
            Some(range) if range.starts_with("bytes=2-") => http::Response::builder()
                .status(206)
                .header("content-range", "bytes 2-4/5")
                .header("content-length", 3)
                .body(Bytes::from_static(b"cde"))
                .unwrap(),
            Some(_) => s3_error(416, "InvalidRange"),
            None if request.method() == http::Method::HEAD => found(5),
            None => reply(200, "abcde"),
        }
    });
    let whole = h.store.get("k", None).unwrap();
    assert_eq!(whole.data, b"abcde");
    let range = |offset, length| Some(ByteRange { offset, length });
    let part = h.store.get("k", range(2, Some(3))).unwrap();
    assert_eq!((part.data.as_slice(), part.meta.size), (&b"cde"[..], 5));
    // Past the end: what exists.
    assert_eq!(h.store.get("k", range(2, Some(100))).unwrap().data, b"cde");
    assert_eq!(h.store.get("k", range(2, None)).unwrap().data, b"cde");
    let beyond = h.store.get("k", range(5, None)).unwrap();
    assert_eq!((beyond.data.len(), beyond.meta.size), (0, 5));
    let empty = h.store.get("k", range(1, Some(0))).unwrap();
    assert_eq!((empty.data.len(), empty.meta.size), (0, 5));
}

#[test]
fn listing_is_relative_to_the_store_path() {
    let h = Harness::new("s3://archive/db1", &[], |_| {
        reply(
            200,
            r#"<ListBucketResult>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>db1/wal/a</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>"e"</ETag><Size>7</Size></Contents>
  <CommonPrefixes><Prefix>db1/wal/x/</Prefix></CommonPrefixes>
  <NextContinuationToken>next-1</NextContinuationToken>
</ListBucketResult>"#,
        )
    });
    let page = h
        .store
        .list(&ListOptions {
            prefix: "wal/".into(),
            delimiter: Some("/".into()),
            start_after: Some("wal/0".into()),
            page_token: None,
            max_keys: 5000,
        })
        .unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].key, "wal/a");
    assert_eq!(page.objects[0].size, 7);
    assert_eq!(page.objects[0].last_modified_ms, Some(1_735_689_600_000));
    assert_eq!(page.common_prefixes, vec!["wal/x/".to_string()]);
    assert_eq!(page.next_page_token.as_deref(), Some("next-1"));
    let query = h.last().uri().query().unwrap().to_string();
    for part in [
        "prefix=db1%2Fwal%2F",
        "delimiter=%2F",
        "start-after=db1%2Fwal%2F0",
        "max-keys=1000",
        "list-type=2",
    ] {
        assert!(query.contains(part), "{part} not in {query}");
    }
}

#[test]
fn batch_delete_reports_failed_keys_only() {
    let h = Harness::new("s3://archive/db1", &[], |_| {
        reply(
            200,
            r#"<DeleteResult>
  <Deleted><Key>db1/a</Key></Deleted>
  <Error><Key>db1/b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
  <Deleted><Key>db1/c</Key></Deleted>
</DeleteResult>"#,
        )
    });
    let failures = h
        .store
        .delete(vec!["a".into(), "b".into(), "c".into()])
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].key, "b");
    assert!(
        matches!(&failures[0].error, Error::PermissionDenied(m) if m.contains("delete s3://archive/db1/b"))
    );
    let request = h.last();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri().query(), Some("delete"));
    assert!(request.headers().contains_key("content-md5"));
}

#[test]
fn a_failed_batch_delete_request_is_one_error() {
    let h = Harness::new("s3://archive", &[], |_| s3_error(503, "SlowDown"));
    let err = h.store.delete(vec!["a".into(), "b".into()]).unwrap_err();
    assert!(
        matches!(&err, Error::Throttled(t) if t.message.contains("batch of 2")),
        "{err:?}"
    );
}

#[test]
fn create_only_complete_sends_if_none_match() {
    let h = Harness::new("s3://archive", &[], |request| {
        if request.headers().contains_key("if-none-match") {
            s3_error(412, "PreconditionFailed")
        } else {
            reply(
                200,
                "<CompleteMultipartUploadResult><ETag>\"m-2\"</ETag></CompleteMultipartUploadResult>",
            )
        }
    });
    let parts = vec![
        PartReceipt {
            number: 2,
            etag: "\"p2\"".into(),
            size: 5,
        },
        PartReceipt {
            number: 1,
            etag: "\"p1\"".into(),
            size: 10,
        },
    ];
    let meta = h
        .store
        .complete_multipart("k", "up-1", &parts, &put_options(PutMode::Overwrite))
        .unwrap();
    assert_eq!((meta.size, meta.etag.as_deref()), (15, Some("\"m-2\"")));
    let body = String::from_utf8(h.last().body().to_vec()).unwrap();
    assert!(
        body.find("p1").unwrap() < body.find("p2").unwrap(),
        "{body}"
    );

    let err = h
        .store
        .complete_multipart("k", "up-1", &parts, &put_options(PutMode::CreateOnly))
        .unwrap_err();
    assert_eq!(
        err,
        Error::AlreadyExists("s3://archive/k already exists".into())
    );
    let request = h.last();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri().query(), Some("uploadId=up-1"));
    // And only that request: the flag is cleared.
    h.store
        .complete_multipart("k", "up-1", &parts, &put_options(PutMode::Overwrite))
        .unwrap();
}

#[test]
fn parts_must_be_numbered_without_gaps() {
    let h = Harness::new("s3://archive", &[], |_| reply(200, ""));
    let part = |number| PartReceipt {
        number,
        etag: "e".into(),
        size: 1,
    };
    let err = h
        .store
        .complete_multipart(
            "k",
            "u",
            &[part(1), part(3)],
            &put_options(PutMode::Overwrite),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Other(m) if m.contains("part 2 is missing")));
    assert!(h.requests().is_empty());
}

#[test]
fn parts_and_aborts() {
    let h = Harness::new("s3://archive", &[], |request| {
        match request.method().as_str() {
            "PUT" => http::Response::builder()
                .status(200)
                .header("etag", "\"p7\"")
                .body(Bytes::new())
                .unwrap(),
            _ => s3_error(404, "NoSuchUpload"),
        }
    });
    let receipt = h.store.put_part("k", "up-1", 7, vec![0; 4]).unwrap();
    assert_eq!((receipt.number, receipt.size), (7, 4));
    assert!(receipt.etag.contains("p7"), "{}", receipt.etag);
    let query = h.last().uri().query().unwrap().to_string();
    assert!(
        query.contains("partNumber=7") && query.contains("uploadId=up-1"),
        "{query}"
    );
    assert!(h.last().headers().contains_key("x-amz-checksum-sha256"));
    // Aborting what S3 no longer knows is fine.
    h.store.abort_multipart("k", "up-1").unwrap();
    assert!(h.store.put_part("k", "up-1", 0, vec![1]).is_err());
}

#[test]
fn features_follow_if_none_match() {
    let aws = Harness::new("s3://archive", &[], |_| reply(200, ""));
    assert!(aws.store.features().contains(Features::ATOMIC_CREATE_ONLY));
    let custom = Harness::new(
        "s3://archive",
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")],
        |_| reply(200, ""),
    );
    let features = custom.store.features();
    assert!(!features.contains(Features::ATOMIC_CREATE_ONLY));
    assert!(features.contains(Features::CREATE_ONLY | Features::BATCH_DELETE));
}

#[test]
fn ranges_from_a_store_that_ignores_them() {
    let h = Harness::new("s3://archive", &[], |_| reply(200, "abcde"));
    let range = |offset, length| Some(ByteRange { offset, length });
    assert_eq!(h.store.get("k", range(1, Some(2))).unwrap().data, b"bc");
    assert_eq!(h.store.get("k", range(3, None)).unwrap().data, b"de");
    assert_eq!(h.store.get("k", range(9, Some(2))).unwrap().data, b"");
}
