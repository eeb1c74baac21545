//! `walship plugin test <file|scheme>`: the conformance suite against a plugin
//! and the service the configured prefix names.

use super::{Context, EXIT_FAILURE, Failure};
use crate::cli::ReportFormat;
use crate::conformance::{self, SuiteOptions};

pub async fn run(
    ctx: &Context,
    plugin: &str,
    format: ReportFormat,
    keep: bool,
) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("plugin test {plugin}: {m}"));
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let (loaded, _) = super::load_named(ctx, plugin).map_err(|e| fail(format!("{e:#}")))?;
    let options = SuiteOptions {
        base_prefix: prefix.to_string(),
        keep,
    };
    let report = conformance::run(&loaded, |info| ctx.plugin_config(info), &options)
        .await
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    // A closed pipe (`| head`) is not worth a panic; the exit status still
    // tells the outcome.
    let text = match format {
        ReportFormat::Human => report.human(),
        ReportFormat::Json => format!("{}\n", report.json()),
    };
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    match report.failed() {
        0 => Ok(()),
        n => Err(fail(format!(
            "{n} check(s) failed: {}",
            report
                .checks
                .iter()
                .filter(|c| matches!(c.outcome, conformance::Outcome::Failed(_)))
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join("; ")
        ))),
    }
}
