//! A real SMTP server for the connector tests: tests/smtp/smtp_server.py (aiosmtpd) in the
//! venv that scripts/test fills from tests/requirements.txt. It writes every message it accepts
//! as a JSON file, which `messages` reads back.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

static NEXT: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    Starttls,
    Implicit,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub tls: Tls,
    /// AUTH required with this user and password (LOGIN only, unless `mechanisms` says).
    pub login: Option<(&'static str, &'static str)>,
    pub mechanisms: &'static str,
    /// The XOAUTH2 bearer token the server accepts.
    pub token: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: Tls::None,
            login: None,
            mechanisms: "LOGIN",
            token: None,
        }
    }
}

pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    options: Options,
    child: Option<Child>,
}

fn python() -> PathBuf {
    let path = std::env::var_os("E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run the suite through scripts/test, which installs tests/requirements.txt",
        path.display()
    );
    path
}

impl SmtpServer {
    pub fn start(options: Options) -> SmtpServer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("test-runs")
            .join(std::process::id().to_string())
            .join(format!("smtp-{}", NEXT.fetch_add(1, Ordering::SeqCst)));
        let mut server = SmtpServer {
            port: 0,
            dir,
            options,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(python());
        command
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtp_server.py"))
            .arg("--dir")
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args([
                "--tls",
                match self.options.tls {
                    Tls::None => "none",
                    Tls::Starttls => "starttls",
                    Tls::Implicit => "implicit",
                },
            ])
            .args(["--mechanisms", self.options.mechanisms])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = self.options.login {
            command.args(["--user", user, "--password", password]);
        }
        if let Some(token) = self.options.token {
            command.args(["--token", token]);
        }
        let mut child = command.spawn().expect("start the SMTP server");
        let stdout = child.stdout.take().expect("SMTP server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("SMTP server output");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        self.port = port;
        self.child = Some(child);
    }

    /// Where the messages are written.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The test CA's certificate (TLS modes only).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("ca.pem")).expect("the test CA")
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
            .collect()
    }

    /// Waits (polling, bounded) until at least `count` messages arrived; returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port, keeping the messages received so far.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A connector configuration for this server; `templates` are Logto's template objects.
    pub fn config(&self, templates: Value) -> Value {
        let mut config = json!({
            "host": "127.0.0.1",
            "port": self.port,
            "fromEmail": "Idledger Tests <no-reply@idledger.test>",
            "templates": templates,
            "auth": match self.options.login {
                Some((user, pass)) => json!({"user": user, "pass": pass}),
                None => json!({}),
            },
        });
        match self.options.tls {
            Tls::None => {}
            Tls::Starttls => {
                config["requireTLS"] = json!(true);
                config["tls"] = json!({"ca": self.ca_pem()});
            }
            Tls::Implicit => {
                config["secure"] = json!(true);
                config["tls"] = json!({"ca": self.ca_pem()});
            }
        }
        config
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of a header of a received message.
pub fn header<'a>(message: &'a Value, name: &str) -> Option<&'a str> {
    message["headers"]
        .as_array()?
        .iter()
        .find(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|pair| pair[1].as_str())
}

/// The six-digit code in a received message's body.
pub fn code_in(message: &Value) -> String {
    let body = message["body"].as_str().unwrap_or_default();
    let digits: Vec<char> = body.chars().collect();
    digits
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no code in {body:?}"))
}
