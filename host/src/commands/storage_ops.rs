//! `walship st ...`: raw object operations through the storage plugin, for
//! operators and tests. No archive format, no identity checks.

use std::io::Write;

use super::{Context, EXIT_FAILURE, Failure};
use crate::cli::StorageCommand;
use crate::retry::Retrying;
use crate::storage::{Key, ObjectStore, PutOptions};
use crate::transfer;

pub async fn run(ctx: &Context, command: &StorageCommand) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("st: {m}"));
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut store = Retrying::new(store, ctx.retry_policy());
    let key = |k: &str| Key::new(k).map_err(|e| fail(e.to_string()));
    match command {
        StorageCommand::Ls { key_prefix } => {
            let (objects, _) = transfer::list_all(&mut store, key_prefix, None)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut out = std::io::stdout().lock();
            for o in objects {
                let _ = writeln!(out, "{}", o.key);
            }
        }
        StorageCommand::Get { key: k, file } => {
            let data = transfer::download(&mut store, &key(k)?)
                .await
                .map_err(|e| fail(format!("get {k}: {e}")))?;
            std::fs::write(file, data)
                .map_err(|e| fail(format!("cannot write {}: {e}", file.display())))?;
        }
        StorageCommand::Put { key: k, file } => {
            let data = std::fs::read(file)
                .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
            transfer::upload(&mut store, &key(k)?, &data, &PutOptions::overwrite())
                .await
                .map_err(|e| fail(format!("put {k}: {e}")))?;
        }
        StorageCommand::Rm { keys } => {
            let keys = keys.iter().map(|k| key(k)).collect::<Result<Vec<_>, _>>()?;
            let failures = store
                .delete(&keys)
                .await
                .map_err(|e| fail(format!("delete: {e}")))?;
            if let Some((k, e)) = failures.first() {
                return Err(fail(format!(
                    "delete {k}: {e} ({} keys failed)",
                    failures.len()
                )));
            }
        }
    }
    Ok(())
}
