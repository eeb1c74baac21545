//! The plugin's settings, parsed once from what the host hands over.
//!
//! Names follow WAL-G (`WALG_AZ_PREFIX`, `AZURE_STORAGE_ACCOUNT`,
//! `AZURE_STORAGE_ACCESS_KEY`, `AZURE_STORAGE_SAS_TOKEN`,
//! `AZURE_ENDPOINT_SUFFIX`, `AZURE_ENVIRONMENT_NAME`) and the Azure CLI
//! (`AZURE_STORAGE_KEY`, `AZURE_STORAGE_CONNECTION_STRING`,
//! `AZURE_STORAGE_SERVICE_ENDPOINT`). Every refusal names the setting and
//! what a valid value looks like; secrets are never quoted.
//!
//! `plan` sees only the plain settings, so the endpoint it grants comes from
//! them ([`Settings::planned_endpoint`]); `open` also sees the secrets (a
//! connection string may name the account and the endpoint) and resolves the
//! rest ([`resolve`]).

use std::fmt;

use object_store::azure::{AzureAccessKey, AzureCredential, split_sas};
use url::Url;

use crate::prefix::{self, Location};

/// Azure's public cloud.
const DEFAULT_SUFFIX: &str = "core.windows.net";

/// Azurite's well-known development account (`UseDevelopmentStorage=true`),
/// published in Azure's documentation.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

pub const ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
pub const ACCESS_KEY: &str = "AZURE_STORAGE_ACCESS_KEY";
pub const KEY: &str = "AZURE_STORAGE_KEY";
pub const SAS_TOKEN: &str = "AZURE_STORAGE_SAS_TOKEN";
pub const CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
pub const SERVICE_ENDPOINT: &str = "AZURE_STORAGE_SERVICE_ENDPOINT";
pub const ENDPOINT_SUFFIX: &str = "AZURE_ENDPOINT_SUFFIX";
pub const ENVIRONMENT_NAME: &str = "AZURE_ENVIRONMENT_NAME";

/// The plain settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub location: Location,
    pub account: Option<String>,
    /// `AZURE_STORAGE_SERVICE_ENDPOINT`: the blob service URL, no trailing `/`.
    pub service_endpoint: Option<Url>,
    /// `blob.<suffix>` follows the account name in the default endpoint.
    pub endpoint_suffix: String,
}

impl Settings {
    pub fn parse(prefix: &str, config: &[(String, String)]) -> Result<Settings, String> {
        let location = prefix::parse(prefix)?;
        let get = |name: &str| lookup(config, name);
        let account = get(ACCOUNT)
            .map(|a| check_account(ACCOUNT, a))
            .transpose()?;
        let service_endpoint = get(SERVICE_ENDPOINT)
            .map(|v| parse_endpoint(SERVICE_ENDPOINT, v))
            .transpose()?;
        let endpoint_suffix = match (get(ENDPOINT_SUFFIX), get(ENVIRONMENT_NAME)) {
            (Some(suffix), _) => check_suffix(ENDPOINT_SUFFIX, suffix)?,
            (None, Some(environment)) => environment_suffix(environment)?.to_string(),
            (None, None) => DEFAULT_SUFFIX.to_string(),
        };
        Ok(Settings {
            location,
            account,
            service_endpoint,
            endpoint_suffix,
        })
    }

    /// The blob service endpoint the plain settings name, if they name one:
    /// what `plan` grants. A connection string (a secret) can name one only
    /// at `open`, which then asks the host for it.
    pub fn planned_endpoint(&self) -> Option<Url> {
        match (&self.service_endpoint, &self.account) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(account)) => {
                Some(default_endpoint("https", account, &self.endpoint_suffix))
            }
            (None, None) => None,
        }
    }
}

/// How requests are authorized, and the setting that said so (for messages).
pub enum Auth {
    SharedKey {
        key: AzureAccessKey,
        setting: &'static str,
    },
    Sas {
        pairs: Vec<(String, String)>,
        setting: &'static str,
    },
}

