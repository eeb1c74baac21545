//! The token and storage URL every request needs, obtained when first
//! needed and obtained again, once, when Swift refuses the token (it
//! expired or was revoked).
//!
//! Each plugin instance authenticates for itself: nothing outlives an
//! instance, and a token must never travel through the host (an upload id,
//! a log line). A storage URL learned from an auth reply is asked of the
//! host (`host.request-endpoint`) before anything is sent there.

use std::cell::RefCell;

use bytes::Bytes;
use walship_guest_http::HttpFailure;

use crate::auth;
use crate::config::{self, AuthMethod, Settings};
use crate::errors::{self, Op, one_line};
use crate::host;
use crate::walship::storage::types::{Endpoint, Error};

/// How a request goes out: walship-guest-http's `send`, or a script in
/// unit tests.
pub type Send = dyn Fn(http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure>;

/// A token and the storage URL it is good for (`https://host/v1/AUTH_x`,
/// no trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub storage_url: String,
    pub token: String,
}

pub struct Sessions {
    method: AuthMethod,
    /// ST_KEY or OS_PASSWORD.
    secret: Option<String>,
    storage_override: Option<String>,
    current: RefCell<Option<Session>>,
    /// Endpoints the host already let us reach.
    allowed: RefCell<Vec<Endpoint>>,
    send: Box<Send>,
}

impl Sessions {
    pub fn new(
        settings: &Settings,
        secrets: &[(String, String)],
        send: Box<Send>,
    ) -> Result<Sessions, Error> {
        let secret = |name: &str| {
            secrets
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let missing =
            |name: &str, why: &str| Error::InvalidConfig(format!("{why} is set but {name} is not"));
        let credential = match &settings.auth {
            AuthMethod::V1 { .. } => {
                Some(secret("ST_KEY").ok_or_else(|| missing("ST_KEY", "ST_AUTH"))?)
            }
            AuthMethod::Keystone(_) => {
                Some(secret("OS_PASSWORD").ok_or_else(|| missing("OS_PASSWORD", "OS_AUTH_URL"))?)
            }
            AuthMethod::TokenOnly => None,
        };
        let storage_override = settings
            .storage_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_string());
        let initial = match (secret("OS_AUTH_TOKEN"), &storage_override) {
            (Some(token), Some(storage_url)) => Some(Session {
                storage_url: storage_url.clone(),
                token,
            }),
            (None, _) if settings.auth == AuthMethod::TokenOnly => {
                return Err(missing(
                    "OS_AUTH_TOKEN",
                    "OS_STORAGE_URL (without other credentials)",
                ));
            }
            _ => None,
        };
        Ok(Sessions {
            method: settings.auth.clone(),
            secret: credential,
            storage_override,
            current: RefCell::new(initial),
            allowed: RefCell::new(settings.planned_endpoints()),
            send,
        })
    }

    /// The storage URL, authenticating first if need be.
    pub fn storage_url(&self) -> Result<String, Error> {
        Ok(self.session()?.storage_url)
    }

    /// The current session, authenticating first if there is none.
    fn session(&self) -> Result<Session, Error> {
        if let Some(session) = self.current.borrow().clone() {
            return Ok(session);
        }
        let mut session = auth::authenticate(
            &self.method,
            self.secret.as_deref().unwrap_or_default(),
            &self.send,
        )?;
        if let Some(url) = &self.storage_override {
            session.storage_url = url.clone();
        }
        session.storage_url = session.storage_url.trim_end_matches('/').to_string();
        self.allow(&session.storage_url)?;
        host::debug(&format!(
            "swift: authenticated ({}); storage URL {}",
            self.method_name(),
            session.storage_url
        ));
        *self.current.borrow_mut() = Some(session.clone());
        Ok(session)
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            AuthMethod::V1 { .. } => "v1",
            AuthMethod::Keystone(_) => "Keystone v3",
            AuthMethod::TokenOnly => "pre-issued token",
        }
    }

    /// Asks the host for the storage URL's endpoint unless it was planned
    /// or already granted.
    fn allow(&self, storage_url: &str) -> Result<(), Error> {
        let url = config::http_url("the storage URL", storage_url).map_err(|e| {
            Error::Other(one_line(&format!(
                "the auth reply named an unusable storage URL: {e}"
            )))
        })?;
        let endpoint = config::endpoint_of(&url);
        if self.allowed.borrow().contains(&endpoint) {
            return Ok(());
        }
        host::request_endpoint(&endpoint).map_err(|reason| {
            Error::PermissionDenied(one_line(&format!(
                "the storage URL {storage_url} (from the auth reply) may not be reached: \
                 {reason}; set OS_STORAGE_URL to it (or to the URL to use instead), or allow \
                 its host in WALSHIP_ALLOW_HOSTS"
            )))
        })?;
        self.allowed.borrow_mut().push(endpoint);
        Ok(())
    }

    /// Drops the token after Swift refused it inside a request that
    /// itself succeeded (a bulk delete's or a manifest's subrequests: the
    /// token lapsed while Swift worked); the next request gets a new one.
    pub fn renew(&self, op: &Op) {
        host::debug(&format!(
            "swift: the token lapsed during {} {} (HTTP 401 to a subrequest); authenticating \
             again",
            op.action, op.what
        ));
        *self.current.borrow_mut() = None;
    }

    /// Sends the request `build` makes for the current session. A 401 gets
    /// one more try with a new token, even when the refused token had just
    /// been issued: tempauth hands out the token it already has until it
    /// expires, so a new session can start with a token about to lapse.
    /// Any other answer is returned as it is, for the caller to read.
    pub fn request(
        &self,
        op: &Op,
        build: impl Fn(&Session) -> Result<http::Request<Bytes>, Error>,
    ) -> Result<http::Response<Bytes>, Error> {
        let mut renewed = false;
        loop {
            let session = self.session()?;
            let response = (self.send)(build(&session)?)
                .map_err(|failure| errors::from_failure(op, &failure))?;
            if response.status() != http::StatusCode::UNAUTHORIZED || renewed {
                return Ok(response);
            }
            if self.method == AuthMethod::TokenOnly {
                return Err(auth::authenticate(&self.method, "", &self.send)
                    .expect_err("a pre-issued token cannot be renewed"));
            }
            host::debug(&format!(
                "swift: the token was refused (HTTP 401) to {} {}; authenticating again",
                op.action, op.what
            ));
            *self.current.borrow_mut() = None;
            renewed = true;
        }
    }
}
