//! `walship metrics`: what walship did at this prefix, in Prometheus's text
//! exposition format (metrics.rs), with what PostgreSQL has yet to archive
//! read now from the data directory (the working directory or `PGDATA`).

use std::io::Write;
use std::path::PathBuf;

use super::{Context, EXIT_FAILURE, Failure};
use crate::metrics;

pub async fn run(ctx: &Context) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("metrics: {m}"));
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let cache_dir = ctx.settings.cache_dir.as_deref().ok_or_else(|| {
        fail("no cache directory, so no metrics are kept: set WALSHIP_CACHE_DIR".into())
    })?;
    let mut state = metrics::load(&metrics::state_path(cache_dir, prefix), prefix);
    let data_dir = if ctx.cwd.join("global/pg_control").is_file() {
        Some(ctx.cwd.clone())
    } else {
        super::backup_push::var(ctx, "PGDATA").map(PathBuf::from)
    };
    let mut segment_size = 16 << 20;
    if let Some(dir) = &data_dir {
        if let Ok(c) = crate::pg_control::read_cluster_identity(dir) {
            segment_size = c.wal_segment_size;
        }
        state.refresh_ready(&dir.join("pg_wal"));
    }
    let _ = std::io::stdout()
        .lock()
        .write_all(state.exposition(segment_size).as_bytes());
    Ok(())
}
