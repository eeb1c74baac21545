//! Every setting name WAL-G documents (PostgreSQL and storages, from WAL-G's
//! docs and its list of allowed settings), and what walship does with each:
//!
//! - honoured: walship (or the storage plugin named) does what WAL-G does;
//! - refused: walship cannot do it, and doing nothing could store data
//!   unprotected, somewhere else, or differently from what the operator
//!   asked; every command refuses to run while it is set (some have a value
//!   that means "off", which is accepted);
//! - ignored: makes no difference to what is stored or how safely (a tuning
//!   knob, a feature of a command walship lacks); a warning line says so.
//!
//! A `WALG_*`, `WALE_*` or `WALSHIP_*` name not in the table gets a warning
//! line too (a typo must not pass in silence). `docs/settings.md` is made
//! from this table (`walship config --names`), and a test keeps it so.

use super::SettingsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// What reads it.
    Honoured(&'static str),
    Refused {
        why: &'static str,
        instead: &'static str,
        /// Values that turn the feature off, and so change nothing.
        off: &'static [&'static str],
    },
    /// Why it does not matter.
    Ignored(&'static str),
    /// Read by walship's test suite, never by walship: no warning.
    Internal(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub name: &'static str,
    pub treatment: Treatment,
    /// Masked by `walship config`.
    pub secret: bool,
}

const fn honoured(name: &'static str, what: &'static str) -> Known {
    Known {
        name,
        treatment: Treatment::Honoured(what),
        secret: false,
    }
}

const fn secret(known: Known) -> Known {
    Known {
        secret: true,
        ..known
    }
}

const fn refused(name: &'static str, why: &'static str, instead: &'static str) -> Known {
    refused_unless(name, &[], why, instead)
}

const fn refused_unless(
    name: &'static str,
    off: &'static [&'static str],
    why: &'static str,
    instead: &'static str,
) -> Known {
    Known {
        name,
        treatment: Treatment::Refused { why, instead, off },
        secret: false,
    }
}

const fn ignored(name: &'static str, why: &'static str) -> Known {
    Known {
        name,
        treatment: Treatment::Ignored(why),
        secret: false,
    }
}

const OFF_BOOL: &[&str] = &["false", "0", "no", "off"];
const NO_ENCRYPTION: &str = "walship does not encrypt with OpenPGP or a cloud KMS, and storing plaintext (or data no one can read back) where this encryption was asked for is worse than not archiving";
const USE_LIBSODIUM: &str = "unset it, and encrypt with WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH (client-side, XChaCha20-Poly1305), or at rest on the storage side (WALG_S3_SSE, a bucket default key)";
const NO_DELTA: &str = "walship takes full backups only";
const UNSET_FOR_FULL: &str = "unset it to take full backups";