impl Auth {
    pub fn credential(&self) -> AzureCredential {
        match self {
            Auth::SharedKey { key, .. } => AzureCredential::AccessKey(key.clone()),
            Auth::Sas { pairs, .. } => AzureCredential::SASToken(pairs.clone()),
        }
    }

    /// The SAS token's permissions (`sp`), if this is one.
    pub fn sas_permissions(&self) -> Option<&str> {
        match self {
            Auth::Sas { pairs, .. } => pairs
                .iter()
                .find(|(k, _)| k == "sp")
                .map(|(_, v)| v.as_str()),
            Auth::SharedKey { .. } => None,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::SharedKey { setting, .. } => write!(f, "shared key from {setting}"),
            Auth::Sas { setting, .. } => write!(f, "SAS token from {setting}"),
        }
    }
}

/// Everything a store needs: the plain settings completed by the secrets.
#[derive(Debug)]
pub struct Resolved {
    pub account: String,
    /// The blob service URL, no trailing `/` (`https://acct.blob.core.windows.net`,
    /// or with the account as the first path segment for Azurite).
    pub endpoint: Url,
    /// The setting the endpoint came from, for messages.
    pub endpoint_source: &'static str,
    pub auth: Auth,
}

/// Resolves account, endpoint and credentials from the plain settings and
/// the secrets.
pub fn resolve(settings: &Settings, secrets: &[(String, String)]) -> Result<Resolved, String> {
    let secret = |name: &str| lookup(secrets, name);
    let cs = secret(CONNECTION_STRING)
        .map(ConnectionString::parse)
        .transpose()?
        .unwrap_or_default();

    let account = match (&settings.account, &cs.account) {
        (Some(plain), Some(in_cs)) if plain != in_cs => {
            return Err(format!(
                "{ACCOUNT} names account {plain} but the AccountName of \
                 {CONNECTION_STRING} is another one; set one of them, or the same"
            ));
        }
        (Some(account), _) | (None, Some(account)) => Some(account.clone()),
        (None, None) => None,
    };

    let (endpoint, endpoint_source) = match (&settings.service_endpoint, &cs.blob_endpoint) {
        (Some(plain), Some(in_cs)) if plain != in_cs => {
            return Err(format!(
                "{SERVICE_ENDPOINT} ({plain}) and the BlobEndpoint of {CONNECTION_STRING} \
                 differ; set one of them, or the same"
            ));
        }
        (Some(url), _) => (url.clone(), SERVICE_ENDPOINT),
        (None, Some(url)) => (url.clone(), CONNECTION_STRING),
        (None, None) => match &account {
            Some(account) => {
                let suffix = cs
                    .endpoint_suffix
                    .as_deref()
                    .unwrap_or(&settings.endpoint_suffix);
                let protocol = cs.protocol.as_deref().unwrap_or("https");
                let source = if settings.account.is_some() {
                    ACCOUNT
                } else {
                    CONNECTION_STRING
                };
                (default_endpoint(protocol, account, suffix), source)
            }
            None => {
                return Err(format!(
                    "no Azure storage account: set {ACCOUNT} (or {CONNECTION_STRING} with \
                     AccountName, or {SERVICE_ENDPOINT})"
                ));
            }
        },
    };

    let key = [
        (ACCESS_KEY, secret(ACCESS_KEY)),
        (KEY, secret(KEY)),
        (CONNECTION_STRING, cs.account_key.as_deref()),
    ]
    .into_iter()
    .find_map(|(setting, value)| Some((setting, value?)));
    let sas = [
        (SAS_TOKEN, secret(SAS_TOKEN)),
        (CONNECTION_STRING, cs.sas.as_deref()),
    ]
    .into_iter()
    .find_map(|(setting, value)| Some((setting, value?)));
    // A key wins over a SAS token, as in WAL-G.
    let auth = match (key, sas) {
        (Some((setting, key)), _) => Auth::SharedKey {
            key: parse_key(key).ok_or_else(|| {
                format!(
                    "{} is not an Azure storage account key (base64, as the portal shows it)",
                    describe_key_setting(setting)
                )
            })?,
            setting,
        },
        (None, Some((setting, token))) => Auth::Sas {
            pairs: parse_sas(setting, token)?,
            setting,
        },
        (None, None) => {
            return Err(format!(
                "no Azure credentials: set {ACCESS_KEY} (or {KEY}), {SAS_TOKEN}, or \
                 {CONNECTION_STRING} with AccountKey or SharedAccessSignature"
            ));
        }
    };
    // The account is part of every SharedKey signature; a SAS token carries
    // its own authority, and the account then only names the store.
    let account = match (account, &auth) {
        (Some(account), _) => account,
        (None, Auth::Sas { .. }) => account_from_host(&endpoint)
            .unwrap_or_else(|| endpoint.host_str().unwrap_or_default().to_string()),
        (None, Auth::SharedKey { .. }) => {
            return Err(format!(
                "a shared key needs the account name: set {ACCOUNT} (or AccountName in \
                 {CONNECTION_STRING})"
            ));
        }
    };
    Ok(Resolved {
        account,
        endpoint,
        endpoint_source,
        auth,
    })
}

