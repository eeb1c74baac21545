//! An open store: the object_store client built from the settings, and how
//! each operation is run and its failure explained.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum, S3ConditionalPut};
use object_store::client::HttpConnector;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ClientOptions, RetryConfig,
};
use walship_guest_http::WasiHttpConnector;

use crate::config::{self, Credentials, Encryption, IfNoneMatch, Settings};
use crate::endpoints;
use crate::errors::{self, Context, Op, Signer};
use crate::hooks::{S3Hooks, S3Reply};
use crate::info;
use crate::walship::storage::types::{Error, Features};
use crate::web_identity::WebIdentity;
use walship_guest_http::RustCrypto;

pub struct S3Store {
    pub(crate) client: AmazonS3,
    pub(crate) hooks: Arc<S3Hooks>,
    pub(crate) context: Context,
    if_none_match: IfNoneMatch,
    storage_class: Option<String>,
    runtime: tokio::runtime::Runtime,
}

/// An object_store call that failed, with the S3 reply behind it, if any.
pub struct Failure {
    pub error: object_store::Error,
    pub reply: Option<S3Reply>,
    /// The status of the last answer, failed or not.
    pub last_status: Option<u16>,
}

impl Failure {
    pub fn status(&self) -> Option<u16> {
        self.reply.as_ref().map(|r| r.status)
    }
}

impl S3Store {
    /// Opens the store at `prefix` (`s3://bucket/path`). No request is made:
    /// a wrong bucket or wrong credentials show on the first operation, with
    /// a message naming them.
    pub fn open(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
    ) -> Result<S3Store, Error> {
        let hooks = Arc::new(S3Hooks::default());
        let connector = WasiHttpConnector::with_hooks(Arc::clone(&hooks) as _);
        Self::open_with(prefix, config, secrets, hooks, connector)
    }