/// The table. Order: walship's own names, where the archive is, what is
/// stored and how, PostgreSQL's connection, then each storage.
pub const KNOWN: &[Known] = &[
    // walship's own names
    honoured("WALSHIP_PREFIX", "walship: where the archive lives (a URL)"),
    honoured(
        "WALSHIP_CONFIG",
        "walship: the settings file (TOML, or WAL-G's JSON by a .json name)",
    ),
    honoured(
        "WALSHIP_PLUGIN",
        "walship: a plugin file to use instead of the bundled one",
    ),
    honoured("WALSHIP_PLUGIN_DIR", "walship: where plugins are looked up"),
    honoured("WALSHIP_CACHE_DIR", "walship: precompiled plugins"),
    honoured("WALSHIP_COMPRESSION", "walship: zstd, lz4 or none"),
    honoured("WALSHIP_LOG_LEVEL", "walship: error, warn, info, debug"),
    honoured(
        "WALSHIP_TIMEOUT",
        "walship: deadline of one command, seconds",
    ),
    honoured(
        "WALSHIP_PLUGIN_MEMORY_MIB",
        "walship: memory cap of a plugin",
    ),
    honoured(
        "WALSHIP_PLUGIN_CALL_TIMEOUT",
        "walship: time limit of one plugin call, seconds",
    ),
    honoured(
        "WALSHIP_ALLOW_HOSTS",
        "walship: hosts a plugin may be granted",
    ),
    honoured(
        "WALSHIP_ALLOW_DIRECTORIES",
        "walship: directories a plugin may be granted",
    ),
    honoured(
        "WALSHIP_PLUGIN_SETTINGS",
        "walship: setting names a third-party plugin may receive beyond its own",
    ),
    honoured(
        "WALSHIP_ALLOW_HTTP_CREDENTIALS",
        "walship: let a plugin send credentials over plain http beyond this machine",
    ),
    honoured(
        "WALSHIP_CA_FILE",
        "walship: extra trusted CA certificates for https",
    ),
    honoured("WALSHIP_TIMINGS", "walship: print where time went"),
    secret(honoured(
        "WALSHIP_ENCRYPTION_KEY",
        "walship: the encryption key, as WALG_LIBSODIUM_KEY",
    )),
    honoured(
        "WALSHIP_ENCRYPTION_KEY_PATH",
        "walship: a file holding the encryption key, as WALG_LIBSODIUM_KEY_PATH",
    ),
    honoured(
        "WALSHIP_ENCRYPTION_KEY_TRANSFORM",
        "walship: as WALG_LIBSODIUM_KEY_TRANSFORM",
    ),
    honoured(
        "WALSHIP_DECRYPTION_KEY_PATHS",
        "walship: files of older keys (comma-separated), which decrypt but never encrypt: key rotation",
    ),
    honoured(
        "WALSHIP_UPLOAD_CONCURRENCY",
        "walship: WAL files uploaded at once",
    ),
    honoured(
        "WALSHIP_DOWNLOAD_CONCURRENCY",
        "walship: segments restored ahead (0: off)",
    ),
    honoured(
        "WALSHIP_PREFETCH_DIR",
        "walship: where restored-ahead segments wait",
    ),
    honoured(
        "WALSHIP_METRICS_TEXTFILE",
        "walship: Prometheus textfile written after every command",
    ),
    honoured(
        "WALSHIP_VOLUME_SIZE",
        "walship: tar bytes per backup volume",
    ),
    honoured(
        "WALSHIP_S3_IF_NONE_MATCH",
        "s3 plugin: whether the store enforces create-only puts",
    ),
    honoured(
        "WALSHIP_GS_ENDPOINT",
        "gcs plugin: another JSON API endpoint",
    ),
    Known {
        name: "WALSHIP_BIN",
        treatment: Treatment::Internal("the test suite: the binary under test"),
        secret: false,
    },
    Known {
        name: "WALSHIP_TEST_PLUGINS",
        treatment: Treatment::Internal("the test suite: where test plugins are"),
        secret: false,
    },
    // Where the archive is
    honoured("WALG_FILE_PREFIX", "walship: a directory (file://)"),
    honoured("WALE_FILE_PREFIX", "walship: as WALG_FILE_PREFIX"),
    honoured("WALG_S3_PREFIX", "walship: s3://bucket/path"),
    honoured("WALE_S3_PREFIX", "walship: as WALG_S3_PREFIX"),
    honoured("WALG_GS_PREFIX", "walship: gs://bucket/path"),
    honoured("WALE_GS_PREFIX", "walship: as WALG_GS_PREFIX"),
    honoured("WALG_AZ_PREFIX", "walship: azure://container/path"),
    honoured("WALE_AZ_PREFIX", "walship: as WALG_AZ_PREFIX"),
    honoured("WALG_SWIFT_PREFIX", "walship: swift://container/path"),
    honoured("WALE_SWIFT_PREFIX", "walship: as WALG_SWIFT_PREFIX"),
    refused(
        "WALG_OSS_PREFIX",
        "walship has no Alibaba OSS backend",
        "OSS speaks S3: set WALG_S3_PREFIX and AWS_ENDPOINT to the OSS endpoint",
    ),
    refused(
        "WALG_SSH_PREFIX",
        "walship has no SSH backend",
        "mount the remote directory and use WALG_FILE_PREFIX, or use an object store",
    ),
    refused(
        "WALG_STORAGE_PREFIX",
        "walship does not read WAL-G's generic storage prefix",
        "set the prefix of the storage itself, e.g. WALG_S3_PREFIX or WALSHIP_PREFIX",
    ),
    refused(
        "WALG_FAILOVER_STORAGES",
        "walship has no failover storages: archiving would go to one storage only",
        "unset it and archive to one storage",
    ),
    refused(
        "WALG_TARGET_STORAGE",
        "walship has no failover storages",
        "unset it",
    ),
    ignored(
        "WALG_FAILOVER_STORAGES_CHECK",
        "only with WALG_FAILOVER_STORAGES, which is refused",
    ),
    ignored(
        "WALG_FAILOVER_STORAGES_CHECK_TIMEOUT",
        "only with WALG_FAILOVER_STORAGES, which is refused",
    ),
    ignored(
        "WALG_FAILOVER_STORAGES_CHECK_SIZE",
        "only with WALG_FAILOVER_STORAGES, which is refused",
    ),
    ignored(
        "WALG_FAILOVER_STORAGES_CACHE_LIFETIME",
        "only with WALG_FAILOVER_STORAGES, which is refused",
    ),
    // What is stored, and how
    honoured(
        "WALG_COMPRESSION_METHOD",
        "walship: zstd, lz4 (brotli and lzma are refused as values)",
    ),
    honoured(
        "WALG_LOG_LEVEL",
        "walship: NORMAL, DEVEL, ERROR and walship's levels",
    ),
    honoured(
        "WALG_UPLOAD_CONCURRENCY",
        "walship: WAL files uploaded at once (1: no archiving ahead)",
    ),
    honoured(
        "WALG_DOWNLOAD_CONCURRENCY",
        "walship: files downloaded at once (1: no prefetch)",
    ),
    honoured(
        "WALG_PREFETCH_DIR",
        "walship: where restored-ahead segments wait",
    ),
    honoured(
        "WALG_TAR_SIZE_THRESHOLD",
        "walship: tar bytes per backup volume",
    ),
    honoured(
        "WALG_PREVENT_WAL_OVERWRITE",
        "walship: always on (different content under an archived name is refused)",
    ),
    honoured(
        "WALG_S3_CA_CERT_FILE",
        "walship: extra trusted CA certificates, for every https backend",
    ),
    secret(honoured(
        "WALG_LIBSODIUM_KEY",
        "walship: the encryption key (docs/archive-format.md); never handed to a plugin",
    )),
    honoured(
        "WALG_LIBSODIUM_KEY_PATH",
        "walship: a file holding the encryption key, private to its owner (mode 600)",
    ),
    honoured(
        "WALG_LIBSODIUM_KEY_TRANSFORM",
        "walship: base64, hex, or none (WAL-G's default: the text, at least 25 bytes, cut or zero-padded to 32)",
    ),
    secret(refused("WALG_PGP_KEY", NO_ENCRYPTION, USE_LIBSODIUM)),
    refused("WALG_PGP_KEY_PATH", NO_ENCRYPTION, USE_LIBSODIUM),
    secret(ignored(
        "WALG_PGP_KEY_PASSPHRASE",
        "only with WALG_PGP_KEY, which is refused",
    )),
    secret(refused(
        "WALG_ENVELOPE_PGP_KEY",
        NO_ENCRYPTION,
        USE_LIBSODIUM,
    )),
    refused("WALG_ENVELOPE_PGP_KEY_PATH", NO_ENCRYPTION, USE_LIBSODIUM),
    refused(
        "WALG_ENVELOPE_PGP_YC_CSE_KMS_KEY_ID",
        NO_ENCRYPTION,
        USE_LIBSODIUM,
    ),
    ignored(
        "WALG_ENVELOPE_PGP_YC_SERVICE_ACCOUNT_KEY_FILE",
        "only with envelope encryption, which is refused",
    ),
    ignored(
        "WALG_ENVELOPE_PGP_YC_ENDPOINT",
        "only with envelope encryption, which is refused",
    ),
    ignored(
        "WALG_ENVELOPE_CACHE_EXPIRATION",
        "only with envelope encryption, which is refused",
    ),
    secret(refused("WALG_GPG_KEY_ID", NO_ENCRYPTION, USE_LIBSODIUM)),
    secret(refused("WALE_GPG_KEY_ID", NO_ENCRYPTION, USE_LIBSODIUM)),
    refused("WALG_CSE_KMS_ID", NO_ENCRYPTION, USE_LIBSODIUM),
    ignored(
        "WALG_CSE_KMS_REGION",
        "only with WALG_CSE_KMS_ID, which is refused",
    ),
    refused("YC_CSE_KMS_KEY_ID", NO_ENCRYPTION, USE_LIBSODIUM),
    ignored(
        "YC_SERVICE_ACCOUNT_KEY_FILE",
        "only with Yandex Cloud KMS encryption, which is refused",
    ),
    honoured(
        "WALG_NETWORK_RATE_LIMIT",
        "bytes per second to and from the storage during backup-push and backup-fetch",
    ),
    honoured(
        "WALG_DISK_RATE_LIMIT",
        "bytes per second read from or written to disk during backup-push and backup-fetch",
    ),
    honoured(
        "WALSHIP_NETWORK_RATE_LIMIT",
        "walship: the same as WALG_NETWORK_RATE_LIMIT",
    ),
    honoured(
        "WALSHIP_DISK_RATE_LIMIT",
        "walship: the same as WALG_DISK_RATE_LIMIT",
    ),
    honoured(
        "WALSHIP_WAL_RATE_LIMIT",
        "walship: bytes per second of WAL to and from the storage, all processes of an archive together",
    ),
    refused_unless(
        "WALG_VERIFY_PAGE_CHECKSUMS",
        OFF_BOOL,
        "walship does not verify page checksums during backup-push, so corruption would go unreported",
        "unset it and run pg_checksums or pg_amcheck against a restored copy",
    ),
    ignored(
        "WALG_STORE_ALL_CORRUPT_BLOCKS",
        "only with WALG_VERIFY_PAGE_CHECKSUMS, which is refused",
    ),
    refused(
        "WALG_STATSD_ADDRESS",
        "walship sends no statsd metrics, so monitoring would see nothing and raise no alarm",
        "unset it and watch pg_stat_archiver (failed_count, last_archived_time) instead",
    ),
    ignored(
        "WALG_STATSD_EXTRA_TAGS",
        "only with WALG_STATSD_ADDRESS, which is refused",
    ),
    refused_unless("WALG_DELTA_MAX_STEPS", &["0"], NO_DELTA, UNSET_FOR_FULL),
    ignored(
        "WALG_DELTA_ORIGIN",
        "only with delta backups (WALG_DELTA_MAX_STEPS, refused)",
    ),
    refused("WALG_DELTA_FROM_NAME", NO_DELTA, UNSET_FOR_FULL),
    refused("WALG_DELTA_FROM_USER_DATA", NO_DELTA, UNSET_FOR_FULL),
    ignored(
        "WALG_USE_WAL_DELTA",
        "delta-backup tracking; walship takes full backups",
    ),
    ignored(
        "WALG_FORCE_WAL_DELTA",
        "delta-backup tracking; walship takes full backups",
    ),
    refused(
        "WALG_SENTINEL_USER_DATA",
        "walship stores no user data with a backup, so tools that find backups by it would not",
        "unset it and find backups by name (backup-list --json)",
    ),
    refused(
        "WALG_FETCH_TARGET_USER_DATA",
        "walship cannot select a backup by user data, and restoring another backup instead would be wrong",
        "give the backup's name or LATEST to backup-fetch",
    ),
    refused(
        "WALG_STREAM_CREATE_COMMAND",
        "walship does not back up a command's output",
        "unset it",
    ),
    refused(
        "WALG_STREAM_RESTORE_COMMAND",
        "walship does not restore into a command",
        "unset it",
    ),
    ignored(
        "WALG_UPLOAD_DISK_CONCURRENCY",
        "tuning: walship reads files as its volumes need them",
    ),
    ignored("WALG_UPLOAD_QUEUE", "tuning"),
    ignored(
        "WALG_DOWNLOAD_FILE_RETRIES",
        "walship has its own retry policy",
    ),
    ignored(
        "WALG_UPLOAD_WAL_METADATA",
        "extra metadata objects; walship's WAL objects carry their own checksums",
    ),
    ignored(
        "WALG_TAR_DISABLE_FSYNC",
        "walship always fsyncs restored files",
    ),
    ignored(
        "WALG_PG_WAL_SIZE",
        "walship reads the segment size from pg_control",
    ),
    ignored("WALG_PG_WAL_PAGE_SIZE", "walship reads page headers itself"),
    ignored("WALG_PG_BLOCK_SIZE", "not needed for full backups"),
    ignored(
        "WALG_USE_REVERSE_UNPACK",
        "a restore strategy for delta backups",
    ),
    ignored(
        "WALG_SKIP_REDUNDANT_TARS",
        "a restore strategy for delta backups",
    ),
    ignored("WALG_USE_RATING_COMPOSER", "a tar layout choice"),
    ignored("WALG_USE_COPY_COMPOSER", "a tar layout choice"),
    ignored("WALG_USE_DATABASE_COMPOSER", "a tar layout choice"),
    ignored(
        "WALG_WITHOUT_FILES_METADATA",
        "a memory-saving choice of WAL-G's format",
    ),
    ignored(
        "WALG_INTEGRITY_MAX_DELAYED_WALS",
        "wal-verify reports every missing segment",
    ),
    ignored("WALG_SERIALIZER_TYPE", "WAL-G's metadata encoding"),
    ignored("WALG_SLOTNAME", "wal-receive is not implemented"),
    ignored(
        "WALG_ALIVE_CHECK_INTERVAL",
        "backup-push notices a lost session by itself",
    ),
    ignored(
        "WALG_STOP_BACKUP_TIMEOUT",
        "backup-push is bounded by WALSHIP_TIMEOUT",
    ),
    ignored(
        "WALG_DAEMON_WAL_UPLOAD_TIMEOUT",
        "the WAL-G daemon is not implemented",
    ),
    ignored(
        "WALG_DISABLE_PARTIAL_RESTORE",
        "partial restore is not implemented",
    ),
    ignored(
        "WALG_LOG_DESTINATION",
        "walship logs to stderr, which PostgreSQL keeps in its log",
    ),
    ignored("WALG_DIRECT_IO", "tuning"),
    ignored(
        "TOTAL_BG_UPLOADED_LIMIT",
        "the background pusher takes WALSHIP_UPLOAD_CONCURRENCY files at once",
    ),
    ignored(
        "PG_READY_RENAME",
        "walship keeps its own records of files archived ahead",
    ),
    ignored(
        "PGBACKREST_STANZA",
        "WAL-G's pgBackRest reader is not implemented",
    ),
    ignored("PROFILE_SAMPLING_RATIO", "Go profiling"),
    ignored("PROFILE_MODE", "Go profiling"),
    ignored("PROFILE_PATH", "Go profiling"),
    // PostgreSQL's connection (backup-push), as libpq reads it
    honoured("PGDATA", "backup-push: the data directory"),
    honoured("PGHOST", "backup-push"),
    honoured("PGPORT", "backup-push"),
    honoured("PGUSER", "backup-push"),
    honoured("PGDATABASE", "backup-push"),
    secret(honoured("PGPASSWORD", "backup-push")),
    honoured(
        "PGPASSFILE",
        "backup-push: libpq's password file (default ~/.pgpass)",
    ),
    honoured("PGAPPNAME", "backup-push: application_name"),
    honoured(
        "PGSSLMODE",
        "backup-push: disable, allow, prefer, require, verify-ca, verify-full",
    ),
    honoured(
        "PGSSLROOTCERT",
        "backup-push: CA certificates to verify the server with",
    ),
    honoured("PGSSLCERT", "backup-push: client certificate"),
    honoured("PGSSLKEY", "backup-push: client key"),
    // S3
    secret(honoured("AWS_ACCESS_KEY_ID", "s3 plugin")),
    secret(honoured("AWS_SECRET_ACCESS_KEY", "s3 plugin")),
    secret(honoured("AWS_SESSION_TOKEN", "s3 plugin")),
    honoured("AWS_REGION", "s3 plugin"),
    honoured("AWS_DEFAULT_REGION", "s3 plugin"),
    honoured("AWS_ENDPOINT", "s3 plugin"),
    honoured("AWS_ENDPOINT_URL", "s3 plugin"),
    honoured("AWS_ENDPOINT_URL_S3", "s3 plugin"),
    honoured("AWS_ENDPOINT_URL_STS", "s3 plugin"),
    honoured("AWS_S3_FORCE_PATH_STYLE", "s3 plugin"),
    honoured(
        "AWS_ROLE_ARN",
        "s3 plugin: with AWS_WEB_IDENTITY_TOKEN_FILE (refused beside static keys: no AssumeRole yet)",
    ),
    honoured("AWS_ROLE_SESSION_NAME", "s3 plugin"),
    honoured("AWS_WEB_IDENTITY_TOKEN_FILE", "s3 plugin"),
    honoured(
        "AWS_CA_BUNDLE",
        "walship: extra trusted CA certificates, as WALG_S3_CA_CERT_FILE",
    ),
    honoured("WALG_S3_STORAGE_CLASS", "s3 plugin"),
    honoured("WALG_S3_SSE", "s3 plugin: AES256 or aws:kms"),
    honoured("WALG_S3_SSE_KMS_ID", "s3 plugin"),
    secret(refused(
        "WALG_S3_SSE_C",
        "walship does not send customer-provided SSE-C keys, so objects would be stored without that encryption",
        "use WALG_S3_SSE=aws:kms with WALG_S3_SSE_KMS_ID, or a bucket default key",
    )),
    refused(
        "AWS_PROFILE",
        "walship does not read AWS profiles, so other credentials than the profile's would be used",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE",
    ),
    refused(
        "AWS_SHARED_CREDENTIALS_FILE",
        "walship does not read AWS credential files",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
    refused(
        "AWS_CONFIG_FILE",
        "walship does not read AWS config files",
        "set AWS_REGION, AWS_ENDPOINT and the keys directly",
    ),
    ignored("AWS_DEFAULT_OUTPUT", "the AWS CLI's output format"),
    refused(
        "WALG_S3_ENDPOINT_SOURCE",
        "walship does not discover its S3 endpoint from a source URL, so data would go to another endpoint",
        "set AWS_ENDPOINT",
    ),
    refused(
        "WALG_S3_ENDPOINT_PORT",
        "walship does not discover its S3 endpoint from a source URL",
        "set AWS_ENDPOINT with the port",
    ),
    refused(
        "S3_ENDPOINT_SOURCE",
        "walship does not discover its S3 endpoint from a source URL, so data would go to another endpoint",
        "set AWS_ENDPOINT",
    ),
    refused(
        "S3_ENDPOINT_PORT",
        "walship does not discover its S3 endpoint from a source URL",
        "set AWS_ENDPOINT with the port",
    ),
    refused_unless(
        "S3_RETENTION_PERIOD",
        &["-1", "0"],
        "walship does not set S3 Object Lock retention yet, so objects would be deletable",
        "unset it and give the bucket a default retention (Object Lock default retention rule)",
    ),
    refused(
        "S3_RETENTION_MODE",
        "walship does not set S3 Object Lock retention yet, so objects would be deletable",
        "unset it and give the bucket a default retention (Object Lock default retention rule)",
    ),
    ignored("WALG_S3_MAX_PART_SIZE", "the plugin picks part sizes"),
    ignored(
        "WALG_S3_USE_LIST_OBJECTS_V1",
        "the plugin lists with ListObjectsV2; a store without it fails loudly",
    ),
    ignored(
        "WALG_S3_LOG_LEVEL",
        "diagnostics: use WALSHIP_LOG_LEVEL=debug",
    ),
    ignored("S3_LOG_LEVEL", "diagnostics: use WALSHIP_LOG_LEVEL=debug"),
    ignored(
        "WALG_S3_RANGE_BATCH_ENABLED",
        "walship has its own retry policy",
    ),
    ignored(
        "WALG_S3_RANGE_MAX_RETRIES",
        "walship has its own retry policy",
    ),
    ignored("WALG_S3_MAX_RETRIES", "walship has its own retry policy"),
    ignored(
        "S3_MIN_THROTTLING_RETRY_DELAY",
        "walship has its own retry policy",
    ),
    ignored(
        "S3_MAX_THROTTLING_RETRY_DELAY",
        "walship has its own retry policy",
    ),
    ignored(
        "S3_SKIP_VALIDATION",
        "the plugin checks nothing before its first request",
    ),
    // GCS
    honoured(
        "GOOGLE_APPLICATION_CREDENTIALS",
        "gcs plugin: a service-account key file",
    ),
    honoured("STORAGE_EMULATOR_HOST", "gcs plugin"),
    secret(refused(
        "GCS_ENCRYPTION_KEY",
        "walship does not send customer-supplied encryption keys (CSEK), so objects would be stored without that encryption",
        "unset it and use a bucket default key (CMEK)",
    )),
    refused_unless(
        "GCS_NORMALIZE_PREFIX",
        &["true", "1"],
        "walship always normalises slashes in the prefix, so a WAL-E layout with double slashes would not be found",
        "unset it and give the prefix without double slashes",
    ),
    ignored(
        "GCS_CONTEXT_TIMEOUT",
        "bounded by WALSHIP_TIMEOUT and WALSHIP_PLUGIN_CALL_TIMEOUT",
    ),
    ignored("GCS_MAX_CHUNK_SIZE", "the plugin picks chunk sizes"),
    ignored("GCS_MAX_RETRIES", "walship has its own retry policy"),
    // Azure
    honoured("AZURE_STORAGE_ACCOUNT", "azure plugin"),
    secret(honoured("AZURE_STORAGE_ACCESS_KEY", "azure plugin")),
    secret(honoured("AZURE_STORAGE_KEY", "azure plugin")),
    secret(honoured("AZURE_STORAGE_SAS_TOKEN", "azure plugin")),
    secret(honoured("AZURE_STORAGE_CONNECTION_STRING", "azure plugin")),
    honoured("AZURE_ENVIRONMENT_NAME", "azure plugin"),
    honoured("AZURE_ENDPOINT_SUFFIX", "azure plugin"),
    honoured("AZURE_STORAGE_SERVICE_ENDPOINT", "azure plugin"),
    ignored("WALG_AZURE_BUFFER_SIZE", "the plugin picks block sizes"),
    ignored("WALG_AZURE_MAX_BUFFERS", "the plugin picks block sizes"),
    // Swift
    honoured("OS_AUTH_URL", "swift plugin: Keystone v3"),
    honoured("OS_USERNAME", "swift plugin"),
    secret(honoured("OS_PASSWORD", "swift plugin")),
    honoured("OS_PROJECT_NAME", "swift plugin"),
    honoured("OS_PROJECT_ID", "swift plugin"),
    honoured(
        "OS_TENANT_NAME",
        "swift plugin: the project's name (Keystone v3), as python-swiftclient",
    ),
    honoured(
        "OS_TENANT_ID",
        "swift plugin: the project's id (Keystone v3), as python-swiftclient",
    ),
    honoured(
        "OS_IDENTITY_API_VERSION",
        "swift plugin: 3 (2 is refused: v2 is gone from current Keystone)",
    ),
    honoured(
        "OS_AUTH_VERSION",
        "swift plugin: 3 (2 is refused: v2 is gone from current Keystone)",
    ),
    honoured("OS_USER_DOMAIN_NAME", "swift plugin"),
    honoured("OS_PROJECT_DOMAIN_NAME", "swift plugin"),
    honoured("OS_REGION_NAME", "swift plugin"),
    honoured("OS_INTERFACE", "swift plugin"),
    secret(honoured("OS_AUTH_TOKEN", "swift plugin")),
    honoured("OS_STORAGE_URL", "swift plugin"),
    honoured("ST_AUTH", "swift plugin: v1 auth"),
    honoured("ST_USER", "swift plugin"),
    secret(honoured("ST_KEY", "swift plugin")),
    // Alibaba OSS and SSH: their prefixes are refused above.
    secret(ignored(
        "OSS_ACCESS_KEY_ID",
        "only with WALG_OSS_PREFIX, which is refused",
    )),
    secret(ignored(
        "OSS_ACCESS_KEY_SECRET",
        "only with WALG_OSS_PREFIX, which is refused",
    )),
    secret(ignored(
        "OSS_SESSION_TOKEN",
        "only with WALG_OSS_PREFIX, which is refused",
    )),
    ignored(
        "OSS_ENDPOINT",
        "only with WALG_OSS_PREFIX, which is refused",
    ),
    ignored("OSS_REGION", "only with WALG_OSS_PREFIX, which is refused"),
    ignored(
        "OSS_ROLE_ARN",
        "only with WALG_OSS_PREFIX, which is refused",
    ),
    ignored(
        "OSS_ROLE_SESSION_NAME",
        "only with WALG_OSS_PREFIX, which is refused",
    ),
    ignored(
        "OSS_SKIP_VALIDATION",
        "only with WALG_OSS_PREFIX, which is refused",
    ),
    ignored("SSH_PORT", "only with WALG_SSH_PREFIX, which is refused"),
    ignored(
        "SSH_USERNAME",
        "only with WALG_SSH_PREFIX, which is refused",
    ),
    secret(ignored(
        "SSH_PASSWORD",
        "only with WALG_SSH_PREFIX, which is refused",
    )),
    ignored(
        "SSH_PRIVATE_KEY_PATH",
        "only with WALG_SSH_PREFIX, which is refused",
    ),
];

pub fn lookup(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name == name)
}

