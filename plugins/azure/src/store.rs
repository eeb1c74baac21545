//! An open store: the object_store client for reads, the signed requests for
//! writes, and how each operation is run and its failure explained.
//!
//! Reads (head, ranged get, list) go through object_store's `MicrosoftAzure`.
//! Writes (Put Blob, Put Block, Put Block List, Delete Blob) are requests this
//! plugin builds and signs with object_store's `AzureAuthorizer`, because
//! object_store's write API cannot carry what walship needs: a `Content-MD5`
//! the service verifies (it is part of the SharedKey signature, so it cannot
//! be added after object_store signed), block ids derived from the upload id
//! and the part number (object_store's are random and kept in memory), and
//! single deletes (object_store only sends blob batches). See docs/azure.md.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use object_store::azure::{
    AzureAuthorizer, AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder,
};
use object_store::client::{HttpConnector, HttpRequest};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig, StaticCredentialProvider};
use url::Url;
use walship_guest_http::{HttpFailure, RustCrypto, WasiHttpConnector};

use crate::config::{self, Resolved, Settings};
use crate::endpoints;
use crate::errors::{self, Context, Op, Reply, Signer};
use crate::hooks::AzureHooks;
use crate::info;
use crate::walship::storage::types::{Endpoint, Error, Features};

