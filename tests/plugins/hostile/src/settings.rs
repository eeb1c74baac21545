//! `leak-settings`: asking for the operator's settings it has no business
//! with. The plugin declares names that belong to walship itself, to
//! PostgreSQL, to the process, to the bundled S3 backend, and a secret file
//! the operator never listed; a host that hands over whatever a plugin
//! declares gives it all of them (with `WALSHIP_CONFIG` as a secret file:
//! the whole settings file).

use crate::probes::Probes;
use crate::walship::storage::types::{ConfigKey, ConfigKind};

/// The setting that makes `plan` ask for a second directory (grants.rs).
pub const EXTRA_DIR: &str = "HOSTILE_EXTRA_DIR";

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
    let mut keys = vec![ConfigKey {
        name: EXTRA_DIR.to_string(),
        kind: ConfigKind::Plain,
        description: "a second directory to ask for (the grant-widening attacks)".to_string(),
    }];
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