/// Whether `name`'s value is best not printed.
pub fn is_secret(name: &str) -> bool {
    match lookup(name) {
        Some(k) => k.secret,
        None => ["PASSWORD", "SECRET", "TOKEN", "_KEY", "PASSPHRASE"]
            .iter()
            .any(|w| name.contains(w)),
    }
}

/// A setting that is set: its name, value and how to name it to the user.
pub struct SetSetting<'a> {
    pub name: &'a str,
    pub value: &'a str,
    /// How the user wrote it (`WALG_X`, `WALG_X in /etc/walg.json`).
    pub described: String,
}

/// Refuses the first refused setting that is set; returns a warning line
/// for each ignored or unknown one.
pub fn review<'a>(
    set: impl IntoIterator<Item = SetSetting<'a>>,
) -> Result<Vec<String>, SettingsError> {
    let set: Vec<SetSetting<'a>> = set.into_iter().collect();
    let mut warnings = Vec::new();
    for s in &set {
        match lookup(s.name).map(|k| k.treatment) {
            Some(Treatment::Refused { why, instead, off }) => {
                if off.iter().any(|o| o.eq_ignore_ascii_case(s.value.trim())) {
                    continue;
                }
                return Err(SettingsError::Refused {
                    setting: s.described.clone(),
                    why: why.to_string(),
                    instead: instead.to_string(),
                });
            }
            Some(Treatment::Ignored(why)) => {
                warnings.push(format!("{} is set but has no effect: {why}", s.described));
            }
            Some(Treatment::Honoured(_) | Treatment::Internal(_)) => {}
            None if ["WALG_", "WALE_", "WALSHIP_"]
                .iter()
                .any(|p| s.name.starts_with(p)) =>
            {
                warnings.push(format!(
                    "{} is not a setting walship knows (a typo?); ignored unless a plugin declares it",
                    s.described
                ));
            }
            None => {}
        }
    }
    // Names that are fine alone but not together.
    let is_set = |n: &str| set.iter().find(|s| s.name == n);
    if let (Some(role), Some(_)) = (is_set("AWS_ROLE_ARN"), is_set("AWS_ACCESS_KEY_ID")) {
        return Err(SettingsError::Refused {
            setting: format!("{} beside AWS_ACCESS_KEY_ID", role.described),
            why: "walship does not assume a role with static keys (AssumeRole), so the keys' own identity would be used".into(),
            instead: "unset AWS_ROLE_ARN to use the keys, or use the role's own temporary keys (AWS_SESSION_TOKEN), or a web identity (AWS_WEB_IDENTITY_TOKEN_FILE without static keys)".into(),
        });
    }
    Ok(warnings)
}

