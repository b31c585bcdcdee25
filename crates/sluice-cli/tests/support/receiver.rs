//! An HTTP receiver for the http sink's tests: a server on a free loopback
//! port that answers each POST as a test's policy says and records what it
//! accepted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the receiver answers: a status, and a `Retry-After` if any.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Seconds to wait, for a 429 or 503.
    pub retry_after: Option<u64>,
}

/// A request the receiver saw.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its `Idempotency-Key`.
    pub key: String,
    /// Its body.
    pub body: String,
    /// Its headers, names in lower case.
    pub headers: HashMap<String, String>,
}

/// Decides the answer to the `n`th try (from 0) of a request.
pub type Policy = dyn Fn(&Request, usize) -> Answer + Send + Sync;

/// A running receiver.
pub struct Receiver {
    /// Its URL (`http://127.0.0.1:PORT/hook`).
    pub url: String,
    /// The requests it accepted (a 2xx), in order.
    pub accepted: Arc<Mutex<Vec<Request>>>,
    /// Tries per key.
    pub tries: Arc<Mutex<HashMap<String, usize>>>,
}

impl Receiver {
    /// Starts a receiver that answers as `policy` says.
    pub fn start(policy: Box<Policy>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let tries = Arc::new(Mutex::new(HashMap::new()));
        let policy: Arc<Policy> = Arc::from(policy);
        let (a, t) = (accepted.clone(), tries.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (a, t, policy) = (a.clone(), t.clone(), policy.clone());
                std::thread::spawn(move || serve(stream, &a, &t, &*policy));
            }
        });
        Receiver {
            url,
            accepted,
            tries,
        }
    }
}

/// Answers the requests of one connection.
fn serve(
    stream: TcpStream,
    accepted: &Mutex<Vec<Request>>,
    tries: &Mutex<HashMap<String, usize>>,
    policy: &Policy,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request {
            key: headers.get("idempotency-key").cloned().unwrap_or_default(),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
        };
        let n = {
            let mut tries = tries.lock().unwrap();
            let n = tries.entry(request.key.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let answer = policy(&request, n);
        if (200..300).contains(&answer.status) {
            accepted.lock().unwrap().push(request);
        }
        let retry = answer
            .retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "HTTP/1.1 {} X\r\n{retry}Content-Length: 7\r\n\r\nanswer\n",
            answer.status
        );
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}
