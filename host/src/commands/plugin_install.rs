//! `walship plugin install <file.wasm>` and `walship plugin list`.

use std::path::Path;

use super::plugin_inspect::{printable, printable_list};
use super::{Context, EXIT_FAILURE, Failure};
use crate::plugin::Plugin;
use crate::plugin_registry::{self, InstallRecord};

/// Validates a plugin (it must link against this host's contract and answer
/// `info`), precompiles it into the cache, and installs it into the first
/// plugin directory, where the schemes it declares will find it.
pub async fn install(ctx: &Context, file: &Path, force: bool) -> Result<(), Failure> {
    let fail = |m: String| {
        Failure::new(
            EXIT_FAILURE,
            format!("plugin install {}: {m}", file.display()),
        )
    };
    let dir = ctx
        .settings
        .plugin_dirs
        .first()
        .ok_or_else(|| fail("no plugin directory: set WALSHIP_PLUGIN_DIR (or HOME)".into()))?;
    // Loading links the component against this host's WIT (a plugin built
    // for another contract version fails here) and fills the cache.
    let loaded = Plugin::load(file, ctx.runtime_options()).map_err(|e| fail(format!("{e:#}")))?;
    let info = loaded.info().await.map_err(|e| fail(e.to_string()))?;
    let valid_name = !info.backend.is_empty()
        && info
            .backend
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_name {
        return Err(fail(format!(
            "backend name {:?} must be lower-case letters, digits and '-'",
            info.backend
        )));
    }
    if info.schemes.is_empty() {
        return Err(fail("the plugin declares no URL scheme".into()));
    }
    // Installed plugins are looked up first: serving a scheme a bundled
    // plugin serves replaces it for every prefix of that scheme.
    let shadowed = ctx
        .settings
        .plugin_dirs
        .last()
        .filter(|bundled| *bundled != dir)
        .map(|bundled| plugin_registry::shadowed_bundled(bundled, &info.schemes))
        .unwrap_or_default();
    let described: Vec<String> = shadowed
        .iter()
        .map(|(scheme, path)| format!("{scheme}:// (bundled {})", path.display()))
        .collect();
    if !shadowed.is_empty() && !force {
        return Err(fail(format!(
            "it serves {}, which a bundled plugin serves; it would be used in its place for every such prefix. Add --force if that is what you want",
            described.join(", ")
        )));
    }
    let record = InstallRecord {
        backend: info.backend.clone(),
        plugin_version: info.plugin_version.clone(),
        contract: loaded.contract(),
        schemes: info.schemes.clone(),
        sha256: loaded.digest.0.clone(),
        file: format!("{}.wasm", info.backend),
        installed_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        settings: Some(crate::plugin::describe_declared(&info.config_keys)),
    };
    let target = plugin_registry::install(dir, file, &record).map_err(|e| fail(e.to_string()))?;
    println!(
        "installed {} {} ({}) serving {} as {}",
        record.backend,
        printable(&record.plugin_version),
        printable(&record.contract),
        record
            .schemes
            .iter()
            .map(|s| format!("{}://", printable(s)))
            .collect::<Vec<_>>()
            .join(", "),
        target.display()
    );
    println!("sha256 {}", record.sha256);
    for shadow in &described {
        println!("shadows {shadow}: prefixes of that scheme now use this plugin");
    }
    let caps = &info.capabilities;
    println!(
        "asks for: network: {}; directory access: {}",
        if caps.network.is_empty() {
            "none".to_string()
        } else {
            printable_list(&caps.network, ", ")
        },
        if caps.directory { "yes" } else { "no" }
    );
    print_settings(&loaded, &info);
    Ok(())
}

/// The settings the plugin declares (recorded: a plugin declaring others
/// later is refused), and those it will not be handed unless the operator
/// allows them by name.
fn print_settings(loaded: &Plugin, info: &crate::storage::BackendInfo) {
    let declared = crate::plugin::describe_declared(&info.config_keys);
    if declared.is_empty() {
        println!("settings: none");
        return;
    }
    println!("settings: {}", printable_list(&declared, ", "));
    let refused = loaded.refused_settings(info);
    for (described, key) in declared.iter().zip(&info.config_keys) {
        if let Some((_, why)) = refused.iter().find(|(name, _)| *name == key.name) {
            println!(
                "  {}: not handed over: {why} (allow it by name with WALSHIP_PLUGIN_SETTINGS)",
                printable(described)
            );
        }
    }
}

/// Every plugin in the plugin directories, in lookup order: installed ones
/// from their records, bundled ones by loading them.
pub async fn list(ctx: &Context) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("plugin list: {m}"));
    println!(
        "{:<10} {:<9} {:<22} {:<14} {:<9} {:<16} file",
        "backend", "version", "contract", "schemes", "source", "sha256"
    );
    let mut seen = std::collections::BTreeSet::new();
    for dir in &ctx.settings.plugin_dirs {
        let records = match plugin_registry::records(dir) {
            Err(e @ plugin_registry::RegistryError::Unreadable { .. })
                if Some(dir) != ctx.settings.plugin_dirs.last() =>
            {
                println!("{:<10} skipped: {e}", "?");
                continue;
            }
            other => other.map_err(|e| fail(e.to_string()))?,
        };
        let mut recorded_files = std::collections::BTreeSet::new();
        for (_, r) in &records {
            recorded_files.insert(r.file.clone());
            let shadowed = !seen.insert(r.backend.clone());
            println!(
                "{:<10} {:<9} {:<22} {:<14} {:<9} {:<16} {}{}",
                printable(&r.backend),
                printable(&r.plugin_version),
                printable(&r.contract),
                printable_list(&r.schemes, ","),
                "installed",
                printable(r.sha256.get(..16).unwrap_or(&r.sha256)),
                dir.join(&r.file).display(),
                if shadowed { " (shadowed)" } else { "" }
            );
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                !recorded_files.contains(&name)
            })
            .collect();
        files.sort();
        if Some(dir) != ctx.settings.plugin_dirs.last() {
            // Outside the bundled directory only installed plugins are used.
            for path in files {
                println!(
                    "{:<10} ignored: no install record, never used ({})",
                    "?",
                    path.display()
                );
            }
            continue;
        }
        for path in files {
            match Plugin::load(&path, ctx.runtime_options()) {
                Ok(loaded) => match loaded.info().await {
                    Ok(info) => {
                        let shadowed = !seen.insert(info.backend.clone());
                        println!(
                            "{:<10} {:<9} {:<22} {:<14} {:<9} {:<16} {}{}",
                            printable(&info.backend),
                            printable(&info.plugin_version),
                            printable(&loaded.contract()),
                            printable_list(&info.schemes, ","),
                            "bundled",
                            &loaded.digest.0[..16],
                            path.display(),
                            if shadowed { " (shadowed)" } else { "" }
                        );
                    }
                    Err(e) => println!(
                        "{:<10} unusable: {} ({})",
                        "?",
                        printable(&e.to_string()),
                        path.display()
                    ),
                },
                Err(e) => println!("{:<10} unusable: {e:#} ({})", "?", path.display()),
            }
        }
    }
    Ok(())
}
