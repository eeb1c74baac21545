//! `walship plugin inspect <file|scheme>`: what a plugin is and what it claims.

use super::{Context, EXIT_FAILURE, Failure};
use crate::storage::{ConfigKind, Features};

pub use crate::logging::printable;

/// `printable` of each, joined.
pub fn printable_list<S: AsRef<str>>(items: &[S], separator: &str) -> String {
    items
        .iter()
        .map(|s| printable(s.as_ref()))
        .collect::<Vec<_>>()
        .join(separator)
}

pub async fn run(ctx: &Context, plugin: &str) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("plugin inspect {plugin}: {m}"));
    let (loaded, path) = super::load_named(ctx, plugin).map_err(|e| fail(format!("{e:#}")))?;
    let mut info = loaded.info().await.map_err(|e| fail(e.to_string()))?;
    info = printable_info(info);
    println!("file:            {}", path.display());
    println!("sha256:          {}", loaded.digest.0);
    println!("backend:         {}", info.backend);
    println!("plugin version:  {}", info.plugin_version);
    println!("contract:        {}", printable(&loaded.contract()));
    println!("schemes:         {}", info.schemes.join(", "));
    println!("features:        {}", info.features.names().join(", "));
    println!("create-only:     {}", create_guarantee(info.features));
    let l = info.limits;
    if info.features.multipart {
        println!(
            "limits:          single put ≤ {} B, parts {}–{} B, ≤ {} parts, ≤ {} keys per delete",
            l.max_single_put, l.min_part_size, l.max_part_size, l.max_parts, l.max_delete_batch
        );
    } else {
        println!(
            "limits:          single put ≤ {} B (no multipart), ≤ {} keys per delete",
            l.max_single_put, l.max_delete_batch
        );
    }
    if info.config_keys.is_empty() {
        println!("settings:        (none)");
    }
    for k in &info.config_keys {
        println!(
            "setting:         {}{} — {}",
            k.name,
            match k.kind {
                ConfigKind::Plain => "",
                ConfigKind::Secret => " (secret)",
                ConfigKind::SecretFile => " (path of a secret file the host reads)",
            },
            k.description
        );
    }
    let caps = &info.capabilities;
    let secrets: Vec<&str> = info
        .config_keys
        .iter()
        .filter(|k| k.kind != ConfigKind::Plain)
        .map(|k| k.name.as_str())
        .collect();
    println!(
        "declares:        network: {}",
        describe_network(&caps.network)
    );
    println!(
        "                 directory: {}",
        if caps.directory { "yes" } else { "no" }
    );
    println!("                 secrets: {}", list_or_none(&secrets));
    let refused = loaded.refused_settings(&info);
    for (name, why) in &refused {
        println!(
            "                 not handed over: {name}: {why} (allow it by name with WALSHIP_PLUGIN_SETTINGS)"
        );
    }
    println!("compiled:        {:?}", loaded.load_path);

    // What this plugin offers as configured here: a configuration can take
    // capabilities away (an S3-compatible endpoint that may ignore
    // If-None-Match is create-only but not atomic).
    if let Some(prefix) = &ctx.settings.prefix
        && info
            .schemes
            .iter()
            .any(|s| super::scheme_of(prefix) == s.as_str())
    {
        use crate::storage::ObjectStore;
        let store = loaded
            .open(prefix, |info| ctx.plugin_config(info))
            .await
            .map_err(|e| fail(format!("opening {prefix}: {e}")))?;
        let f = store.info().features;
        let grants = store.grants();
        let endpoints: Vec<String> = grants
            .endpoints
            .iter()
            .map(|e| printable(&e.to_string()))
            .collect();
        let directories: Vec<String> = grants
            .directories
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    printable(&d.path.display().to_string()),
                    if d.writable {
                        "read-write"
                    } else {
                        "read-only"
                    }
                )
            })
            .collect();
        let handed: Vec<String> = store.secret_names().map(printable).collect();
        println!("configured for:  {prefix}");
        println!("  features:      {}", f.names().join(", "));
        println!("  create-only:   {}", create_guarantee(f));
        println!("  granted:       endpoints: {}", list_or_none(&endpoints));
        println!(
            "                 directories: {}",
            list_or_none(&directories)
        );
        println!(
            "                 secrets handed over: {}",
            list_or_none(&handed)
        );
    }
    Ok(())
}

/// Every plugin-supplied string of `info` made printable (see `printable`).
pub fn printable_info(mut info: crate::storage::BackendInfo) -> crate::storage::BackendInfo {
    info.backend = printable(&info.backend);
    info.plugin_version = printable(&info.plugin_version);
    info.schemes = info.schemes.iter().map(|s| printable(s)).collect();
    for key in &mut info.config_keys {
        key.name = printable(&key.name);
        key.description = printable(&key.description);
    }
    info.capabilities.network = info
        .capabilities
        .network
        .iter()
        .map(|p| printable(p))
        .collect();
    info
}

fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(|s| s.as_ref())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn describe_network(patterns: &[String]) -> String {
    if patterns.is_empty() {
        return "none".into();
    }
    patterns
        .iter()
        .map(|p| match p.as_str() {
            "configured" => "configured (hosts named in the prefix or settings)".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn create_guarantee(f: Features) -> &'static str {
    if f.atomic_create_only {
        "atomic (the store refuses a second create)"
    } else if f.create_only {
        "asked for but not verified to be enforced: walship checks before writing and reads each object back after (a racing writer can slip in between)"
    } else {
        "none: walship checks before writing and reads back after (a racing writer can slip in between)"
    }
}
