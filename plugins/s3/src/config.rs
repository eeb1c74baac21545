//! The plugin's settings, parsed once from what the host hands over.
//!
//! Names and meanings follow WAL-G and the AWS SDKs (see `info.rs`). Every
//! refusal names the setting and what a valid value looks like; secrets are
//! never quoted.

use std::fmt;

use url::Url;

use crate::prefix::{self, Location};

/// A bucket's region when none is configured (as in the AWS SDKs).
const DEFAULT_REGION: &str = "us-east-1";
/// `AWS_ROLE_SESSION_NAME` when not set.
const DEFAULT_SESSION_NAME: &str = "walship";

#[derive(Clone, Debug)]
pub struct Settings {
    pub location: Location,
    pub region: String,
    /// A custom S3 endpoint (S3-compatible store, VPC endpoint), if any.
    pub s3_endpoint: Option<CustomEndpoint>,
    /// A custom STS endpoint for web identity, if any.
    pub sts_endpoint: Option<CustomEndpoint>,
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub role: Option<Role>,
    pub storage_class: Option<String>,
    pub encryption: Option<Encryption>,
    pub if_none_match: IfNoneMatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomEndpoint {
    pub url: Url,
    /// The setting it came from, for messages.
    pub setting: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub arn: String,
    pub session_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (`AES256`).
    S3Managed,
    /// SSE-KMS, with the account's default `aws/s3` key when `key_id` is `None`.
    Kms { key_id: Option<String> },
}

/// Whether the store honours `If-None-Match: *` on writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfNoneMatch {
    /// A create-only write of an existing key fails (AWS S3 since 2024).
    Enforced,
    /// The store may ignore the header and overwrite; the host then verifies
    /// create-only writes itself.
    Unverified,
}

impl Settings {
    /// Parses the plain settings (`config`) for the store at `prefix`.
    pub fn parse(prefix: &str, config: &[(String, String)]) -> Result<Settings, String> {
        let location = prefix::parse(prefix)?;
        let get = |name: &str| lookup(config, name);

        let region = match get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
            Some(region) => check_region(region)?.to_string(),
            None => DEFAULT_REGION.to_string(),
        };
        // The AWS SDKs' service-specific setting wins over WAL-G's, which wins
        // over the SDKs' general one.
        let s3_endpoint = first_endpoint(
            config,
            &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT", "AWS_ENDPOINT_URL"],
        )?;
        let sts_endpoint = first_endpoint(config, &["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"])?;
        let force_path_style = match get("AWS_S3_FORCE_PATH_STYLE") {
            Some(value) => parse_bool("AWS_S3_FORCE_PATH_STYLE", value)?,
            None => false,
        };
        let access_key_id = get("AWS_ACCESS_KEY_ID")
            .map(|id| check_token("AWS_ACCESS_KEY_ID", id))
            .transpose()?;
        let role = get("AWS_ROLE_ARN")
            .map(|arn| parse_role(arn, get("AWS_ROLE_SESSION_NAME")))
            .transpose()?;
        let storage_class = get("WALG_S3_STORAGE_CLASS")
            .map(check_storage_class)
            .transpose()?;
        let encryption = parse_encryption(get("WALG_S3_SSE"), get("WALG_S3_SSE_KMS_ID"))?;
        let if_none_match = match get("WALSHIP_S3_IF_NONE_MATCH") {
            Some(value) if value.eq_ignore_ascii_case("enforced") => IfNoneMatch::Enforced,
            Some(value) if value.eq_ignore_ascii_case("unverified") => IfNoneMatch::Unverified,
            Some(value) => {
                return Err(format!(
                    "WALSHIP_S3_IF_NONE_MATCH={value:?}: write enforced (the store rejects a \
                     create-only put of an existing key) or unverified"
                ));
            }
            // AWS enforces it; many S3-compatible stores ignore the header.
            None if s3_endpoint.is_some() => IfNoneMatch::Unverified,
            None => IfNoneMatch::Enforced,
        };
        Ok(Settings {
            location,
            region,
            s3_endpoint,
            sts_endpoint,
            force_path_style,
            access_key_id,
            role,
            storage_class,
            encryption,
            if_none_match,
        })
    }

    /// Whether credentials come from STS (no static key configured, a role is).
    pub fn uses_web_identity(&self) -> bool {
        self.access_key_id.is_none() && self.role.is_some()
    }
}

