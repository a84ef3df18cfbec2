//! A `redis-server` (Debian's package, listed in scripts/system-packages; scripts/check installs
//! it) for the tests that share callers' budgets through Redis.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` of its own on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    password: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With more `redis-server` arguments (`--requirepass`, ...), kept for restarts.
    pub async fn start_with(args: &[&str]) -> Self {
        let mut server = Self {
            port: 0,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            password: args
                .iter()
                .position(|a| *a == "--requirepass")
                .map(|i| args[i + 1].to_owned()),
            child: None,
        };
        // A free port can be taken by a parallel test before redis-server binds it: then the
        // server exits, and another port is tried.
        for _ in 0..5 {
            server.port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            if server.launch().await {
                return server;
            }
        }
        panic!("redis-server could not start on 5 free ports in a row");
    }

    /// The URL a gateway is given, password included.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Starts it again on its port and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(
            self.launch().await,
            "redis-server could not start again on port {}",
            self.port
        );
    }

    /// Starts it on its port; true once it answers as this very process (not another test's
    /// server on the same port), false if it exited (the port was taken).
    async fn launch(&mut self) -> bool {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need it; install it with \
                     `apt-get install -y redis-server` (scripts/check does, as root)"
                )
            });
        let pid = child.id();
        self.child = Some(child);
        for _ in 0..500 {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
            }
            if let Ok(mut c) = self.connect().await {
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                if info.contains(&format!("process_id:{pid}\r\n")) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "redis-server did not answer on port {} within 5 s",
            self.port
        );
    }

    /// Freezes it (SIGSTOP): connections stay open and nothing answers, as a hung server.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("a running redis-server").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    }

    /// Kills it at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A connection of the test's own.
    pub async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await?;
        Ok(c)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
