//! The web page in a real browser: `dashdice up` serves it, and headless
//! Chromium, driven by tests/browser/play.mjs (playwright-core), signs in as
//! a guest, finds the built-in modes in the mode picker (as `GET
//! /api/v1/modes` lists them), plays a bot to the end (surviving a dropped
//! WebSocket and a reload on the way) and checks the revealed seed against
//! its hash.
//!
//! Needs Chromium, Node.js and tests/browser/node_modules; .ci/prepare
//! installs all three. When one is missing the test fails and says how to
//! install it: a browser test that skips itself would pass unnoticed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dashdice_tests::servers::free_port;
use serde_json::Value;

/// The whole browser run; play.mjs bounds itself to about 3 minutes.
const BROWSER_WITHIN: Duration = Duration::from_secs(240);
/// `dashdice up` starts two servers and compiles the modes first.
const UP_WITHIN: Duration = Duration::from_secs(180);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_owned()
}

/// Fails, naming the command that installs what is missing.
fn require_tools(root: &Path) -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "Chromium is not installed at {}: run `apt-get install -y chromium` (or .ci/prepare), \
         or set CHROMIUM to a Chromium binary",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "Node.js is not installed: run `apt-get install -y nodejs npm` (or .ci/prepare)"
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` in {} (or .ci/prepare)",
        root.display()
    );
    chromium
}

/// `dashdice up`, stopped with SIGINT (as Ctrl-C) when dropped, so a
/// failing test leaves no servers behind.
struct Up {
    child: Child,
    log: PathBuf,
}

impl Up {
    fn start(http_port: u16) -> (Self, mpsc::Receiver<String>) {
        let log = std::env::temp_dir().join(format!(
            "dashdice-browser-up-{}-{http_port}.log",
            std::process::id()
        ));
        let stderr = File::create(&log).expect("a log file for dashdice up");
        let mut child = Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"))
            .arg("up")
            .args(["--nats-url", &format!("nats://127.0.0.1:{}", free_port())])
            .args([
                "--redis-url",
                &format!("redis://127.0.0.1:{}/", free_port()),
            ])
            .args(["--listen", &format!("127.0.0.1:{http_port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn dashdice up");
        // Reads the banner for the page's URL, then keeps draining stdout
        // so `up` never blocks on a full pipe.
        let stdout = child.stdout.take().expect("stdout");
        let (url_tx, url_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("play") {
                    let _ = url_tx.send(url.trim().to_owned());
                }
            }
        });
        (Up { child, log }, url_rx)
    }

    /// The last lines `up` logged, for failure messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGINT, then up to 20 s to stop cleanly; killed after that.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `GET path` answered 200, by hand (HTTP/1.1, one request per connection).
fn get_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[test]
fn a_guest_plays_a_bot_to_the_end_in_a_real_browser() {
    let root = workspace_root();
    let chromium = require_tools(&root);

    let http_port = free_port();
    let (mut up, url) = Up::start(http_port);
    let started = Instant::now();
    let url = loop {
        if let Some(status) = up.exited() {
            panic!("dashdice up exited ({status}):\n{}", up.log_tail());
        }
        if let Ok(url) = url.try_recv() {
            break url;
        }
        assert!(
            started.elapsed() < UP_WITHIN,
            "dashdice up printed no `play` line within {UP_WITHIN:?}:\n{}",
            up.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        url,
        format!("http://127.0.0.1:{http_port}/"),
        "the banner's URL"
    );
    while !get_ok(http_port, "/api/v1/health") {
        assert!(
            started.elapsed() < UP_WITHIN,
            "the gateway did not answer /api/v1/health:\n{}",
            up.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out_path =
        std::env::temp_dir().join(format!("dashdice-browser-{}.out", std::process::id()));
    let err_path =
        std::env::temp_dir().join(format!("dashdice-browser-{}.err", std::process::id()));
    let mut browser = Command::new("node")
        .arg("tests/browser/play.mjs")
        .arg(&url)
        .current_dir(&root)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("run node");
    let deadline = Instant::now() + BROWSER_WITHIN;
    let status = loop {
        if let Some(status) = browser.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = browser.kill();
            let _ = browser.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    let report = format!(
        "play.mjs stdout:\n{stdout}\nplay.mjs stderr:\n{stderr}\ndashdice up (last lines):\n{}",
        up.log_tail()
    );
    let Some(status) = status else {
        panic!("the browser run took over {BROWSER_WITHIN:?}\n{report}");
    };
    assert!(
        status.success(),
        "the browser run failed ({status})\n{report}"
    );

    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON summary\n{report}"));
    assert_eq!(summary["ok"], true, "{report}");
    assert_eq!(summary["seed_status"], "verified", "{report}");
    assert_eq!(summary["reconnected"], true, "{report}");
    assert_eq!(summary["reloaded"], true, "{report}");
    assert!(
        summary["winner"].as_str().is_some_and(|w| !w.is_empty()),
        "{report}"
    );
    let standings = summary["standings"].as_array().expect("standings");
    assert_eq!(standings.len(), 2, "{report}");
    let mut results: Vec<&str> = standings
        .iter()
        .filter_map(|s| s["result"].as_str())
        .collect();
    results.sort_unstable();
    assert!(
        results == ["loss", "win"] || results == ["draw", "draw"],
        "one winner, or a draw: {report}"
    );
    assert!(
        summary["events"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    // The mode picker listed (as GET /api/v1/modes does) the four built-in
    // modes, and a built-in mode's match offered no custom actions.
    let modes = summary["modes"].as_array().expect("modes");
    for id in ["classic", "zero-hour", "last-line", "true-grit"] {
        assert!(
            modes
                .iter()
                .any(|m| m["id"] == id && m["builtin"] == true && m["hash"].is_string()),
            "the mode picker does not list the built-in {id}: {report}"
        );
    }
    assert!(
        summary["mode_details"]
            .as_str()
            .is_some_and(|d| d.contains("built-in") && d.contains("per turn")),
        "{report}"
    );
    assert_eq!(summary["custom_buttons"], serde_json::json!([]), "{report}");

    let exit = up.stop();
    assert!(
        exit.is_some_and(|s| s.success()),
        "dashdice up did not stop cleanly on SIGINT ({exit:?}):\n{}",
        up.log_tail()
    );
}