/// How requests are signed.
pub enum Credentials {
    Static {
        key_id: String,
        secret_key: String,
        session_token: Option<String>,
    },
    WebIdentity {
        role: Role,
        token: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Static { key_id, .. } => write!(f, "static key {key_id}"),
            Credentials::WebIdentity { role, .. } => write!(f, "web identity for {}", role.arn),
        }
    }
}

/// The credentials `settings` and the secrets the host handed over make up.
pub fn credentials(
    settings: &Settings,
    secrets: &[(String, String)],
) -> Result<Credentials, String> {
    let secret = |name: &str| lookup(secrets, name).map(str::to_string);
    let secret_key = secret("AWS_SECRET_ACCESS_KEY");
    let session_token = secret("AWS_SESSION_TOKEN");
    let token = secret("AWS_WEB_IDENTITY_TOKEN_FILE");
    match (&settings.access_key_id, secret_key) {
        (Some(key_id), Some(secret_key)) => Ok(Credentials::Static {
            key_id: key_id.clone(),
            secret_key,
            session_token,
        }),
        (Some(_), None) => Err(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set \
                                both (or neither, to use AWS_ROLE_ARN and \
                                AWS_WEB_IDENTITY_TOKEN_FILE)"
                .to_string(),
        ),
        (None, Some(_)) => {
            Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both".to_string())
        }
        (None, None) if session_token.is_some() => Err("AWS_SESSION_TOKEN is set but \
                                                        AWS_ACCESS_KEY_ID and \
                                                        AWS_SECRET_ACCESS_KEY are not; a session \
                                                        token only goes with them"
            .to_string()),
        (None, None) => match (&settings.role, token) {
            (Some(role), Some(token)) => Ok(Credentials::WebIdentity {
                role: role.clone(),
                token,
            }),
            (Some(_), None) => Err(
                "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not; \
                                    a web identity needs both"
                    .to_string(),
            ),
            (None, Some(_)) => Err(
                "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; \
                                    a web identity needs both"
                    .to_string(),
            ),
            (None, None) => Err("no S3 credentials: set AWS_ACCESS_KEY_ID and \
                                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary \
                                 keys), or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE"
                .to_string()),
        },
    }
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

fn first_endpoint(
    config: &[(String, String)],
    settings: &[&'static str],
) -> Result<Option<CustomEndpoint>, String> {
    for &setting in settings {
        if let Some(value) = lookup(config, setting) {
            return parse_endpoint(setting, value).map(Some);
        }
    }
    Ok(None)
}

fn parse_endpoint(setting: &'static str, value: &str) -> Result<CustomEndpoint, String> {
    const FORM: &str = "write it as https://host[:port] or http://host[:port]";
    let url =
        Url::parse(value).map_err(|e| format!("{setting}={value:?} is not a URL ({e}); {FORM}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{setting}={value:?} is not an http(s) URL with a host; {FORM}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{setting} must not carry a user name or password; {FORM}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{setting}={value:?} has a query or fragment; {FORM}"
        ));
    }
    Ok(CustomEndpoint { url, setting })
}

/// Region names become part of host names (`s3.<region>.amazonaws.com`).
fn check_region(region: &str) -> Result<&str, String> {
    if region
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(region)
    } else {
        Err(format!(
            "AWS_REGION={region:?} is not a region name such as eu-west-1"
        ))
    }
}

/// Go's `strconv.ParseBool`, which WAL-G uses for its flags.
fn parse_bool(setting: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{setting}={value:?}: write true or false")),
    }
}

fn check_token(setting: &str, value: &str) -> Result<String, String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{setting} contains white space"));
    }
    Ok(value.to_string())
}

fn parse_role(arn: &str, session_name: Option<&str>) -> Result<Role, String> {
    if !arn.starts_with("arn:") || arn.chars().any(char::is_whitespace) {
        return Err(format!(
            "AWS_ROLE_ARN={arn:?} is not a role ARN such as arn:aws:iam::123456789012:role/walship"
        ));
    }
    let session_name = session_name.unwrap_or(DEFAULT_SESSION_NAME);
    // STS's rule for RoleSessionName.
    let valid = (2..=64).contains(&session_name.len())
        && session_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !valid {
        return Err(format!(
            "AWS_ROLE_SESSION_NAME={session_name:?}: 2 to 64 letters, digits or _+=,.@-"
        ));
    }
    Ok(Role {
        arn: arn.to_string(),
        session_name: session_name.to_string(),
    })
}

fn check_storage_class(class: &str) -> Result<String, String> {
    if class
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(class.to_string())
    } else {
        Err(format!(
            "WALG_S3_STORAGE_CLASS={class:?} is not a storage class such as STANDARD, \
             STANDARD_IA or INTELLIGENT_TIERING"
        ))
    }
}

