//! `sluice run --ui`: the JSON API and the page, against a running
//! pipeline. The browser test drives headless Chromium (Debian's
//! `chromium`; `.ci/run` installs it, `SLUICE_CHROMIUM` names another) over
//! the DevTools protocol and saves a screenshot.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Input lines; every 97th is broken JSON, every 131st is a minute late.
const LINES: usize = 2400;

fn bad(i: usize) -> bool {
    i % 97 == 50
}

fn late(i: usize) -> bool {
    i % 131 == 70 && !bad(i)
}

/// Whether line `i` passes the filter (`temperature > 5`).
fn warm(i: usize) -> bool {
    i % 40 >= 5
}

/// Writes the input and the pipeline into `dir`; returns the pipeline.
fn pipeline(dir: &Path, rate: u32) -> PathBuf {
    let mut input = String::new();
    let start = 1_767_225_600_000i64;
    for i in 0..LINES {
        let ts = start + 100 * i as i64 - if late(i) { 60_000 } else { 0 };
        if bad(i) {
            input.push_str(&format!(
                "{{\"sensor\": \"s{}\", \"temperature\": \n",
                i % 5
            ));
        } else {
            input.push_str(&format!(
                "{{\"sensor\": \"s{}\", \"temperature\": {}.5, \"ts\": {ts}}}\n",
                i % 5,
                i % 40
            ));
        }
    }
    std::fs::write(dir.join("input.jsonl"), input).unwrap();
    let text = format!(
        r#"name = "dashboard-test"

[source]
type = "file"
path = "input.jsonl"
event_time = "ts"
max_out_of_orderness = "1s"
rate = {rate}

[[transform]]
name = "warm"
type = "filter"
where = "temperature > 5"

[[transform]]
name = "per_sensor"
type = "window"
from = "warm"
key = "sensor"
window = {{ type = "tumbling", size = "2s" }}
aggregates = {{ readings = "count(*)", mean = "avg(temperature)" }}

[[sink]]
from = "per_sensor"
type = "file"
path = "out/per_sensor.jsonl"

[[sink]]
from = "late"
type = "file"
path = "out/late.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead_letter.jsonl"
"#
    );
    let path = dir.join("dashboard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `sluice run` with a dashboard, killed when dropped.
struct Run {
    child: Child,
    addr: String,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sluice run` with `--ui 127.0.0.1:0` and `extra`; waits for the
/// dashboard's address on stderr.
fn start(dir: &Path, rate: u32, extra: &[&str]) -> Run {
    let pipeline = pipeline(dir, rate);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&pipeline)
        .args(["--ui", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard: http://") {
                let _ = tx.send(url.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("sluice run printed no dashboard address");
    Run { child, addr }
}

/// Sends `request` as is; the status and body of the answer (of
/// `Content-Length` bytes, or up to the end of the connection).
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("content-length:") {
            length = n.trim().parse::<usize>().ok();
        }
        head.push_str(&line);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {head}"));
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).unwrap();
        }
        None => {
            reader.read_to_end(&mut body).unwrap();
        }
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(addr: &str, path: &str) -> (u16, String) {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

fn json(addr: &str, path: &str) -> Value {
    let (status, body) = get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits (up to a minute) until `done` holds of the snapshot.
fn until(addr: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snapshot = json(addr, "/api/snapshot");
        if done(&snapshot) {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "never {what}: {snapshot:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stream<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stream {name}: {snapshot:#}"))
}

#[test]
fn the_api_shows_a_running_pipeline_live_and_what_it_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        dir.path(),
        600,
        &[
            "--ui-linger",
            "30s",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "300ms",
        ],
    );
    let addr = run.addr.as_str();

    // The graph: source -> warm -> per_sensor -> sink, and the reserved
    // streams to their sinks.
    let graph = json(addr, "/api/graph");
    let ids: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    for id in [
        "source",
        "warm",
        "per_sensor",
        "late",
        "dead_letter",
        "sink:0",
    ] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].to_string(), e["to"].to_string()))
        .collect();
    assert!(edges.contains(&("\"warm\"".into(), "\"per_sensor\"".into())));
    assert!(edges.contains(&("\"late\"".into(), "\"sink:1\"".into())));

    // While it runs: records move, at about the source's pace.
    let first = until(addr, "read records", |s| {
        stream(s, "source")["records"].as_u64() > Some(0)
    });
    assert_eq!(first["run"]["state"], "running", "{first:#}");
    let running = until(addr, "measured a rate", |s| {
        stream(s, "source")["rate"].as_f64() > Some(0.0)
    });
    assert_eq!(running["run"]["state"], "running");
    let rate = stream(&running, "source")["rate"].as_f64().unwrap();
    assert!(rate < 900.0, "the source reads at 600/s, not {rate}");
    assert!(stream(&running, "source")["watermark"].is_i64());

    // Server-Sent Events: a snapshot a second, each with its new point.
    let mut events = TcpStream::connect(addr).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    events
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(events);
    let mut uptimes = Vec::new();
    let mut line = String::new();
    while uptimes.len() < 2 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "events ended");
        if let Some(data) = line.strip_prefix("data: ") {
            let snapshot: Value = serde_json::from_str(data).unwrap();
            assert!(snapshot["point"]["streams"].is_array(), "{snapshot:#}");
            uptimes.push(snapshot["uptime_s"].as_f64().unwrap());
        }
    }
    assert!(
        uptimes[1] - uptimes[0] > 0.5,
        "updates a second apart: {uptimes:?}"
    );

    // At the end: every refusal counted and shown with its reason.
    let end = until(addr, "finished", |s| s["run"]["state"] == "finished");
    let bad_lines = (0..LINES).filter(|&i| bad(i)).count() as u64;
    let late_lines = (0..LINES).filter(|&i| late(i) && warm(i)).count() as u64;
    assert_eq!(end["dead_letter"]["count"], bad_lines, "{end:#}");
    assert_eq!(end["late"]["count"], late_lines, "{end:#}");
    let dead = &end["dead_letter"]["newest"][0];
    assert!(dead["reason"].as_str().unwrap().len() > 5, "{dead:#}");
    assert!(bad(dead["line"].as_u64().unwrap() as usize - 1), "{dead:#}");
    let refused = &end["late"]["newest"][0];
    assert_eq!(refused["transform"], "per_sensor");
    assert!(
        late(refused["line"].as_u64().unwrap() as usize - 1),
        "{refused:#}"
    );
    // A minute late, less the watermark's bound and the window's offset.
    let behind = refused["behind_ms"].as_i64().unwrap();
    assert!((55_000..=62_000).contains(&behind), "{refused:#}");
    let (start, end_ms) = (
        refused["window"][0].as_i64().unwrap(),
        refused["window"][1].as_i64().unwrap(),
    );
    assert_eq!(end_ms - start, 2000, "{refused:#}");
    let event_time = refused["event_time"].as_i64().unwrap();
    assert!((start..end_ms).contains(&event_time), "{refused:#}");

    // Windows fired by watermarks, then the end of input.
    let firings = end["firings"]["newest"].as_array().unwrap();
    assert!(end["firings"]["count"].as_u64() > Some(10), "{end:#}");
    assert!(firings[0]["watermark"].is_null(), "the end fires last");
    let fired = &firings[1];
    let upto = fired["windows"][1].as_i64().unwrap();
    assert!(
        upto <= fired["watermark"].as_i64().unwrap() + 1,
        "windows close at or before the watermark that fires them: {fired:#}"
    );
    // Checkpoints, with their size and duration.
    assert!(end["checkpoints"]["enabled"].as_bool().unwrap());
    assert!(
        end["checkpoints"]["committed"].as_u64() > Some(2),
        "{end:#}"
    );
    let checkpoint = &end["checkpoints"]["newest"][0];
    assert!(checkpoint["bytes"].as_u64() > Some(0), "{checkpoint:#}");

    // History: throughput, batches and latency, a point a second.
    let history = json(addr, "/api/history");
    let points = history["points"].as_array().unwrap();
    assert!(points.len() >= 3, "{history:#}");
    assert_eq!(history["streams"][0], "source");
    assert!(points
        .iter()
        .any(|p| p["latency"]["rows"].as_u64() > Some(0)));
    assert!(points
        .iter()
        .any(|p| p["streams"][0]["mean_batch"].as_f64() > Some(0.0)));
    // The figures agree with the run's own output.
    let written = std::fs::read_to_string(dir.path().join("out/late.jsonl")).unwrap();
    assert_eq!(written.lines().count() as u64, late_lines);
}

#[test]
fn the_dashboard_is_read_only_small_and_local_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let run = start(dir.path(), 2000, &["--ui-linger", "30s"]);
    let addr = run.addr.as_str();
    assert_eq!(get(addr, "/").0, 200);
    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<svg id=\"graph\""));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
    assert_eq!(get(addr, "/app.js").0, 200);
    assert_eq!(get(addr, "/nothing").0, 404);
    let api = json(addr, "/api");
    assert!(api["endpoints"]["/api/events"].is_string());
    let post = "POST /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    assert_eq!(raw(addr, post).0, 405);
    let body = "GET /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(raw(addr, body).0, 413);
    let huge = format!(
        "GET /api/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(raw(addr, &huge).0, 431);
    // A name that is not this machine's (DNS rebinding) is refused.
    let rebound = "GET /api/snapshot HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(addr, rebound).0, 421);
    let rebound =
        "GET /api/snapshot HTTP/1.1\r\nHost: 127.evil.example\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(addr, rebound).0, 421);
}

#[test]
fn a_token_guards_every_request() {
    let dir = tempfile::tempdir().unwrap();
    // Not loopback and no token: refused before anything runs.
    let pipeline = pipeline(dir.path(), 1000);
    let refused = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&pipeline)
        .args(["--ui", "0.0.0.0:0"])
        .env_remove("SLUICE_UI_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--ui-token"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing ran");

    let token = "0123456789abcdef0123";
    let run = start(
        dir.path(),
        1000,
        &["--ui-token", token, "--ui-linger", "30s"],
    );
    let addr = run.addr.as_str();
    for path in ["/api/snapshot", "/api/events", "/api/graph", "/api"] {
        assert_eq!(get(addr, path).0, 401, "{path}");
    }
    // The page and its assets hold no data: they load, and the page passes
    // the token of its URL on.
    for path in ["/", "/app.js", "/app.css"] {
        assert_eq!(get(addr, path).0, 200, "{path}");
    }
    assert_eq!(
        get(addr, "/api/snapshot?token=wrong-token-0123456789").0,
        401
    );
    assert_eq!(get(addr, &format!("/api/snapshot?token={token}")).0, 200);
    let bearer = format!(
        "GET /api/graph HTTP/1.1\r\nHost: anything\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(addr, &bearer).0, 200);
}

// ---- the browser test ----------------------------------------------------

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|dir| dir.join(name).is_file())
        {
            return dir.join(name);
        }
    }
    panic!(
        "the dashboard's browser test needs Chromium: `apt-get install chromium` (.ci/run \
         installs it), or set SLUICE_CHROMIUM to a Chrome or Chromium binary"
    );
}

/// A page of headless Chromium, driven over the DevTools protocol.
struct Browser {
    child: Child,
    socket: tungstenite::WebSocket<TcpStream>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,2200",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start Chromium");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("Chromium printed no DevTools address");
        let host = browser_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        // The page's own socket, from the list of targets.
        let deadline = Instant::now() + Duration::from_secs(30);
        let page_url = loop {
            let (_, body) = get(&host, "/json/list");
            let targets: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let page = targets.as_array().and_then(|t| {
                t.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                    .map(str::to_string)
            });
            if let Some(page) = page {
                break page;
            }
            assert!(Instant::now() < deadline, "no page in {body}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (socket, _) = tungstenite::client(page_url.as_str(), stream).unwrap();
        Browser {
            child,
            socket,
            next: 0,
            _profile: profile,
        }
    }

    /// Calls `method`; its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = serde_json::json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let answer: Value = serde_json::from_str(text).unwrap();
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }
}

/// What the page shows, read from its DOM.
const LOOK: &str = r##"JSON.stringify({
  updates: Number(document.body.dataset.updates || 0),
  state: document.getElementById("state").textContent,
  nodes: document.querySelectorAll("#graph g.node").length,
  edges: [...document.querySelectorAll("#graph g.edge text")].map(t => t.textContent),
  points: [...document.querySelectorAll("canvas.chart")].map(c => Number(c.dataset.points || 0)),
  dead: document.getElementById("dead-count").textContent,
  late: document.querySelectorAll("#late tbody tr").length,
  firings: document.querySelectorAll("#firings tbody tr").length,
  checkpoints: document.querySelectorAll("#checkpoints tbody tr").length,
})"##;

#[test]
fn headless_chromium_sees_the_graph_and_the_charts_update() {
    let mut browser = Browser::launch();
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        dir.path(),
        300,
        &[
            "--ui-linger",
            "60s",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "500ms",
        ],
    );
    browser.call("Page.enable", serde_json::json!({}));
    browser.call(
        "Page.navigate",
        serde_json::json!({ "url": format!("http://{}/", run.addr) }),
    );
    let look = |browser: &mut Browser| -> Value {
        let text = browser.eval(LOOK);
        serde_json::from_str(text.as_str().unwrap_or("null")).unwrap_or(Value::Null)
    };
    let wait = |browser: &mut Browser, what: &str, done: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = look(browser);
            if done(&seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "the page never {what}: {seen:#}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // The graph: source, filter, window, two reserved streams, three sinks.
    let first = wait(&mut browser, "drew the graph and got live data", &|s| {
        s["nodes"] == 8 && s["updates"].as_u64() >= Some(1) && s["state"] == "running"
    });
    let total = |s: &Value| -> u64 {
        s["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .sum()
    };
    let before = total(&first);
    // A few seconds later, while the run goes on, the charts have grown.
    let later = wait(&mut browser, "updated its charts", &|s| {
        s["updates"].as_u64() >= Some(first["updates"].as_u64().unwrap() + 2)
            && total(s) > before
            && s["points"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p.as_u64() > Some(0))
    });
    assert!(
        later["edges"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .unwrap()
            .starts_with("source: ")
            && e.as_str().unwrap().ends_with("/s")),
        "edges carry rates: {later:#}"
    );
    // The refusals, the firings and the checkpoints reach the page.
    let shown = wait(
        &mut browser,
        "showed late events, dead letters, firings, checkpoints",
        &|s| {
            s["dead"] != "0"
                && s["late"].as_u64() > Some(0)
                && s["firings"].as_u64() > Some(0)
                && s["checkpoints"].as_u64() > Some(0)
        },
    );
    assert!(shown["updates"].as_u64() >= later["updates"].as_u64());
    let shot = browser.call(
        "Page.captureScreenshot",
        serde_json::json!({ "format": "png" }),
    );
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = std::env::var_os("SLUICE_SCREENSHOT").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
        PathBuf::from,
    );
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}
