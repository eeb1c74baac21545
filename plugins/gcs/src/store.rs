//! An open store: the JSON API client built from the settings, and how each
//! request is sent and its failure explained.

use bytes::Bytes;
use http::Method;

use crate::auth::{self, HostCache, Keep, ServiceAccount};
use crate::client::{Client, Credentials, Reply, Transport, Wasi};
use crate::config::{Settings, UPLOADS_DIR};
use crate::errors::{self, Account, Context, Op};
use crate::walship::storage::types::{Error, ObjectMeta};

pub struct GcsStore {
    pub(crate) client: Client,
    pub(crate) context: Context,
}

/// The fields of an object resource the plugin reads.
#[derive(serde::Deserialize, Debug, Default)]
pub struct Resource {
    #[serde(default)]
    pub name: String,
    /// The JSON API sends 64-bit numbers as strings.
    pub size: Option<String>,
    pub updated: Option<String>,
    pub etag: Option<String>,
    pub generation: Option<String>,
    /// Base64 of the big-endian CRC32C.
    pub crc32c: Option<String>,
}

impl Resource {
    pub fn size(&self) -> u64 {
        self.size
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn crc32c(&self) -> Option<u32> {
        self.crc32c.as_deref().and_then(decode_crc32c)
    }

    pub fn meta(&self, key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: self.size(),
            last_modified_ms: self.updated.as_deref().and_then(rfc3339_ms),
            etag: self.etag.clone(),
        }
    }
}

impl GcsStore {
    /// Opens the store at `prefix` (`gs://bucket/path`). No request is made,
    /// and a key file that cannot be used does not fail here: every request
    /// then fails as unauthenticated, naming what is wrong with it.
    pub fn open(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
    ) -> Result<GcsStore, Error> {
        Self::open_with(prefix, config, secrets, Box::new(Wasi), Box::new(HostCache))
    }

    /// [`Self::open`] over another transport and token cache (unit tests).
    pub(crate) fn open_with(
        prefix: &str,
        config: &[(String, String)],
        secrets: &[(String, String)],
        transport: Box<dyn Transport>,
        keep: Box<dyn Keep>,
    ) -> Result<GcsStore, Error> {
        let settings = Settings::parse(prefix, config).map_err(Error::InvalidConfig)?;
        let key_file = secrets
            .iter()
            .find(|(name, _)| name == auth::SETTING)
            .map(|(_, value)| value.as_str());
        let credentials = match (settings.target.emulator, key_file) {
            (true, _) => Credentials::None,
            (false, Some(json)) => match ServiceAccount::from_json(json, keep) {
                Ok(account) => Credentials::ServiceAccount(Box::new(account)),
                Err(why) => Credentials::Broken(why),
            },
            (false, None) => {
                return Err(Error::InvalidConfig(format!(
                    "no credentials for {}: set GOOGLE_APPLICATION_CREDENTIALS to a \
                     service-account JSON key file (or STORAGE_EMULATOR_HOST for an emulator)",
                    settings.location.url_of("")
                )));
            }
        };
        let account = match &credentials {
            Credentials::ServiceAccount(sa) => Some(Account {
                email: sa.client_email.clone(),
                key_id: sa.key_id.clone(),
            }),
            Credentials::Broken(_) => Some(Account {
                email: "(unreadable key file)".to_string(),
                key_id: "?".to_string(),
            }),
            Credentials::None => None,
        };
        let context = Context {
            location: settings.location.clone(),
            endpoint: settings.target.base.clone(),
            account,
        };
        let client = Client::new(
            settings.target,
            settings.location.bucket.clone(),
            credentials,
            transport,
        );
        Ok(GcsStore { client, context })
    }

    /// One line for the host's debug log (no secrets).
    pub fn describe(&self) -> String {
        let auth = match &self.client.credentials {
            Credentials::None => "no credentials (emulator)".to_string(),
            Credentials::ServiceAccount(sa) => format!("service account {}", sa.client_email),
            Credentials::Broken(_) => "an unusable key file".to_string(),
        };
        format!(
            "gcs store {} at {} with {auth}",
            self.context.location.url_of(""),
            self.context.endpoint
        )
    }

    /// The object name of the store's `key`. Keys under the uploads
    /// directory are the plugin's own and refused.
    pub(crate) fn name(&self, key: &str) -> Result<String, Error> {
        if key.starts_with(UPLOADS_DIR) || key == UPLOADS_DIR.trim_end_matches('/') {
            return Err(Error::Unsupported(format!(
                "key {key:?}: keys under {UPLOADS_DIR} are reserved for the parts of unfinished \
                 uploads"
            )));
        }
        Ok(self.context.location.full_key(key))
    }

    /// The store's key of an object name, if it is under the store's path.
    pub(crate) fn relative<'k>(&self, name: &'k str) -> Option<&'k str> {
        name.strip_prefix(&self.context.location.key_base())
    }

    /// Sends a request; a status outside `ok` is the op's error.
    pub(crate) fn call(
        &self,
        op: &Op<'_>,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
        ok: &[u16],
    ) -> Result<Reply, Error> {
        let reply = self
            .client
            .send(method, url, headers, body)
            .map_err(|e| errors::from_send(e, op, &self.context))?;
        if ok.contains(&reply.status.as_u16()) {
            Ok(reply)
        } else {
            Err(errors::from_reply(&reply, op, &self.context))
        }
    }

    /// An object resource from a reply body.
    pub(crate) fn resource(&self, op: &Op<'_>, reply: &Reply) -> Result<Resource, Error> {
        serde_json::from_slice(&reply.body).map_err(|e| {
            Error::Other(errors::one_line(&format!(
                "cannot read {}'s answer about {}: {e}",
                self.context.endpoint,
                self.context.location.url_of(op.key)
            )))
        })
    }
}

/// A CRC32C as GCS writes it: base64 of 4 big-endian bytes.
pub fn encode_crc32c(crc: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

pub fn decode_crc32c(text: &str) -> Option<u32> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// Milliseconds since the epoch of an RFC 3339 time (`updated`).
pub fn rfc3339_ms(text: &str) -> Option<u64> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(time.timestamp_millis())
        .ok()
        .filter(|&ms| ms > 0)
}

/// Milliseconds since the epoch of an HTTP date (`Last-Modified`).
pub fn http_date_ms(text: &str) -> Option<u64> {
    let time = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    u64::try_from(time.timestamp_millis())
        .ok()
        .filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_round_trips_in_gcs_form() {
        // The emulator's answer for "hello".
        assert_eq!(decode_crc32c("mnG7TA=="), Some(crc32c::crc32c(b"hello")));
        assert_eq!(encode_crc32c(crc32c::crc32c(b"hello")), "mnG7TA==");
        assert_eq!(decode_crc32c("AAAA"), None);
    }

    #[test]
    fn times_parse() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:02 GMT"), Some(2000));
        assert_eq!(rfc3339_ms("yesterday"), None);
    }
}