/// How a signed request is sent: wasi:http in the plugin, a fake in tests.
pub type Transport =
    Arc<dyn Fn(http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure> + Send + Sync>;

pub struct AzureStore {
    pub(crate) client: MicrosoftAzure,
    pub(crate) hooks: Arc<AzureHooks>,
    pub(crate) context: Context,
    /// The blob service URL, no trailing `/`.
    endpoint: Url,
    /// The setting the endpoint came from, for messages.
    endpoint_source: &'static str,
    /// What `plan` granted for these plain settings, if anything.
    planned: Option<Endpoint>,
    credential: AzureCredential,
    transport: Transport,
    runtime: tokio::runtime::Runtime,
}

/// An object_store call that failed, with the Azure reply behind it, if any.
pub struct Failure {
    pub error: object_store::Error,
    pub reply: Option<Reply>,
}

impl Failure {
    pub fn status(&self) -> Option<u16> {
        self.reply.as_ref().map(|r| r.status)
    }
}

impl AzureStore {
    /// Opens the store at `prefix` (`azure://container/path`). No request is
    /// made: a wrong container or wrong credentials show on the first
    /// operation, with a message naming them.
    pub fn open(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
    ) -> Result<AzureStore, Error> {
        let hooks = Arc::new(AzureHooks::default());
        let connector = WasiHttpConnector::with_hooks(Arc::clone(&hooks) as _);
        let transport: Transport = Arc::new(walship_guest_http::send);
        let store = Self::open_with(prefix, config, secrets, hooks, connector, transport)?;
        store.ensure_granted()?;
        Ok(store)
    }

    /// [`Self::open`] with another transport (unit tests); `connector` must
    /// pass every exchange through `hooks`.
    pub(crate) fn open_with(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
        hooks: Arc<AzureHooks>,
        connector: impl HttpConnector,
        transport: Transport,
    ) -> Result<AzureStore, Error> {
        let settings = Settings::parse(prefix, config).map_err(invalid)?;
        let resolved = config::resolve(&settings, secrets).map_err(invalid)?;
        let credential = resolved.auth.credential();
        let client = build_client(
            &settings,
            &resolved,
            credential_clone(&credential),
            connector,
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Other(format!("cannot start the plugin's async runtime: {e}")))?;
        Ok(AzureStore {
            client,
            hooks,
            context: Context {
                location: settings.location.clone(),
                account: resolved.account.clone(),
                endpoint: endpoints::describe(&endpoints::grant(&resolved.endpoint)),
                signer: Signer::of(&resolved.auth),
            },
            endpoint: resolved.endpoint,
            endpoint_source: resolved.endpoint_source,
            planned: settings
                .planned_endpoint()
                .map(|url| endpoints::grant(&url)),
            credential,
            transport,
            runtime,
        })
    }

    /// Makes sure the host lets requests through to the resolved endpoint.
    /// `plan` granted what the plain settings name; an endpoint only a
    /// connection string names (a secret, which `plan` never sees) is asked
    /// for here, and the host grants it when the configuration names it
    /// (it finds URLs in secrets too), within the manifest and the operator's
    /// policy (`WALSHIP_ALLOW_HOSTS`).
    fn ensure_granted(&self) -> Result<(), Error> {
        let wanted = endpoints::grant(&self.endpoint);
        if self.planned.as_ref() == Some(&wanted) {
            return Ok(());
        }
        request_endpoint(&wanted).map_err(|why| {
            Error::InvalidConfig(errors::one_line(&format!(
                "the blob endpoint {} (named by {}) is not granted to the plugin: {why}",
                endpoints::describe(&wanted),
                self.endpoint_source,
            )))
        })
    }

    /// `info`'s features: Azure enforces `If-None-Match: *` itself.
    pub fn features(&self) -> Features {
        info::FEATURES
    }

    /// One line for the host's debug log.
    pub fn describe(&self) -> String {
        format!(
            "azure store {} at {} (account {}, {})",
            self.context.location.url_of(""),
            self.context.endpoint,
            self.context.account,
            match &self.context.signer {
                Signer::SharedKey { setting } => format!("shared key from {setting}"),
                Signer::Sas { setting, .. } => format!("SAS token from {setting}"),
            }
        )
    }

    /// The object_store path of the store's `key`.
    pub(crate) fn path(&self, key: &str) -> Result<Path, Error> {
        let full = self.context.location.full_key(key);
        Path::parse(&full).map_err(|e| {
            Error::Other(errors::one_line(&format!(
                "key {key:?} cannot be stored in Azure by this plugin: {e}"
            )))
        })
    }

    /// The store's key of a blob name, if it is under the store's path.
    pub(crate) fn relative<'k>(&self, blob: &'k str) -> Option<&'k str> {
        blob.strip_prefix(&self.context.location.key_base())
    }

    /// The URL of the blob of `key`, built as object_store builds it (each
    /// path segment percent-encoded), so signatures agree.
    pub(crate) fn blob_url(&self, key: &str) -> Url {
        let mut url = self.endpoint.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .expect("an http(s) URL has path segments");
            segments.pop_if_empty();
            segments.push(&self.context.location.container);
            segments.extend(self.context.location.full_key(key).split('/'));
        }
        url
    }

    /// Signs and sends one request; the answer, whatever its status.
    pub(crate) fn send(
        &self,
        method: Method,
        url: Url,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<http::Response<Bytes>, Error> {
        let mut request = HttpRequest::new(body.into());
        *request.method_mut() = method;
        *request.uri_mut() = url
            .as_str()
            .parse()
            .map_err(|e| Error::Other(format!("cannot build a request URL: {e}")))?;
        // Content-Length is signed (SharedKey), so it is set before signing.
        let length = request.body().content_length();
        request.headers_mut().extend(
            headers
                .into_iter()
                .map(|(name, value)| (Some(name), value))
                .chain([(
                    Some(http::header::CONTENT_LENGTH),
                    HeaderValue::from(length),
                )]),
        );
        AzureAuthorizer::new(&self.credential, &self.context.account)
            .with_crypto(&RustCrypto)
            .try_authorize(&mut request)
            .map_err(|e| {
                Error::Other(errors::one_line(&format!("cannot sign the request: {e}")))
            })?;
        let (parts, body) = request.into_parts();
        let body = body.as_bytes().cloned().unwrap_or_default();
        (self.transport)(http::Request::from_parts(parts, body))
            .map_err(|failure| errors::from_transport(&failure))
    }

    /// Runs one object_store call to completion.
    pub(crate) fn run<T>(
        &self,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, Box<Failure>> {
        self.hooks.reset();
        self.runtime.block_on(call).map_err(|error| {
            Box::new(Failure {
                error,
                reply: self.hooks.take_failure(),
            })
        })
    }

    /// The contract's error for a failed object_store call doing `op`.
    pub(crate) fn error(&self, op: &Op<'_>, failure: Failure) -> Error {
        errors::from_object_store(&failure.error, failure.reply.as_ref(), op, &self.context)
    }

    /// [`Self::run`], failures explained.
    pub(crate) fn call<T>(
        &self,
        op: &Op<'_>,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, Error> {
        self.run(call).map_err(|failure| self.error(op, *failure))
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig(errors::one_line(&message))
}

/// `AzureCredential` is not `Clone`.
fn credential_clone(credential: &AzureCredential) -> AzureCredential {
    match credential {
        AzureCredential::AccessKey(key) => AzureCredential::AccessKey(key.clone()),
        AzureCredential::SASToken(pairs) => AzureCredential::SASToken(pairs.clone()),
        AzureCredential::BearerToken(token) => AzureCredential::BearerToken(token.clone()),
    }
}

/// The object_store client for the resolved settings, sending through
/// `connector`.
fn build_client(
    settings: &Settings,
    resolved: &Resolved,
    credential: AzureCredential,
    connector: impl HttpConnector,
) -> Result<MicrosoftAzure, Error> {
    MicrosoftAzureBuilder::new()
        .with_account(&resolved.account)
        .with_container_name(&settings.location.container)
        // Always explicit, so requests go exactly where the host granted.
        .with_endpoint(resolved.endpoint.as_str().to_string())
        .with_credentials(Arc::new(StaticCredentialProvider::new(credential)))
        .with_http_connector(connector)
        .with_crypto_provider(Arc::new(RustCrypto))
        // The host retries transient and throttled failures, with back-off
        // and jitter; retrying here too would multiply the two bounds.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
        })
        // Whether plain http may be used is the operator's choice, made in
        // the endpoint setting and the host's policy.
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()
        .map_err(|e| {
            invalid(format!(
                "cannot set up the Azure client for {}: {e}",
                settings.location.url_of("")
            ))
        })
}

#[cfg(target_arch = "wasm32")]
fn request_endpoint(endpoint: &Endpoint) -> Result<(), String> {
    crate::walship::storage::host::request_endpoint(endpoint)
}

/// Native builds only run unit tests, where there is no host to ask.
#[cfg(not(target_arch = "wasm32"))]
fn request_endpoint(_: &Endpoint) -> Result<(), String> {
    Ok(())
}
