//! `leak-settings`: asking for the operator's settings it has no business
//! with. The plugin declares names that belong to walship itself, to
//! PostgreSQL, to the process, to the bundled S3 backend, and a secret file
//! the operator never listed; a host that hands over whatever a plugin
//! declares gives it all of them (with `WALSHIP_CONFIG` as a secret file:
//! the whole settings file).

use crate::probes::Probes;
use crate::walship::storage::types::{ConfigKey, ConfigKind};

use crate::walship::storage::types::Endpoint;

/// The setting that makes `plan` ask for a second directory (grants.rs).
pub const EXTRA_DIR: &str = "HOSTILE_EXTRA_DIR";
/// The endpoint the operator configured (a URL): "configured" in the
/// manifest means its host.
pub const ENDPOINT: &str = "HOSTILE_ENDPOINT";
/// The endpoint `plan` asks for (`host:port`, plain http), configured or
/// not. Deliberately not a URL: a URL in a setting is the operator naming
/// an endpoint, and this one stands for what a plugin makes up itself.
pub const ASK_ENDPOINT: &str = "HOSTILE_ASK_ENDPOINT";

/// Text that, printed raw, erases its line and forges others.
pub const SPOOF: &str = "nothing\x1b[1A\x1b[2K\rsettings: none\nsha256 0000000000000000";

/// `host:port` as a plain-http endpoint.
pub fn endpoint_of(authority: &str) -> Option<Endpoint> {
    let (host, port) = authority.rsplit_once(':')?;
    Some(Endpoint {
        scheme: "http".to_string(),
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

/// Names the plugin asks for that no third-party plugin is entitled to
/// unless the operator allows them by name.
const GREEDY: &[(&str, ConfigKind)] = &[
    ("AWS_SECRET_ACCESS_KEY", ConfigKind::Secret),
    ("PGPASSWORD", ConfigKind::Secret),
    ("WALSHIP_CONFIG", ConfigKind::SecretFile),
    ("WALG_LIBSODIUM_KEY", ConfigKind::Secret),
    ("HOME", ConfigKind::Plain),
    ("HOSTILE_TOKEN_FILE", ConfigKind::SecretFile),
];

pub fn declared() -> Vec<ConfigKey> {
    let plain = |name: &str, description: &str| ConfigKey {
        name: name.to_string(),
        kind: ConfigKind::Plain,
        description: description.to_string(),
    };
    let mut keys = vec![
        plain(
            EXTRA_DIR,
            "a second directory to ask for (the grant-widening attacks)",
        ),
        plain(ENDPOINT, "the endpoint the operator configured (a URL)"),
        plain(ASK_ENDPOINT, "the endpoint plan asks for (host:port)"),
        // What an operator reads must be what the plugin said, not what its
        // escape sequences make the terminal show.
        plain("HOSTILE_SPOOF", SPOOF),
        // A credential of its own: it may have it, but never send it over
        // plain http beyond this machine.
        ConfigKey {
            name: "HOSTILE_API_KEY".to_string(),
            kind: ConfigKind::Secret,
            description: "a credential of its own".to_string(),
        },
    ];
    keys.extend(GREEDY.iter().map(|(name, kind)| ConfigKey {
        name: name.to_string(),
        kind: *kind,
        description: "not this plugin's to have".to_string(),
    }));
    keys
}

/// Every greedy name it received, with the first bytes of the value.
pub fn leak(received: &[(String, String)]) -> Probes {
    let mut probes = Probes::default();
    for (name, _) in GREEDY {
        match received.iter().find(|(n, _)| n == name) {
            Some((_, value)) => probes.escaped(format!(
                "received {name}={:?}",
                value.chars().take(80).collect::<String>()
            )),
            None => probes.held(format!("{name}: not handed over")),
        }
    }
    probes
}
