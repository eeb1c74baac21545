//! The SQL session backup-push runs pg_backup_start/pg_backup_stop in.
//!
//! Connection settings as libpq and WAL-G read them (PGHOST, PGPORT, PGUSER,
//! PGDATABASE, PGPASSWORD); when PGHOST/PGPORT are unset, the socket
//! directory and port the server in the data directory listens on, from
//! its postmaster.pid, else /var/run/postgresql and 5432.

use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSettings {
    /// A socket directory (starts with `/`) or a host name.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<String>,
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
        Ok(Self {
            host,
            port,
            user,
            dbname,
            password: var("PGPASSWORD"),
        })
    }

    /// Where we tried, for messages.
    pub fn describe(&self) -> String {
        format!(
            "host {} port {} as user {} (database {})",
            self.host, self.port, self.user, self.dbname
        )
    }

    pub async fn connect(&self, application_name: &str) -> Result<tokio_postgres::Client, String> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(application_name)
            .connect_timeout(Duration::from_secs(15));
        if let Some(p) = &self.password {
            config.password(p);
        }
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| {
            format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.describe(),
                chain(&e)
            )
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("walship: PostgreSQL connection: {}", chain(&e));
            }
        });
        Ok(client)
    }
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