/// `AZURE_STORAGE_ACCESS_KEY`, or "the AccountKey of ..." for the connection string.
pub fn describe_key_setting(setting: &str) -> String {
    if setting == CONNECTION_STRING {
        format!("the AccountKey of {CONNECTION_STRING}")
    } else {
        setting.to_string()
    }
}

/// The parts of a connection string the plugin uses
/// (<https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string>).
#[derive(Default)]
struct ConnectionString {
    account: Option<String>,
    account_key: Option<String>,
    sas: Option<String>,
    blob_endpoint: Option<Url>,
    protocol: Option<String>,
    endpoint_suffix: Option<String>,
}

impl ConnectionString {
    fn parse(text: &str) -> Result<ConnectionString, String> {
        let mut cs = ConnectionString::default();
        let mut development = false;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(format!(
                    "{CONNECTION_STRING} is not a connection string (Name=value pairs separated \
                     by ';', e.g. AccountName=...;AccountKey=...)"
                ));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "accountname" => cs.account = Some(check_account(CONNECTION_STRING, value)?),
                "accountkey" => cs.account_key = Some(value.to_string()),
                "sharedaccesssignature" => cs.sas = Some(value.to_string()),
                "blobendpoint" => {
                    cs.blob_endpoint = Some(parse_endpoint(
                        "the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING",
                        value,
                    )?)
                }
                "defaultendpointsprotocol" => match value.to_ascii_lowercase().as_str() {
                    p @ ("http" | "https") => cs.protocol = Some(p.to_string()),
                    _ => {
                        return Err(format!(
                            "DefaultEndpointsProtocol in {CONNECTION_STRING} must be http or https"
                        ));
                    }
                },
                "endpointsuffix" => {
                    cs.endpoint_suffix = Some(check_suffix(
                        "EndpointSuffix in AZURE_STORAGE_CONNECTION_STRING",
                        value,
                    )?)
                }
                "usedevelopmentstorage" => development = value.eq_ignore_ascii_case("true"),
                // Queue, table and file endpoints, proxies: not for blobs.
                _ => {}
            }
        }
        if development {
            cs.account.get_or_insert_with(|| DEV_ACCOUNT.to_string());
            cs.account_key.get_or_insert_with(|| DEV_KEY.to_string());
            cs.blob_endpoint
                .get_or_insert_with(|| Url::parse(DEV_ENDPOINT).expect("a valid URL"));
        }
        Ok(cs)
    }
}

/// An account key: base64, read leniently (unused bits of the last
/// character need not be zero, as in the .NET and Python SDKs), then handed
/// to object_store in canonical form.
fn parse_key(key: &str) -> Option<AzureAccessKey> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = LENIENT.decode(key.trim()).ok().filter(|b| !b.is_empty())?;
    AzureAccessKey::try_new(&base64::prelude::BASE64_STANDARD.encode(bytes)).ok()
}

