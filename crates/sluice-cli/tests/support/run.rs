//! `sluice run` as a child process: to its end, or started and read line
//! by line from its stderr (to kill it at a moment the test chooses).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `sluice run FILE ARGS` to its end; panics with what it said if it
/// fails. Its stderr.
pub fn run_to_end(file: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(file)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sluice run failed:\n{stderr}");
    stderr
}

/// A running `sluice run`: its stderr, line by line as it comes.
pub struct Run {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    /// What it said that [`Run::wait_for`] read.
    pub said: Vec<String>,
}

impl Run {
    /// Starts `sluice run FILE ARGS` with `SLUICE_FAULT=faults`.
    pub fn start(file: &Path, args: &[&str], faults: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg(file)
            .args(args)
            .env("SLUICE_FAULT", faults)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            said: Vec::new(),
        }
    }

    /// Waits for a line that contains `text`, for up to `within`; false if
    /// the run said nothing such in time (or ended).
    pub fn wait_for(&mut self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.said.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits for a checkpoint that read records to commit (a `--verbose`
    /// run's "checkpoint N committed: R records read" with R > 0), for up
    /// to `within`; false if none did in time.
    pub fn wait_for_checkpoint_that_read(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !self.wait_for(" committed: ", left) {
                return false;
            }
            let read = self.said.last().and_then(|line| {
                line.split(" committed: ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            });
            if read.is_some_and(|n| n > 0) {
                return true;
            }
        }
        false
    }

    /// It has not ended.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills it with SIGKILL; true if the signal ended it (it had not
    /// ended by itself).
    pub fn kill(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        status.signal() == Some(9)
    }

    /// Waits for its end, for up to `limit` (then kills it and says so);
    /// whether it succeeded, and everything it said.
    pub fn finish_within(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return self.finish();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let (_, said) = self.finish();
                return (false, format!("it did not end within {limit:?}:\n{said}"));
            }
            // What it says meanwhile, so that its pipe never fills.
            while let Ok(line) = self.lines.try_recv() {
                self.said.push(line);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for its end; its exit status and everything it said.
    pub fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        self.said.extend(self.lines.iter());
        if !status.success() {
            self.said.push(format!("({status})"));
        }
        (status.success(), self.said.join("\n"))
    }
}
