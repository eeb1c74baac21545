//! The SQL session backup-push runs pg_backup_start/pg_backup_stop in.
//!
//! Connection settings as libpq and WAL-G read them (PGHOST, PGPORT, PGUSER,
//! PGDATABASE, PGPASSWORD or the password file, PGAPPNAME, and TLS:
//! PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, see `pg_tls.rs`); when
//! PGHOST/PGPORT are unset, the socket directory and port the server in the
//! data directory listens on, from its postmaster.pid, else
//! /var/run/postgresql and 5432.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::pg_tls::{SslMode, TlsSettings};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSettings {
    /// A socket directory (starts with `/`) or a host name.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<String>,
    /// PGAPPNAME, else the caller's name.
    pub application_name: Option<String>,
    pub tls: TlsSettings,
}

impl ConnSettings {
    /// `var` looks a name up in the resolved settings (environment, then the
    /// config file's upper-case keys).
    pub fn resolve(var: impl Fn(&str) -> Option<String>, data_dir: &Path) -> Result<Self, String> {
        let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok();
        let pid_line = |n: usize| {
            pid_file
                .as_deref()
                .and_then(|t| t.lines().nth(n))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
        };
        let host = var("PGHOST")
            .or_else(|| pid_line(4))
            .unwrap_or_else(|| "/var/run/postgresql".into());
        // A host list (libpq's "a,b") is not supported: take the first.
        let host = host.split(',').next().unwrap_or_default().to_string();
        let port_text = var("PGPORT")
            .or_else(|| pid_line(3))
            .unwrap_or_else(|| "5432".into());
        let port = port_text
            .parse()
            .map_err(|_| format!("PGPORT={port_text:?} is not a port number"))?;
        let user = var("PGUSER").unwrap_or_else(os_user);
        let dbname = var("PGDATABASE").unwrap_or_else(|| "postgres".into());
        let tls = TlsSettings::resolve(&var)?;
        let password = var("PGPASSWORD").or_else(|| {
            let file = var("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
            password_from_file(&file, &host, port, &dbname, &user)
        });
        Ok(Self {
            host,
            port,
            user,
            dbname,
            password,
            application_name: var("PGAPPNAME"),
            tls,
        })
    }

    /// Where we tried, for messages.
    pub fn describe(&self) -> String {
        format!(
            "host {} port {} as user {} (database {}, sslmode {})",
            self.host,
            self.port,
            self.user,
            self.dbname,
            self.tls.mode.name()
        )
    }

    /// A Unix-domain socket: libpq never uses TLS there.
    fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    pub async fn connect(&self, application_name: &str) -> Result<tokio_postgres::Client, String> {
        let fail = |e: String| format!("cannot connect to PostgreSQL at {}: {e}", self.describe());
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(self.application_name.as_deref().unwrap_or(application_name))
            .connect_timeout(Duration::from_secs(15));
        if let Some(p) = &self.password {
            config.password(p);
        }
        use tokio_postgres::config::SslMode as Wire;
        let plain_only = self.is_socket() || self.tls.mode == SslMode::Disable;
        let tls = if plain_only {
            None
        } else {
            Some(self.tls.client_config().map_err(fail)?)
        };
        let encrypted = async |config: &mut tokio_postgres::Config| {
            let tls = tls.clone().expect("built for every mode that may use TLS");
            let (client, connection) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await?;
            spawn_connection(connection);
            Ok::<_, tokio_postgres::Error>(client)
        };
        let client = match self.tls.mode {
            _ if plain_only => self.plain(config).await,
            // Plain text first; TLS only if the server refuses it.
            SslMode::Allow => match self.plain(config.clone()).await {
                Err(e) if e.as_db_error().is_some() => {
                    encrypted(config.ssl_mode(Wire::Require)).await
                }
                other => other,
            },
            SslMode::Prefer => encrypted(config.ssl_mode(Wire::Prefer)).await,
            // tokio-postgres sends nothing but the TLS request until the
            // server has agreed to TLS: no password ever goes out in clear.
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                encrypted(config.ssl_mode(Wire::Require)).await
            }
            SslMode::Disable => unreachable!("plain_only"),
        };
        client.map_err(|e| {
            let hint = if self.tls.mode.requires_tls() && chain(&e).contains("does not support TLS") {
                "; nothing was sent in clear (enable ssl on the server, or lower PGSSLMODE knowingly)"
            } else {
                ""
            };
            fail(format!("{}{hint}", chain(&e)))
        })
    }

    async fn plain(
        &self,
        mut config: tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        spawn_connection(connection);
        Ok(client)
    }
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("walship: PostgreSQL connection: {}", chain(&e));
        }
    });
}

/// libpq's password file: `host:port:database:user:password` lines, `*`
/// matching anything, `\:` and `\\` escaped; ignored (as libpq does) when
/// others may read it. A socket connection matches `localhost`.
fn password_from_file(
    file: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        crate::logging::log_line(
            crate::logging::LogLevelFilter::Warn,
            &format!(
                "password file {} has group or world access and is not used (chmod 0600 it)",
                file.display()
            ),
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let host_names: Vec<&str> = if host.starts_with('/') {
        vec!["localhost", host]
    } else {
        vec![host]
    };
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f = pgpass_fields(l);
            (f.len() == 5).then_some(f)
        })
        .find(|f| {
            let m = |field: &str, v: &str| field == "*" || field == v;
            host_names.iter().any(|h| m(&f[0], h))
                && m(&f[1], &port)
                && m(&f[2], dbname)
                && m(&f[3], user)
        })
        .map(|f| f[4].clone())
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            // The password is the rest of the line, colons and all.
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// An error with its causes, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// libpq's default user: the operating-system user we run as.
fn os_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we
    // copy the name out before any other call could overwrite it.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null()
            && !(*pw).pw_name.is_null()
            && let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str()
        {
            return name.to_string();
        }
    }
    "postgres".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_postmaster_pid_when_pghost_and_pgport_are_unset() {
        let dir = std::env::temp_dir().join(format!("walship-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("postmaster.pid"),
            "4242\n/data\n1700000000\n5433\n/tmp/sock\n*\n  1234  5678\nready\n",
        )
        .unwrap();
        let vars: BTreeMap<&str, &str> = [("PGUSER", "backup")].into();
        let get = |n: &str| vars.get(n).map(|v| v.to_string());
        let c = ConnSettings::resolve(get, &dir).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/tmp/sock", 5433));
        assert_eq!((c.user.as_str(), c.dbname.as_str()), ("backup", "postgres"));
        let vars: BTreeMap<&str, &str> = [("PGHOST", "db.example"), ("PGPORT", "6000")].into();
        let get = |n: &str| vars.get(n).map(|v| v.to_string());
        let c = ConnSettings::resolve(get, &dir).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("db.example", 6000));
        std::fs::remove_dir_all(&dir).unwrap();
        let c = ConnSettings::resolve(|_| None, &dir).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("/var/run/postgresql", 5432));
    }
}
