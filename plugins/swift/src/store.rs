//! An open store: where its objects live and the session that reaches them.

use std::cell::Cell;

use bytes::Bytes;

use crate::config::{AuthMethod, Location, Settings};
use crate::errors::{self, Action, Op};
use crate::names::{self, SEGMENTS_PREFIX};
use crate::session::{Send, Session, Sessions};
use crate::walship::storage::types::Error;

pub struct SwiftStore {
    pub(crate) location: Location,
    pub(crate) sessions: Sessions,
    auth: &'static str,
    /// Whether the cluster offers bulk delete (`/info`), once asked.
    pub(crate) bulk_delete: Cell<Option<bool>>,
}

impl SwiftStore {
    /// Opens the store at `prefix` (`swift://container/path`). No request is
    /// made: wrong credentials show on the first operation, with a message
    /// naming them.
    pub fn open(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
    ) -> Result<SwiftStore, Error> {
        Self::open_with(prefix, config, secrets, Box::new(walship_guest_http::send))
    }

    /// [`Self::open`] with another transport (unit tests).
    pub(crate) fn open_with(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
        send: Box<Send>,
    ) -> Result<SwiftStore, Error> {
        let settings = Settings::parse(prefix, config).map_err(Error::InvalidConfig)?;
        let auth = match settings.auth {
            AuthMethod::V1 { .. } => "v1 auth",
            AuthMethod::Keystone(_) => "Keystone v3",
            AuthMethod::TokenOnly => "a pre-issued token",
        };
        Ok(SwiftStore {
            sessions: Sessions::new(&settings, secrets, send)?,
            location: settings.location,
            auth,
            bulk_delete: Cell::new(None),
        })
    }

    /// One line for the host's debug log.
    pub fn describe(&self) -> String {
        format!("swift store {} ({})", self.location.url_of(""), self.auth)
    }

    /// The Swift object name of `key`; keys in the segments' name space of
    /// a store at the container's root are refused.
    pub(crate) fn object_name(&self, key: &str) -> Result<String, Error> {
        if self.location.path.is_empty() && key.starts_with(SEGMENTS_PREFIX) {
            return Err(Error::Unsupported(format!(
                "key {key:?}: {SEGMENTS_PREFIX} at the root of container {} holds large-object \
                 segments",
                self.location.container
            )));
        }
        Ok(self.location.object_name(key))
    }

    pub(crate) fn object_url(&self, session: &Session, name: &str) -> String {
        names::object_url(&session.storage_url, &self.location.container, name)
    }

    pub(crate) fn container_url(&self, session: &Session) -> String {
        names::container_url(&session.storage_url, &self.location.container)
    }

    /// Sends what `build` makes (see [`Sessions::request`]).
    pub(crate) fn request(
        &self,
        op: &Op,
        build: impl Fn(&Session) -> Result<http::Request<Bytes>, Error>,
    ) -> Result<http::Response<Bytes>, Error> {
        self.sessions.request(op, build)
    }

    /// The error for an answer that was not a success. A 404 to a write or a
    /// listing means the container is missing: a configuration problem.
    pub(crate) fn failed(&self, op: &Op, response: &http::Response<Bytes>) -> Error {
        let status = response.status().as_u16();
        let container_needed = matches!(
            op.action,
            Action::Put | Action::CreateOnlyPut | Action::UploadPart | Action::List
        );
        if status == 404 && container_needed {
            return Error::InvalidConfig(errors::one_line(&format!(
                "cannot {} {}: container {:?} does not exist (create it first, e.g. `swift post \
                 {}`)",
                op.action, op.what, self.location.container, self.location.container
            )));
        }
        errors::from_status(op, status, response.headers(), "")
    }
}

/// A request with the session's token.
pub(crate) fn authed(method: http::Method, url: &str, session: &Session) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(url)
        .header("x-auth-token", &session.token)
}

/// A built request, or why the URL could not be used.
pub(crate) fn finish(
    builder: http::request::Builder,
    body: Bytes,
) -> Result<http::Request<Bytes>, Error> {
    builder
        .body(body)
        .map_err(|e| Error::Other(errors::one_line(&format!("cannot build the request: {e}"))))
}
