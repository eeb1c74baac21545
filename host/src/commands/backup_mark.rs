//! `walship backup-mark NAME|LATEST [--impermanent]` (WAL-G's name): a
//! permanent backup is never deleted by retention, and neither is the WAL
//! from its start to its stop segment, which it needs to become consistent.
//! The mark is an object of its own beside the (immutable) record.

use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::catalog;

pub async fn run(ctx: &Context, name: &str, permanent: bool) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("backup-mark: {m}"));
    ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut store = super::open_store(ctx, &plugin, &fail).await?;
    let record = catalog::resolve(&mut store, name, &ctx.settings.keys)
        .await
        .map_err(|e| fail(e.to_string()))?;
    catalog::set_permanent(&mut store, &record.name, permanent, &ctx.settings.keys)
        .await
        .map_err(|e| fail(e.to_string()))?;
    println!(
        "{} is {}",
        record.name,
        if permanent {
            "permanent: retention keeps it and the WAL from its start to its stop segment"
        } else {
            "no longer permanent"
        }
    );
    Ok(())
}
