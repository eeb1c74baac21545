//! `walship config`: the settings walship would run with and where each
//! came from (a flag, the environment, the settings file, or the default),
//! then every other setting that is set (for plugins and backup-push), with
//! secrets masked. `--names` prints the table of WAL-G's names instead
//! (handled in main, as it needs no settings).

use std::io::Write;

use super::{Context, Failure};
use crate::settings::Settings;
use crate::settings::names;

pub async fn run(ctx: &Context, _names: bool) -> Result<(), Failure> {
    let _ = std::io::stdout()
        .lock()
        .write_all(render(&ctx.settings).as_bytes());
    Ok(())
}

/// What a secret's value is shown as.
const MASK: &str = "********";

fn render(settings: &Settings) -> String {
    let mut out = String::new();
    match &settings.config_path {
        Some(p) => out.push_str(&format!("settings file: {}\n", p.display())),
        None => out.push_str("settings file: none\n"),
    }
    let mut rows: Vec<(String, String, String)> = settings
        .effective
        .iter()
        .map(|e| {
            (
                e.setting.to_string(),
                e.value.clone(),
                e.origin
                    .as_ref()
                    .map_or_else(|| "default".to_string(), |o| o.to_string()),
            )
        })
        .collect();
    // Every other name walship or WAL-G knows, and unknown WAL-G-style
    // names, as the plugins and backup-push will see them.
    let used: Vec<String> = settings
        .effective
        .iter()
        .filter_map(|e| e.origin.as_ref().map(|o| o.key.clone()))
        .collect();
    for (name, found) in settings.sources.all_set() {
        let known = names::lookup(&name).is_some();
        let walg_style = ["WALG_", "WALE_", "WALSHIP_"]
            .iter()
            .any(|p| name.starts_with(p));
        if (!known && !walg_style) || used.contains(&found.origin.key) {
            continue;
        }
        let value = if names::is_secret(&name) {
            MASK.to_string()
        } else {
            found.value.clone()
        };
        rows.push((name, value, found.origin.to_string()));
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (name, value, origin) in rows {
        out.push_str(&format!("{name:<w0$}  {value:<w1$}  {origin}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;
    use crate::settings::{Environment, resolve};

    #[test]
    fn shows_origins_and_masks_secrets() {
        let env = Environment {
            vars: [
                ("WALG_FILE_PREFIX", "/a"),
                ("AWS_SECRET_ACCESS_KEY", "very-secret"),
                ("PGPASSWORD", "pw"),
                ("AWS_REGION", "eu-west-1"),
                ("PATH", "/bin"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            exe: None,
        };
        let args = GlobalArgs {
            compression: Some("lz4".into()),
            ..Default::default()
        };
        let text = render(&resolve(&args, &env).unwrap());
        assert!(
            !text.contains("very-secret") && !text.contains(" pw "),
            "{text}"
        );
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no {start} in {text}"))
                .to_string()
        };
        assert!(line("prefix ").contains("WALG_FILE_PREFIX (environment)"));
        assert!(line("compression ").contains("--compression (command line)"));
        assert!(line("log_level ").ends_with("default"));
        assert!(line("AWS_SECRET_ACCESS_KEY ").contains(MASK));
        assert!(line("AWS_REGION ").contains("eu-west-1"));
        assert!(!text.contains("PATH"));
    }
}
