//! The http source: records POSTed by clients that send each request until
//! it is answered 202 (under the same `Idempotency-Key`) arrive in the
//! output exactly once, through SIGKILLs of the pipeline; a test-only fault
//! that answers before a checkpoint holds the records makes the same test
//! lose some. Overload is answered 429 with bounded pending records, a
//! large body 413, a request without the token 401.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pipeline(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
name = "ingest"

[source]
type = "http"
listen = "127.0.0.1:{port}"
schema = {{ id = "int", sensor = "string", temperature = "float", ts = "int" }}
event_time = "ts"
end_after_idle = "3s"
{extra}

[[transform]]
name = "readings"
type = "filter"
where = "temperature IS NOT NULL"

[[sink]]
from = "readings"
type = "file"
path = "out/readings.jsonl"

[[sink]]
from = "dead_letter"
type = "file"
path = "out/dead_letter.jsonl"
"#
    );
    let file = dir.join("p.toml");
    fs::write(&file, text).unwrap();
    file
}

fn start(file: &Path, args: &[&str], faults: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(file)
        .args(args)
        .env("SLUICE_FAULT", faults)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The body of request `i`: 20 readings, ids `20 i ..`.
fn body(i: u64) -> String {
    let rows: Vec<String> = (0..20)
        .map(|j| {
            let id = i * 20 + j;
            format!(
                "{{\"id\":{id},\"sensor\":\"s{}\",\"temperature\":{},\"ts\":{}}}",
                id % 3,
                id % 50,
                1_700_000_000_000 + id * 10
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// Sends request `i` until it is answered 202 (connections refused while
/// the pipeline restarts are tried again); returns the answers seen.
fn send_until_accepted(agent: &ureq::Agent, url: &str, i: u64, stop: &AtomicBool) -> Vec<u16> {
    let mut seen = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let answer = agent
            .post(url)
            .header("Idempotency-Key", format!("request-{i}"))
            .header("Content-Type", "application/json")
            .send(body(i).as_str());
        match answer {
            Ok(r) => {
                seen.push(r.status().as_u16());
                if r.status() == 202 {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    seen
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// How many times each id is in the output.
fn ids(dir: &Path) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    let text = fs::read_to_string(dir.join("out/readings.jsonl")).unwrap_or_default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *out.entry(v["id"].as_u64().unwrap()).or_default() += 1;
    }
    out
}

/// Clients send `requests` requests while the pipeline is killed `kills`
/// times; then it runs to its end. Ok if every record is in the output
/// once.
/// What a kill test found wrong (its fields are read through `Debug`, in
/// assertion messages).
#[derive(Debug)]
#[allow(dead_code)]
enum Wrong {
    /// Records missing and repeated in the output.
    Output { missing: usize, repeated: usize },
    /// A run failed, or the clients did not finish.
    Run(String),
}

fn kill_while_ingesting(requests: u64, kills: usize, faults: &str) -> Result<(), Wrong> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = pipeline(dir.path(), port, "");
    let state = dir.path().join("state");
    let state_arg = state.to_string_lossy().into_owned();
    let args = ["--state-dir", &state_arg, "--checkpoint-interval", "200ms"];
    let url = format!("http://127.0.0.1:{port}/ingest");
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = agent();
                for i in (c..requests).step_by(2) {
                    send_until_accepted(&agent, &url, i, &stop);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    for k in 0..kills {
        let mut run = start(&file, &args, faults);
        std::thread::sleep(Duration::from_millis(700 + 137 * k as u64 % 400));
        let _ = run.kill();
        let _ = run.wait();
    }
    // The last run: it ends once the clients are done and it has been idle.
    let mut run = start(&file, &args, faults);
    for client in clients {
        while !client.is_finished() {
            if Instant::now() > deadline {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        client.join().unwrap();
    }
    let status = run.wait().unwrap();
    if !status.success() {
        return Err(Wrong::Run(format!("the last run failed: {status}")));
    }
    if stop.load(Ordering::SeqCst) {
        return Err(Wrong::Run("the clients did not finish in time".into()));
    }
    let seen = ids(dir.path());
    let missing: Vec<u64> = (0..requests * 20)
        .filter(|id| !seen.contains_key(id))
        .collect();
    let repeated: Vec<u64> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    if !missing.is_empty() || !repeated.is_empty() {
        println!(
            "missing from {:?}, repeated from {:?}",
            missing.first(),
            repeated.first()
        );
        return Err(Wrong::Output {
            missing: missing.len(),
            repeated: repeated.len(),
        });
    }
    Ok(())
}

#[test]
fn records_answered_202_are_in_the_output_once_through_sigkills() {
    kill_while_ingesting(300, 4, "").unwrap();
}

#[test]
fn the_kill_test_catches_answers_given_before_a_checkpoint() {
    let outcome = kill_while_ingesting(300, 4, "http-answer-early");
    assert!(
        matches!(outcome, Err(Wrong::Output { missing, .. }) if missing > 0),
        "{outcome:?}"
    );
}

#[test]
fn overload_is_answered_429_and_nothing_accepted_is_lost() {
    // The sink is an http receiver that takes 20 ms a request, one row a
    // request: the source's queue fills, and requests past 100 pending
    // rows are answered 429.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_url = format!("http://{}/hook", slow.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        for stream in slow.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                    if out.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = pipeline(dir.path(), port, "max_pending = 100\nmax_body = 100000");
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "\n[[sink]]\nfrom = \"readings\"\ntype = \"http\"\nurl = \"{slow_url}\"\n"
    ));
    fs::write(&file, text).unwrap();
    let mut run = start(&file, &[], "");
    let url = format!("http://127.0.0.1:{port}/ingest");
    let agent = agent();
    // Too large: 413. Not JSON: 400.
    let big = format!("[{}]", vec!["{}"; 40_000].join(","));
    let answer = loop {
        match agent.post(&url).send(big.as_str()) {
            Ok(r) => break r.status().as_u16(),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(answer, 413);
    let stop = AtomicBool::new(false);
    let mut statuses = Vec::new();
    for i in 0..15 {
        statuses.extend(send_until_accepted(&agent, &url, i, &stop));
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(run.wait().unwrap().success());
    let seen = ids(dir.path());
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1));
}

#[test]
fn a_request_without_the_token_is_answered_401() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = pipeline(dir.path(), port, "token_env = \"INGEST_TOKEN\"");
    let mut run = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(&file)
        .env("INGEST_TOKEN", "s3cret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let agent = agent();
    let without = loop {
        match agent.post(&url).send(body(0).as_str()) {
            Ok(r) => break r.status().as_u16(),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(without, 401);
    let wrong = agent
        .post(&url)
        .header("Authorization", "Bearer nope")
        .send(body(0).as_str())
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = agent
        .post(&url)
        .header("Authorization", "Bearer s3cret")
        .send(body(1).as_str())
        .unwrap();
    assert_eq!(right.status(), 202);
    assert!(run.wait().unwrap().success());
    let seen = ids(dir.path());
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (20..40).collect::<Vec<_>>()
    );
}