/// A SAS token's query pairs; a leading `?` is allowed (WAL-G's form).
fn parse_sas(setting: &str, token: &str) -> Result<Vec<(String, String)>, String> {
    let what = if setting == CONNECTION_STRING {
        format!("the SharedAccessSignature of {CONNECTION_STRING}")
    } else {
        setting.to_string()
    };
    let pairs = split_sas(token.trim_start_matches('?')).map_err(|_| {
        format!("{what} is not a SAS token (a query string such as sv=...&sp=rwl&sig=...)")
    })?;
    if !pairs.iter().any(|(k, _)| k == "sig") {
        return Err(format!(
            "{what} has no signature (sig=...); copy the whole SAS token"
        ));
    }
    Ok(pairs)
}

/// `<protocol>://<account>.blob.<suffix>`.
fn default_endpoint(protocol: &str, account: &str, suffix: &str) -> Url {
    Url::parse(&format!("{protocol}://{account}.blob.{suffix}"))
        .expect("account names and suffixes are checked to make a valid host")
}

/// The account of `https://<account>.blob.<suffix>`.
fn account_from_host(endpoint: &Url) -> Option<String> {
    let host = endpoint.host_str()?;
    let (account, rest) = host.split_once('.')?;
    rest.starts_with("blob.").then(|| account.to_string())
}

/// A setting's value; an empty or blank one counts as unset (an exported but
/// empty environment variable).
fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Storage account names: 3 to 24 lower-case letters and digits (Azure's
/// rule; Azurite's `devstoreaccount1` follows it too).
fn check_account(setting: &str, account: &str) -> Result<String, String> {
    let valid = (3..=24).contains(&account.len())
        && account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(account.to_string())
    } else {
        Err(format!(
            "{setting}: {account:?} is not a storage account name (3 to 24 lower-case letters \
             and digits)"
        ))
    }
}

fn check_suffix(setting: &str, suffix: &str) -> Result<String, String> {
    let suffix = suffix.trim_matches('.');
    let valid = !suffix.is_empty()
        && suffix.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(suffix.to_ascii_lowercase())
    } else {
        Err(format!(
            "{setting}={suffix:?} is not a DNS suffix such as core.windows.net"
        ))
    }
}

/// WAL-G's `AZURE_ENVIRONMENT_NAME`.
fn environment_suffix(name: &str) -> Result<&'static str, String> {
    match name {
        "AzurePublicCloud" => Ok("core.windows.net"),
        "AzureUSGovernmentCloud" => Ok("core.usgovcloudapi.net"),
        "AzureChinaCloud" => Ok("core.chinacloudapi.cn"),
        "AzureGermanCloud" => Ok("core.cloudapi.de"),
        other => Err(format!(
            "{ENVIRONMENT_NAME}={other:?}: write AzurePublicCloud, AzureUSGovernmentCloud, \
             AzureChinaCloud or AzureGermanCloud (or set {ENDPOINT_SUFFIX})"
        )),
    }
}

