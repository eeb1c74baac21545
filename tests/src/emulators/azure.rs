//! Azurite, Microsoft's Azure Storage emulator (npm `azurite`, blob service
//! only), with the well-known development account. It checks SharedKey and
//! SAS signatures and SAS permissions, and answers conditional creates as
//! Azure does.
//!
//! Azurite stores blobs in a database of its own, so what was stored is read
//! back by `azure_tool.py` (python3, stdlib only, signed with the account
//! key): an independent view that does not go through walship. The same
//! script creates containers and makes SAS tokens (the test crate has no
//! dependencies, so no HMAC of its own).
//!
//! `.ci/install-test-tools` installs Azurite into its cache; or point
//! `WALSHIP_TEST_AZURITE` at an `azurite-blob` executable.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use super::{INSTALL_HINT, Server, answers_http, tools_cache};
use crate::archive::WalshipArchive;
use crate::process::Run;
use crate::scratch::Scratch;

pub const AZURITE_VERSION: &str = "3.35.0";

const TOOL_SCRIPT: &str = include_str!("azure_tool.py");

/// The `azurite-blob` executable; panics with the way to install it when it
/// is missing.
pub fn azurite_bin() -> PathBuf {
    let bin = match std::env::var_os("WALSHIP_TEST_AZURITE") {
        Some(path) => PathBuf::from(path),
        None => tools_cache().join(format!(
            "azurite-{AZURITE_VERSION}/node_modules/.bin/azurite-blob"
        )),
    };
    assert!(
        bin.is_file(),
        "Azurite {AZURITE_VERSION} is not installed: {INSTALL_HINT} (looked for {})",
        bin.display()
    );
    bin
}

/// Azurite's blob service on a free port of 127.0.0.1, with container
/// [`Azurite::CONTAINER`].
#[derive(Debug)]
pub struct Azurite {
    _server: Server,
    port: u16,
    tool: PathBuf,
    // Keeps the data directory until the server is gone.
    _scratch: Scratch,
}

impl Azurite {
    pub const ACCOUNT: &str = "devstoreaccount1";
    /// The development account's published key.
    pub const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    /// The container every instance has.
    pub const CONTAINER: &str = "walship";