fn parse_encryption(sse: Option<&str>, kms_id: Option<&str>) -> Result<Option<Encryption>, String> {
    let kms_without_kms = || {
        Err(
            "WALG_S3_SSE_KMS_ID is set but WALG_S3_SSE is not aws:kms; a KMS key only applies \
             to WALG_S3_SSE=aws:kms"
                .to_string(),
        )
    };
    match sse {
        Some("aws:kms") => Ok(Some(Encryption::Kms {
            key_id: kms_id.map(str::to_string),
        })),
        _ if kms_id.is_some() => kms_without_kms(),
        None => Ok(None),
        Some("AES256") => Ok(Some(Encryption::S3Managed)),
        Some(other) => Err(format!(
            "WALG_S3_SSE={other:?}: write AES256 (SSE-S3) or aws:kms (SSE-KMS)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::parse("s3://bucket/path", &config(pairs))
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.s3_endpoint, None);
        assert!(!s.force_path_style);
        assert_eq!(s.if_none_match, IfNoneMatch::Enforced);
        assert_eq!(s.encryption, None);
        assert_eq!(s.storage_class, None);
    }

    #[test]
    fn region_from_either_setting() {
        assert_eq!(
            parse(&[("AWS_DEFAULT_REGION", "eu-west-1")])
                .unwrap()
                .region,
            "eu-west-1"
        );
        let both = parse(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_REGION", "ap-south-1"),
        ]);
        assert_eq!(both.unwrap().region, "ap-south-1");
        assert!(
            parse(&[("AWS_REGION", "eu west")])
                .unwrap_err()
                .contains("AWS_REGION")
        );
    }

    #[test]
    fn endpoint_precedence() {
        let endpoint = |pairs: &[(&str, &str)]| {
            parse(pairs)
                .unwrap()
                .s3_endpoint
                .map(|e| (e.setting, e.url.host_str().unwrap().to_string()))
        };
        let all = [
            ("AWS_ENDPOINT_URL", "https://general"),
            ("AWS_ENDPOINT", "https://walg"),
            ("AWS_ENDPOINT_URL_S3", "https://s3only"),
        ];
        assert_eq!(
            endpoint(&all),
            Some(("AWS_ENDPOINT_URL_S3", "s3only".into()))
        );
        assert_eq!(endpoint(&all[..2]), Some(("AWS_ENDPOINT", "walg".into())));
        assert_eq!(
            endpoint(&all[..1]),
            Some(("AWS_ENDPOINT_URL", "general".into()))
        );

        let sts = |pairs: &[(&str, &str)]| {
            parse(pairs)
                .unwrap()
                .sts_endpoint
                .map(|e| e.url.host_str().unwrap().to_string())
        };
        // WAL-G's AWS_ENDPOINT is S3's alone.
        assert_eq!(sts(&all[1..2]), None);
        assert_eq!(sts(&all), Some("general".into()));
        assert_eq!(
            sts(&[
                ("AWS_ENDPOINT_URL", "https://general"),
                ("AWS_ENDPOINT_URL_STS", "https://sts.local")
            ]),
            Some("sts.local".into())
        );
    }

    #[test]
    fn a_custom_endpoint_makes_if_none_match_unverified_unless_enforced() {
        let custom = [("AWS_ENDPOINT", "http://127.0.0.1:9000")];
        assert_eq!(
            parse(&custom).unwrap().if_none_match,
            IfNoneMatch::Unverified
        );
        let enforced = [custom[0], ("WALSHIP_S3_IF_NONE_MATCH", "enforced")];
        assert_eq!(
            parse(&enforced).unwrap().if_none_match,
            IfNoneMatch::Enforced
        );
        let unverified = [("WALSHIP_S3_IF_NONE_MATCH", "Unverified")];
        assert_eq!(
            parse(&unverified).unwrap().if_none_match,
            IfNoneMatch::Unverified
        );
        let bad = parse(&[("WALSHIP_S3_IF_NONE_MATCH", "yes")]).unwrap_err();
        assert!(bad.contains("WALSHIP_S3_IF_NONE_MATCH"), "{bad}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (setting, value) in [
            ("AWS_S3_FORCE_PATH_STYLE", "maybe"),
            ("AWS_ENDPOINT", "not a url"),
            ("AWS_ENDPOINT", "localhost:9000"),
            ("AWS_ENDPOINT_URL", "ftp://host"),
            ("AWS_ENDPOINT_URL_S3", "https://user:pw@host"),
            ("AWS_ENDPOINT_URL_STS", "https://host/?x=1"),
            ("WALG_S3_SSE", "foo"),
            ("WALG_S3_SSE_KMS_ID", "key-1"),
            ("WALG_S3_STORAGE_CLASS", "standard ia"),
            ("AWS_ROLE_ARN", "role/x"),
            ("AWS_ACCESS_KEY_ID", "AKIA EXAMPLE"),
        ] {
            let err = parse(&[(setting, value)]).expect_err(setting);
            assert!(err.contains(setting), "{setting}={value}: {err}");
        }
        let err = parse(&[("WALG_S3_SSE", "AES256"), ("WALG_S3_SSE_KMS_ID", "k")]).unwrap_err();
        assert!(err.contains("WALG_S3_SSE_KMS_ID"), "{err}");
        let err = parse(&[
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ROLE_SESSION_NAME", "x"),
        ])
        .unwrap_err();
        assert!(err.contains("AWS_ROLE_SESSION_NAME"), "{err}");
        let err = Settings::parse("s3:/bucket", &[]).unwrap_err();
        assert!(err.contains("s3://bucket/optional/path"), "{err}");
    }

    #[test]
    fn path_style_and_encryption() {
        assert!(
            parse(&[("AWS_S3_FORCE_PATH_STYLE", "true")])
                .unwrap()
                .force_path_style
        );
        assert!(
            !parse(&[("AWS_S3_FORCE_PATH_STYLE", "0")])
                .unwrap()
                .force_path_style
        );
        assert_eq!(
            parse(&[("WALG_S3_SSE", "AES256")]).unwrap().encryption,
            Some(Encryption::S3Managed)
        );
        assert_eq!(
            parse(&[
                ("WALG_S3_SSE", "aws:kms"),
                ("WALG_S3_SSE_KMS_ID", "arn:aws:kms:k")
            ])
            .unwrap()
            .encryption,
            Some(Encryption::Kms {
                key_id: Some("arn:aws:kms:k".into())
            })
        );
        assert_eq!(
            parse(&[("WALG_S3_STORAGE_CLASS", "STANDARD_IA")])
                .unwrap()
                .storage_class
                .as_deref(),
            Some("STANDARD_IA")
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = parse(&[("AWS_ENDPOINT", ""), ("AWS_REGION", "  ")]).unwrap();
        assert_eq!(s.s3_endpoint, None);
        assert_eq!(s.region, "us-east-1");
    }

    #[test]
    fn credentials_need_their_pairs() {
        let with = |plain: &[(&str, &str)], secrets: &[(&str, &str)]| {
            credentials(&parse(plain).unwrap(), &config(secrets))
        };
        let ok = with(
            &[("AWS_ACCESS_KEY_ID", "AKID")],
            &[("AWS_SECRET_ACCESS_KEY", "s3cr3t")],
        );
        assert!(matches!(ok, Ok(Credentials::Static { ref key_id, .. }) if key_id == "AKID"));
        let role = [("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")];
        let web = with(&role, &[("AWS_WEB_IDENTITY_TOKEN_FILE", "eyJ...")]);
        match web {
            Ok(Credentials::WebIdentity { role, .. }) => assert_eq!(role.session_name, "walship"),
            other => panic!("{other:?}"),
        }
        for (plain, secrets, needle) in [
            (&[][..], &[][..], "no S3 credentials"),
            (
                &[("AWS_ACCESS_KEY_ID", "AKID")][..],
                &[][..],
                "AWS_SECRET_ACCESS_KEY",
            ),
            (
                &[][..],
                &[("AWS_SECRET_ACCESS_KEY", "s")][..],
                "AWS_ACCESS_KEY_ID",
            ),
            (
                &[][..],
                &[("AWS_SESSION_TOKEN", "t")][..],
                "AWS_SESSION_TOKEN",
            ),
            (&role[..], &[][..], "AWS_WEB_IDENTITY_TOKEN_FILE"),
            (
                &[][..],
                &[("AWS_WEB_IDENTITY_TOKEN_FILE", "t")][..],
                "AWS_ROLE_ARN",
            ),
        ] {
            let err = with(plain, secrets).expect_err(needle);
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let creds = Credentials::Static {
            key_id: "AKID".into(),
            secret_key: "s3cr3t".into(),
            session_token: Some("t0ken".into()),
        };
        let text = format!("{creds:?}");
        assert!(
            !text.contains("s3cr3t") && !text.contains("t0ken"),
            "{text}"
        );
    }
}