/// A blob service URL: http(s), a host, an optional path (Azurite's
/// `/devstoreaccount1`), nothing else. The trailing `/` is dropped.
fn parse_endpoint(setting: &str, value: &str) -> Result<Url, String> {
    const FORM: &str =
        "write it as https://<account>.blob.core.windows.net or http://host:port/<account>";
    let mut url = Url::parse(value).map_err(|e| format!("{setting} is not a URL ({e}); {FORM}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{setting} is not an http(s) URL with a host; {FORM}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{setting} must not carry a user name or password; {FORM}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{setting} has a query or fragment (a SAS token goes in {SAS_TOKEN}); {FORM}"
        ));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "a2V5LWJ5dGVzLWZvci10ZXN0cw==";

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings(plain: &[(&str, &str)]) -> Settings {
        Settings::parse("azure://archive/db1", &pairs(plain)).unwrap()
    }

    #[test]
    fn wal_g_settings_name_the_public_endpoint() {
        let s = settings(&[(ACCOUNT, "walship")]);
        assert_eq!(
            s.planned_endpoint().unwrap().as_str(),
            "https://walship.blob.core.windows.net/"
        );
        let r = resolve(&s, &pairs(&[(ACCESS_KEY, KEY_B64)])).unwrap();
        assert_eq!(r.account, "walship");
        assert_eq!(r.endpoint.host_str(), Some("walship.blob.core.windows.net"));
        assert!(matches!(
            r.auth,
            Auth::SharedKey {
                setting: ACCESS_KEY,
                ..
            }
        ));

        let s = settings(&[(ACCOUNT, "walship"), (ENVIRONMENT_NAME, "AzureChinaCloud")]);
        assert_eq!(
            s.planned_endpoint().unwrap().host_str(),
            Some("walship.blob.core.chinacloudapi.cn")
        );
        let s = settings(&[(ACCOUNT, "walship"), (ENDPOINT_SUFFIX, "core.example.net")]);
        assert_eq!(
            s.planned_endpoint().unwrap().host_str(),
            Some("walship.blob.core.example.net")
        );
    }

    #[test]
    fn the_cli_key_name_works_and_the_wal_g_one_wins() {
        let s = settings(&[(ACCOUNT, "walship")]);
        let r = resolve(&s, &pairs(&[(KEY, KEY_B64)])).unwrap();
        assert!(matches!(r.auth, Auth::SharedKey { setting: KEY, .. }));
        let r = resolve(&s, &pairs(&[(KEY, "bad!"), (ACCESS_KEY, KEY_B64)])).unwrap();
        assert!(matches!(
            r.auth,
            Auth::SharedKey {
                setting: ACCESS_KEY,
                ..
            }
        ));
    }

    #[test]
    fn a_connection_string_names_account_key_and_endpoint() {
        let s = settings(&[]);
        assert_eq!(s.planned_endpoint(), None);
        let cs = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY_B64};\
             BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;QueueEndpoint=http://x"
        );
        let r = resolve(&s, &pairs(&[(CONNECTION_STRING, &cs)])).unwrap();
        assert_eq!(r.account, "devstoreaccount1");
        assert_eq!(
            r.endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(r.endpoint_source, CONNECTION_STRING);
        assert!(matches!(
            r.auth,
            Auth::SharedKey {
                setting: CONNECTION_STRING,
                ..
            }
        ));

        // The same endpoint in the plain setting is fine; another is refused.
        let s = settings(&[(SERVICE_ENDPOINT, "http://127.0.0.1:10000/devstoreaccount1")]);
        assert_eq!(
            resolve(&s, &pairs(&[(CONNECTION_STRING, &cs)]))
                .unwrap()
                .endpoint_source,
            SERVICE_ENDPOINT
        );
        let s = settings(&[(SERVICE_ENDPOINT, "http://127.0.0.1:10001/devstoreaccount1")]);
        let err = resolve(&s, &pairs(&[(CONNECTION_STRING, &cs)])).unwrap_err();
        assert!(err.contains("differ"), "{err}");
        assert!(!err.contains(KEY_B64), "{err}");
    }

    #[test]
    fn a_connection_string_without_endpoint_uses_protocol_and_suffix() {
        let cs = format!(
            "DefaultEndpointsProtocol=https;AccountName=walship;AccountKey={KEY_B64};\
             EndpointSuffix=core.usgovcloudapi.net"
        );
        let r = resolve(&settings(&[]), &pairs(&[(CONNECTION_STRING, &cs)])).unwrap();
        assert_eq!(
            r.endpoint.as_str(),
            "https://walship.blob.core.usgovcloudapi.net/"
        );
    }

    #[test]
    fn development_storage_is_azurite() {
        let r = resolve(
            &settings(&[]),
            &pairs(&[(CONNECTION_STRING, "UseDevelopmentStorage=true")]),
        )
        .unwrap();
        assert_eq!(r.account, DEV_ACCOUNT);
        assert_eq!(r.endpoint.as_str(), DEV_ENDPOINT);
    }

    #[test]
    fn keys_are_read_leniently() {
        // "Kw==" is canonical for 0x2b; "Kx==" has a non-zero unused bit.
        assert_eq!(parse_key("Kw=="), parse_key("Kx=="));
        assert_eq!(parse_key("Kw=="), parse_key("Kw"));
        assert!(parse_key("").is_none());
        assert!(parse_key("not base64!").is_none());
    }

    #[test]
    fn sas_tokens_with_or_without_question_mark() {
        let s = settings(&[(ACCOUNT, "walship")]);
        for token in [
            "?sv=2023-11-03&sp=rl&sig=abc%2Bdef%3D",
            "sv=2023-11-03&sp=rl&sig=abc",
        ] {
            let r = resolve(&s, &pairs(&[(SAS_TOKEN, token)])).unwrap();
            assert_eq!(r.auth.sas_permissions(), Some("rl"));
        }
        let err = resolve(&s, &pairs(&[(SAS_TOKEN, "sv=2023-11-03&sp=rl")])).unwrap_err();
        assert!(err.contains("no signature"), "{err}");
        // A key wins over a SAS token.
        let r = resolve(&s, &pairs(&[(SAS_TOKEN, "sp=r&sig=x"), (KEY, KEY_B64)])).unwrap();
        assert!(matches!(r.auth, Auth::SharedKey { .. }));
    }

    #[test]
    fn sas_without_account_names_the_store_by_host() {
        let s = settings(&[(SERVICE_ENDPOINT, "https://walship.blob.core.windows.net")]);
        let r = resolve(&s, &pairs(&[(SAS_TOKEN, "sp=r&sig=x")])).unwrap();
        assert_eq!(r.account, "walship");
    }

    #[test]
    fn refusals_name_the_setting_and_never_the_secret() {
        let s = settings(&[(ACCOUNT, "walship")]);
        let err = resolve(&s, &[]).unwrap_err();
        assert!(err.contains(ACCESS_KEY) && err.contains(SAS_TOKEN), "{err}");
        let err = resolve(&s, &pairs(&[(ACCESS_KEY, "not base64 at all!")])).unwrap_err();
        assert!(
            err.contains(ACCESS_KEY) && !err.contains("not base64 at all"),
            "{err}"
        );
        let err = resolve(&settings(&[]), &pairs(&[(KEY, KEY_B64)])).unwrap_err();
        assert!(err.contains(ACCOUNT), "{err}");
        let err = resolve(
            &settings(&[]),
            &pairs(&[(CONNECTION_STRING, "AccountKey=s3cr3t")]),
        )
        .unwrap_err();
        assert!(err.contains(ACCOUNT) && !err.contains("s3cr3t"), "{err}");
        let err = resolve(&settings(&[]), &pairs(&[(CONNECTION_STRING, "s3cr3t")])).unwrap_err();
        assert!(
            err.contains(CONNECTION_STRING) && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = Settings::parse("azure://archive", &pairs(&[(ACCOUNT, "Bad_Name")])).unwrap_err();
        assert!(err.contains(ACCOUNT), "{err}");
        let err = Settings::parse(
            "azure://archive",
            &pairs(&[(SERVICE_ENDPOINT, "https://x.example/?sv=1&sig=2")]),
        )
        .unwrap_err();
        assert!(err.contains(SAS_TOKEN), "{err}");
        let err =
            Settings::parse("azure://archive", &pairs(&[(ENVIRONMENT_NAME, "Mars")])).unwrap_err();
        assert!(err.contains("AzurePublicCloud"), "{err}");
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let s = settings(&[(ACCOUNT, "walship")]);
        let r = resolve(&s, &pairs(&[(ACCESS_KEY, KEY_B64)])).unwrap();
        let text = format!("{r:?}");
        assert!(!text.contains(KEY_B64) && !text.contains("107"), "{text}");
    }
}