    /// Starts Azurite with a new data directory `azurite/` in `scratch`;
    /// returns once it answers and [`Azurite::CONTAINER`] exists.
    pub fn start(scratch: &Scratch) -> Azurite {
        let bin = azurite_bin();
        let root = scratch.dir("azurite");
        let data = root.join("data");
        fs::create_dir_all(&data).expect("create Azurite data directory");
        let tool = root.join("azure_tool.py");
        fs::write(&tool, TOOL_SCRIPT).expect("write azure_tool.py");
        let (server, port) = Server::start(
            "azurite",
            root.join("azurite.log"),
            |port| {
                let mut cmd = Command::new(&bin);
                cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                    .arg("--location")
                    .arg(&data)
                    // Otherwise it tries to reach applicationinsights.azure.com.
                    .arg("--disableTelemetry")
                    .arg("--skipApiVersionCheck")
                    .arg("--silent");
                cmd
            },
            answers_http,
        );
        let azurite = Azurite {
            _server: server,
            port,
            tool,
            _scratch: scratch.clone(),
        };
        azurite.create_container(Self::CONTAINER);
        azurite
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The blob service URL (path-style: the account is the first segment).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, Self::ACCOUNT)
    }

    /// A standard connection string for this account, with `BlobEndpoint`.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            Self::ACCOUNT,
            Self::KEY,
            self.endpoint()
        )
    }

    /// Shared key auth in WAL-G's settings, the endpoint in the Azure CLI's.
    pub fn shared_key_env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT".into(), Self::ACCOUNT.into()),
            ("AZURE_STORAGE_ACCESS_KEY".into(), Self::KEY.into()),
            ("AZURE_STORAGE_SERVICE_ENDPOINT".into(), self.endpoint()),
        ]
    }

    /// The connection string, and the same endpoint in a plain setting (a
    /// secret cannot widen what the host lets the plugin reach).
    pub fn connection_string_env(&self) -> Vec<(String, String)> {
        vec![(
            "AZURE_STORAGE_CONNECTION_STRING".into(),
            self.connection_string(),
        )]
    }

    /// SAS auth with an account SAS of `permissions` (e.g. "rl").
    pub fn sas_env(&self, permissions: &str) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT".into(), Self::ACCOUNT.into()),
            ("AZURE_STORAGE_SAS_TOKEN".into(), self.sas(permissions)),
            ("AZURE_STORAGE_SERVICE_ENDPOINT".into(), self.endpoint()),
        ]
    }

    /// walship archiving to `azure://walship/<path>` with `env`.
    pub fn archive(
        &self,
        scratch: &Scratch,
        path: &str,
        env: Vec<(String, String)>,
    ) -> WalshipArchive {
        let mut archive =
            WalshipArchive::new(scratch, format!("azure://{}/{path}", Self::CONTAINER));
        for (key, value) in env {
            archive = archive.with_env(&key, value);
        }
        archive
    }

    /// Runs `azure_tool.py <command> <args>`; its stdout.
    #[track_caller]
    fn tool(&self, command: &str, args: &[&str]) -> String {
        Run::new("python3")
            .arg(&self.tool)
            .args([self.endpoint().as_str(), Self::ACCOUNT, Self::KEY, command])
            .args(args)
            .quiet()
            .run()
            .ok()
            .stdout
    }

    pub fn create_container(&self, container: &str) {
        self.tool("create-container", &[container]);
    }

    /// An account SAS token (blob service) with `permissions`, valid a day.
    pub fn sas(&self, permissions: &str) -> String {
        self.tool("account-sas", &[permissions]).trim().to_string()
    }

    /// `count` one-line blobs `<prefix>0000`, `<prefix>0001`, ... in
    /// [`Azurite::CONTAINER`], written with the account key.
    pub fn put_many(&self, prefix: &str, count: usize) {
        self.tool("put", &[Self::CONTAINER, prefix, &count.to_string()]);
    }

    /// Committed blobs under `prefix` of [`Azurite::CONTAINER`] with their
    /// sizes, every page, sorted: what is really stored.
    pub fn stored(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut blobs: Vec<(String, u64)> = self
            .tool("list", &[Self::CONTAINER, prefix])
            .lines()
            .filter_map(|line| {
                let (name, size) = line.rsplit_once('\t')?;
                Some((name.to_string(), size.parse().ok()?))
            })
            .collect();
        blobs.sort();
        blobs
    }

    /// Names of the committed blobs under `prefix`.
    pub fn stored_names(&self, prefix: &str) -> Vec<String> {
        self.stored(prefix).into_iter().map(|(n, _)| n).collect()
    }

    /// The bytes of blob `name` of [`Azurite::CONTAINER`].
    pub fn blob(&self, name: &str) -> Vec<u8> {
        // Bytes, not text: `Run` keeps stdout as a String.
        let out = std::process::Command::new("python3")
            .arg(&self.tool)
            .args([self.endpoint().as_str(), Self::ACCOUNT, Self::KEY, "get"])
            .args([Self::CONTAINER, name])
            .output()
            .expect("run azure_tool.py get");
        assert!(
            out.status.success(),
            "azure_tool.py get {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Looks at blob `name` as fast as it can until it is listed with
    /// `size` bytes or `seconds` pass (`azure_tool.py watch`).
    pub fn watch(&self, name: &str, size: u64, seconds: u64) -> Watched {
        let out = self.tool(
            "watch",
            &[
                Self::CONTAINER,
                name,
                &size.to_string(),
                &seconds.to_string(),
            ],
        );
        let mut watched = Watched::default();
        for line in out.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["HALF", size] => watched.half_sizes.push(size.parse().unwrap_or(0)),
                ["looks", n, "unlisted-with-blocks", m, "complete", c] => {
                    watched.looks = n.parse().unwrap_or(0);
                    watched.unlisted_with_blocks = m.parse().unwrap_or(0);
                    watched.complete = *c == "1";
                }
                _ => panic!("azure_tool.py watch said {line:?}"),
            }
        }
        watched
    }

    /// `(committed, uncommitted)` block counts of blob `name`, or `None`
    /// when Azure knows no such blob (not even uncommitted blocks).
    pub fn blocks(&self, name: &str) -> Option<(usize, usize)> {
        let out = self.tool("blocks", &[Self::CONTAINER, name]);
        let words: Vec<&str> = out.split_whitespace().collect();
        match words.as_slice() {
            ["committed", c, "uncommitted", u] => Some((c.parse().ok()?, u.parse().ok()?)),
            _ => None,
        }
    }
}

/// What [`Azurite::watch`] saw of a blob being written.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub looks: u64,
    /// Looks that found uploaded blocks but no blob listed.
    pub unlisted_with_blocks: u64,
    /// Sizes it was listed with that were not the whole object.
    pub half_sizes: Vec<u64>,
    /// It was finally listed with the whole size.
    pub complete: bool,
}