    /// [`Self::open`] with another transport (unit tests), which must pass
    /// every exchange through `hooks`.
    pub(crate) fn open_with(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
        hooks: Arc<S3Hooks>,
        connector: impl HttpConnector,
    ) -> Result<S3Store, Error> {
        let settings = Settings::parse(prefix, config).map_err(Error::InvalidConfig)?;
        let credentials = config::credentials(&settings, secrets).map_err(Error::InvalidConfig)?;
        let signer = match &credentials {
            Credentials::Static {
                key_id,
                session_token,
                ..
            } => Signer::AccessKey {
                id: key_id.clone(),
                with_session_token: session_token.is_some(),
            },
            Credentials::WebIdentity { role, .. } => Signer::WebIdentity {
                role_arn: role.arn.clone(),
            },
        };
        let client = build_client(&settings, credentials, connector)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Other(format!("cannot start the plugin's async runtime: {e}")))?;
        let grant = endpoints::s3_target(&settings).grant;
        Ok(S3Store {
            client,
            hooks,
            context: Context {
                location: settings.location.clone(),
                region: settings.region.clone(),
                endpoint: format!("{}://{}:{}", grant.scheme, grant.host, grant.port),
                signer,
            },
            if_none_match: settings.if_none_match,
            storage_class: settings.storage_class.clone(),
            runtime,
        })
    }

    /// `info`'s features, less atomic create-only when the store may ignore
    /// `If-None-Match: *` (the plugin still sends it).
    pub fn features(&self) -> Features {
        match self.if_none_match {
            IfNoneMatch::Enforced => info::FEATURES,
            IfNoneMatch::Unverified => info::FEATURES.difference(Features::ATOMIC_CREATE_ONLY),
        }
    }

    /// One line for the host's debug log.
    pub fn describe(&self) -> String {
        format!(
            "s3 store {} at {} (region {}, create-only {})",
            self.context.location.url_of(""),
            self.context.endpoint,
            self.context.region,
            match self.if_none_match {
                IfNoneMatch::Enforced => "enforced by the store",
                IfNoneMatch::Unverified => "not verified by the store",
            }
        )
    }

    /// The object_store path of the store's `key`.
    pub(crate) fn path(&self, key: &str) -> Result<Path, Error> {
        let full = self.context.location.full_key(key);
        Path::parse(&full).map_err(|e| {
            Error::Other(errors::one_line(&format!(
                "key {key:?} cannot be stored in S3 by this plugin: {e}"
            )))
        })
    }

    /// The store's key of an S3 key, if it is under the store's path.
    pub(crate) fn relative<'k>(&self, full_key: &'k str) -> Option<&'k str> {
        full_key.strip_prefix(&self.context.location.key_base())
    }

    /// Object attributes for writes: storage class, content type.
    pub(crate) fn attributes(&self, content_type: Option<&str>) -> Attributes {
        let mut attributes = Attributes::new();
        if let Some(class) = &self.storage_class {
            attributes.insert(Attribute::StorageClass, AttributeValue::from(class.clone()));
        }
        if let Some(content_type) = content_type {
            attributes.insert(
                Attribute::ContentType,
                AttributeValue::from(content_type.to_string()),
            );
        }
        attributes
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
                last_status: self.hooks.last_status(),
            })
        })
    }

    /// The contract's error for a failed `op`.
    pub(crate) fn error(&self, op: &Op<'_>, failure: Failure) -> Error {
        errors::to_contract(&failure.error, failure.reply.as_ref(), op, &self.context)
    }

    /// [`Self::run`], failures explained.
    pub(crate) fn call<T>(
        &self,
        op: &Op<'_>,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, Error> {
        self.run(call).map_err(|failure| self.error(op, *failure))
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// The object_store client for `settings`, sending through `connector`.
fn build_client(
    settings: &Settings,
    credentials: Credentials,
    connector: impl HttpConnector,
) -> Result<AmazonS3, Error> {
    let target = endpoints::s3_target(settings);
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.location.bucket)
        .with_region(&settings.region)
        // Always explicit, so requests go exactly where `plan` granted.
        .with_endpoint(&target.endpoint)
        .with_virtual_hosted_style_request(target.virtual_hosted)
        .with_http_connector(connector)
        .with_crypto_provider(Arc::new(RustCrypto))
        // The host retries transient and throttled failures, with back-off
        // and jitter; retrying here too would multiply the two bounds.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
        })
        // The store checks x-amz-checksum-sha256 of every put and part, and
        // the signed payload hash: a body damaged in transit is refused.
        .with_checksum_algorithm(Checksum::SHA256)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        // Whether plain http may be used is the operator's choice, made in
        // the endpoint setting and the host's policy.
        .with_client_options(ClientOptions::new().with_allow_http(true));
    builder = match credentials {
        Credentials::Static {
            key_id,
            secret_key,
            session_token,
        } => {
            let builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret_key);
            match session_token {
                Some(token) => builder.with_token(token),
                None => builder,
            }
        }
        Credentials::WebIdentity { role, token } => {
            let (sts_url, _) = endpoints::sts_target(settings);
            builder.with_credentials(Arc::new(WebIdentity::new(sts_url, role, token)))
        }
    };
    match &settings.encryption {
        None => {}
        Some(Encryption::S3Managed) => {
            builder = builder.with_config(sse_key("aws_server_side_encryption"), "AES256")
        }
        Some(Encryption::Kms { key_id }) => {
            builder = builder.with_config(sse_key("aws_server_side_encryption"), "aws:kms");
            if let Some(key_id) = key_id {
                builder = builder.with_config(sse_key("aws_sse_kms_key_id"), key_id);
            }
        }
    }
    builder.build().map_err(|e| {
        Error::InvalidConfig(errors::one_line(&format!(
            "cannot set up the S3 client for {}: {e}",
            settings.location.url_of("")
        )))
    })
}

/// object_store's encryption settings are reachable only by name.
fn sse_key(name: &str) -> AmazonS3ConfigKey {
    name.parse()
        .unwrap_or_else(|_| unreachable!("object_store names {name}"))
}
