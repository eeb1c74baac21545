//! Base backups: the catalog at the archive prefix, taking one
//! (`backup-push`) and restoring one (`backup-fetch`). docs/backups.md has
//! the design.

pub mod catalog;
pub mod connect;
pub mod fetch;
pub mod pg_tls;
pub mod progress;
pub mod push;
pub mod volume;
pub mod walk;
