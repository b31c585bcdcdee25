//! A private PostgreSQL server for a test: a cluster made with `initdb` in
//! a temporary folder, started on a free loopback port with logical
//! replication on, stopped (immediately) when dropped.
//!
//! The server's programs come from `SLUICE_PG_BIN`, `pg_config --bindir`
//! or Debian's `/usr/lib/postgresql/VERSION/bin` (`.ci/run` installs the
//! package). The server refuses to run as root, so as root (CI) the cluster
//! is made and run by the `postgres` user the package creates.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server; stopped when dropped.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Postgres {
    /// Makes and starts a cluster; panics with what failed (a test that
    /// needs the server never passes without it).
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg")
            .tempdir()
            .expect("a temporary folder");
        let data = dir.path().join("data");
        let root = is_root();
        if root {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster's folder failed");
        }
        run(
            root,
            Command::new(bin.join("initdb")).arg("-D").arg(&data).args([
                "-U",
                "sluice",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_replication_slots = 8\nmax_wal_senders = 8\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            dir.path().display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("postgresql.conf");
        run(
            root,
            Command::new(bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("log"))
                .args(["-w", "-t", "120", "start"]),
            "pg_ctl start",
        );
        Postgres {
            bin,
            data,
            _dir: dir,
            port,
        }
    }

    /// The connection string of database `postgres` as user `sluice`.
    pub fn url(&self) -> String {
        format!("postgresql://sluice@127.0.0.1:{}/postgres", self.port)
    }

    /// A connection.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("connect to the test server")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_user(
            is_root(),
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "stop"]),
        )
        .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `command` as the `postgres` user when `root`.
fn as_user(root: bool, command: &Command) -> Command {
    let mut out = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(command.get_program());
        c
    } else {
        Command::new(command.get_program())
    };
    out.args(command.get_args());
    out
}

fn run(root: bool, command: &mut Command, what: &str) {
    let output = as_user(root, command).output().unwrap_or_else(|e| {
        panic!("{what} could not start ({e}): is PostgreSQL's server installed?")
    });
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SLUICE_PG_BIN") {
        return PathBuf::from(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|d| Path::new(d).join("initdb").exists())
        .expect(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: install the \
             postgresql package (.ci/run does), or set SLUICE_PG_BIN",
        )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