/// The table as Markdown, for `docs/settings.md` and `walship config --names`.
pub fn markdown_table() -> String {
    let mut s =
        String::from("| setting | walship | why, and what to do instead |\n|---|---|---|\n");
    for k in KNOWN {
        let (what, notes) = match k.treatment {
            Treatment::Honoured(by) => ("honoured".to_string(), by.to_string()),
            Treatment::Refused { why, instead, off } => (
                if off.is_empty() {
                    "refused".to_string()
                } else {
                    format!("refused unless {}", off.join(" or "))
                },
                format!("{why}; {instead}"),
            ),
            Treatment::Ignored(why) => ("ignored, with a warning".to_string(), why.to_string()),
            Treatment::Internal(what) => ("not a setting".to_string(), what.to_string()),
        };
        s.push_str(&format!("| `{}` | {what} | {notes} |\n", k.name));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<SetSetting<'a>> {
        pairs
            .iter()
            .map(|(name, value)| SetSetting {
                name,
                value,
                described: name.to_string(),
            })
            .collect()
    }

    #[test]
    fn every_name_is_listed_once() {
        let mut names: Vec<&str> = KNOWN.iter().map(|k| k.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a name is listed twice");
    }

    /// The names issue 24 found passing in silence.
    #[test]
    fn the_names_that_passed_in_silence_are_refused() {
        for name in [
            "WALG_ENVELOPE_PGP_KEY",
            "WALG_ENVELOPE_PGP_KEY_PATH",
            "YC_CSE_KMS_KEY_ID",
            "GCS_ENCRYPTION_KEY",
            "S3_RETENTION_PERIOD",
            "S3_RETENTION_MODE",
            "WALG_VERIFY_PAGE_CHECKSUMS",
            "WALG_STATSD_ADDRESS",
            "WALG_DELTA_MAX_STEPS",
        ] {
            let e = review(set(&[(name, "1")])).unwrap_err().to_string();
            assert!(e.contains(name) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn an_off_value_is_accepted() {
        assert!(review(set(&[("WALG_DELTA_MAX_STEPS", "0")])).is_ok());
        assert!(review(set(&[("WALG_VERIFY_PAGE_CHECKSUMS", "false")])).is_ok());
        assert!(review(set(&[("S3_RETENTION_PERIOD", "-1")])).is_ok());
    }

    #[test]
    fn ignored_and_unknown_names_warn() {
        let w = review(set(&[
            ("WALG_S3_MAX_RETRIES", "3"),
            ("WALG_UPLOAD_CONCURENCY", "3"),
            ("WALSHIP_PREFX", "x"),
            ("PATH", "/bin"),
            ("WALG_FILE_PREFIX", "/a"),
        ]))
        .unwrap();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[1].contains("WALG_UPLOAD_CONCURENCY") && w[1].contains("typo"));
    }

    #[test]
    fn a_role_beside_static_keys_is_refused() {
        let e = review(set(&[
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("AssumeRole"), "{e}");
        assert!(review(set(&[("AWS_ROLE_ARN", "arn:aws:iam::1:role/r")])).is_ok());
    }

    #[test]
    fn docs_list_the_table() {
        let docs = include_str!("../../../docs/settings.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/settings.md is out of date: paste `walship config --names` into it"
        );
    }
}
