//! Reloading while serving: the API secret when its file changes, and on request (SIGHUP) what
//! [`config::RELOADS`] names (the secret, the `[tokens]` and `[callers]` policies) from the whole
//! configuration, read again as at start-up.
//!
//! One task owns the reload state. Every [`POLL`] it re-reads `stream.api_secret_file`:
//! re-reading the path follows symlinks, so a rewrite in place (compose, an editor) and the
//! `..data` symlink swap of a Kubernetes secret volume are both seen, with no inotify. A read is
//! acted on once the next read agrees with it, so a file caught half-written is never put in
//! force, and a change is in force within two polls (about a second).
//!
//! A missing, empty or unreadable file keeps the secret in force: one error per failure episode
//! (not one per poll), counted in `gateway_config_reloads_total{result="error"}`; a reload that
//! puts something in force counts `result="ok"`. `gateway_config_last_reload_successful` is 0
//! from a failure until a reload succeeds or the file reads well again, so an alert can last as
//! long as the failure does (the error count moves once per episode). Nothing here logs a secret: paths, key names and
//! the kind of an I/O error only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{self, Config, ConfigError, FileConfig};
use crate::state::AppState;
use stream_wire::auth::Secret;

/// How often the secret file is read.
pub const POLL: Duration = Duration::from_millis(500);

/// Builds the configuration's figment anew, as at start-up (the file and the environment).
pub type Load = Arc<dyn Fn() -> Figment + Send + Sync>;

/// What one read of the secret file found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Secret(Secret),
    /// Why there is no usable secret (never the content).
    Failed(String),
}

/// What a read calls for.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing new, or not yet confirmed by a second read.
    Wait,
    /// This secret should be in force; `recovered` after a failure episode.
    Secret { secret: Secret, recovered: bool },
    /// A failure episode begins: report it, once.
    Fail(String),
}

/// Decides on each read of the secret file: a read counts once the next one agrees, and a
/// failure is reported once per episode.
#[derive(Debug, Default)]
struct FileWatch {
    last: Option<Read>,
    failing: bool,
}

impl FileWatch {
    fn observe(&mut self, read: Read) -> Step {
        let settled = self.last.as_ref() == Some(&read);
        self.last = Some(read.clone());
        match read {
            _ if !settled => Step::Wait,
            Read::Failed(_) if self.failing => Step::Wait,
            Read::Failed(why) => {
                self.failing = true;
                Step::Fail(why)
            }
            Read::Secret(secret) => Step::Secret {
                secret,
                recovered: std::mem::take(&mut self.failing),
            },
        }
    }
}

/// The running reload task; dropping this stops it.
#[derive(Debug)]
pub struct Reloads {
    requests: mpsc::Sender<()>,
    task: JoinHandle<()>,
}

impl Reloads {
    /// Starts watching the secret file named in `started` (the figment the gateway started
    /// from) and serving reload requests, which read the configuration from `load`.
    pub fn start(gw: Arc<AppState>, started: &Figment, load: Load) -> Self {
        // `started` gave the running configuration, so it extracts.
        let running: FileConfig = started.extract().unwrap_or_default();
        let (requests, rx) = mpsc::channel(1);
        let last_ok = gw
            .metrics
            .gauge("gateway_config_last_reload_successful", &[]);
        last_ok.set(1.0);
        let reloader = Reloader {
            last_ok,
            secret_file: running.stream.api_secret_file.clone(),
            gw,
            load,
            running,
            watch: FileWatch::default(),
        };
        let task = tokio::spawn(reloader.run(rx));
        Self { requests, task }
    }

    /// Reloads the whole configuration, as SIGHUP does (requests made while one is pending
    /// count once).
    pub fn request(&self) {
        let _ = self.requests.try_send(());
    }

    /// From now on SIGHUP asks for a reload (and no longer ends the process).
    #[cfg(unix)]
    pub fn on_sighup(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let requests = self.requests.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = requests.try_send(());
                if requests.is_closed() {
                    return;
                }
            }
        });
        Ok(())
    }
}

impl Drop for Reloads {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Reloader {
    gw: Arc<AppState>,
    /// `gateway_config_last_reload_successful`: 0 while the last reload or read failed.
    last_ok: metrics::Gauge,
    load: Load,
    /// The configuration as read at start-up, with what reloads have put in force since.
    running: FileConfig,
    /// The file the secret in force came from, if it came from one.
    secret_file: Option<PathBuf>,
    watch: FileWatch,
}

impl Reloader {
    async fn run(mut self, mut requests: mpsc::Receiver<()>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = requests.recv() => self.reload_all().await,
                _ = tick.tick() => self.poll_secret_file().await,
            }
        }
    }

    fn count(&self, result: &'static str) {
        self.last_ok.set(if result == "error" { 0.0 } else { 1.0 });
        self.gw
            .metrics
            .counter("gateway_config_reloads_total", &[("result", result)])
            .increment(1);
    }

    async fn poll_secret_file(&mut self) {
        let Some(path) = self.secret_file.clone() else {
            return;
        };
        let shown = path.display().to_string();
        let read = read_secret(path, self.gw.config.stream.emulator).await;
        match self.watch.observe(read) {
            Step::Wait => {}
            Step::Fail(why) => {
                tracing::error!(path = %shown, error = %why, "cannot reload the API secret from its file; keeping the one in force");
                self.count("error");
            }
            Step::Secret { secret, recovered } => {
                if self.gw.keys.rotate(secret) {
                    self.gw.auth_failures.new_secret();
                    tracing::info!(path = %shown, "API secret rotated from its file: new tokens and signatures use it");
                    self.count("ok");
                } else if recovered {
                    self.last_ok.set(1.0);
                    tracing::info!(path = %shown, "the API secret file is readable again and unchanged");
                }
            }
        }
    }

    async fn reload_all(&mut self) {
        let load = self.load.clone();
        let emulator = self.gw.config.stream.emulator;
        let read = tokio::task::spawn_blocking(move || read_config(&load, emulator))
            .await
            .unwrap_or_else(|_| Err(config_error("the configuration could not be read")));
        // As the poll does: a secret read from a file counts once a second read agrees, so a
        // file caught half-written is never put in force.
        let read = match read {
            Ok((config, raw)) => match &raw.stream.api_secret_file {
                Some(path) if !settled(path, &config.stream.api_secret).await => Err(ConfigError {
                    key: "stream.api_secret_file".into(),
                    problem: "changed while it was read; send SIGHUP again once it is \
                                  written"
                        .into(),
                }),
                _ => Ok((config, raw)),
            },
            Err(e) => Err(e),
        };
        match read {
            Ok((config, raw)) => self.apply(config, raw),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                self.count("error");
            }
        }
    }

    /// Puts what [`config::RELOADS`] names of a valid configuration in force (the secret,
    /// `[tokens]`, `[callers]`), and warns about every other changed key, which keeps its
    /// running value.
    fn apply(&mut self, config: Config, raw: FileConfig) {
        // With the emulator and no secret named, validation makes one up: not a change.
        let named = raw.stream.api_secret_file.is_some()
            || raw
                .stream
                .api_secret
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty());
        let rotated = named && self.gw.keys.rotate(config.stream.api_secret);
        if rotated {
            self.gw.auth_failures.new_secret();
        }
        if named {
            self.secret_file.clone_from(&raw.stream.api_secret_file);
            self.watch = FileWatch::default();
        }
        // A changed [tokens.oidc] gets a new provider, whose keys are fetched again.
        self.gw.oidc.configure(config.tokens.oidc.as_ref());
        self.gw.token_policy.store(Arc::new(config.tokens));
        let merged = merge(&self.running, &raw);
        // Only a changed [callers] is replaced: a new policy starts its buckets full, and a
        // SIGHUP for a secret rotation alone must not hand every caller a fresh burst.
        if merged
            .changed
            .iter()
            .any(|k| k == "callers" || k.starts_with("callers."))
        {
            self.gw.callers.replace(config.callers.as_ref());
        }
        if self.running.callers.is_none() && raw.callers.is_some() {
            // The server records source addresses only when [callers] is there at start-up.
            tracing::warn!("[callers] added by a reload: callers are known by their header only (not by `cidrs`) until a restart");
        }
        if !merged.ignored.is_empty() {
            tracing::warn!(keys = %merged.ignored.join(", "), "changed in the configuration, but only read at start-up: keeping the running values until a restart");
        }
        if let Some(running) = merged.running {
            self.running = running;
        }
        tracing::info!(
            secret_rotated = rotated,
            "configuration reloaded: the secret, [tokens] and [callers] in force are the configured ones"
        );
        self.count("ok");
    }
}

fn config_error(problem: &str) -> ConfigError {
    ConfigError {
        key: "config".into(),
        problem: problem.into(),
    }
}

/// The configuration from `load`, validated in the mode the process runs in (`emulator`: a
/// reload cannot leave the emulator, so its secret is judged as the emulator's), and as read
/// (to compare keys).
fn read_config(load: &Load, emulator: bool) -> Result<(Config, FileConfig), ConfigError> {
    let f = load();
    let config = Config::from_figment(&f.clone().merge(("stream.emulator", emulator)))?;
    let raw = f.extract().map_err(|e| config::extract_error(&e))?;
    Ok((config, raw))
}

/// How long after a reload's read of the secret file it is read again.
const SETTLE: Duration = Duration::from_millis(100);

/// Whether the secret file, read again after [`SETTLE`], still holds `secret`.
async fn settled(path: &std::path::Path, secret: &Secret) -> bool {
    tokio::time::sleep(SETTLE).await;
    let path = path.to_path_buf();
    let again = tokio::task::spawn_blocking(move || config::secret_from_file(&path)).await;
    matches!(again, Ok(Ok(s)) if s == secret.expose())
}

/// Reads the secret file off the runtime's threads; the same rules as at start-up.
async fn read_secret(path: PathBuf, emulator: bool) -> Read {
    let read = tokio::task::spawn_blocking(move || config::reread_secret_file(&path, emulator))
        .await
        .unwrap_or_else(|_| Err("the file could not be read".into()));
    match read {
        Ok(secret) => Read::Secret(secret),
        Err(why) => Read::Failed(why),
    }
}

/// What a reload changes in the running configuration (as read).
struct Merged {
    /// The dotted keys whose values differ (`upstream.timeout_ms`; `callers` for a section
    /// added or removed).
    changed: Vec<String>,
    /// The changed keys that keep their running value, as [`config::RELOADS`] says.
    ignored: Vec<String>,
    /// The running configuration with the keys that reload as read (none if it does not read
    /// back, which would be a bug: then the old one stays).
    running: Option<FileConfig>,
}

/// Compares the running configuration with the one just read, key by key.
fn merge(running: &FileConfig, read: &FileConfig) -> Merged {
    let (old, new) = (to_value(running), to_value(read));
    let mut changed = Vec::new();
    changed_keys(&old, &new, "", &mut changed);
    // A section added or removed whole is one key; the section's defaults stand for it where
    // it is absent, so that its keys that do not reload are named only when they differ.
    let defaults = {
        let mut d = FileConfig::default();
        d.tokens.oidc = Some(Default::default());
        d.callers = Some(Default::default());
        to_value(&d)
    };
    let value = |v: &Value, key: &str| lookup(v, key).or_else(|| lookup(&defaults, key));
    let (mut ignored, mut merged) = (Vec::new(), old.clone());
    for key in &changed {
        if !config::reloads(key) {
            ignored.push(key.clone());
            continue;
        }
        set(&mut merged, key, lookup(&new, key));
        let prefix = format!("{key}.");
        for (under, _) in config::RELOADS
            .iter()
            .filter(|(k, reloads)| !reloads && k.starts_with(&prefix))
        {
            if value(&old, under) != value(&new, under) {
                ignored.push((*under).to_owned());
            }
            if lookup(&merged, key).is_some() {
                set(&mut merged, under, lookup(&old, under));
            }
        }
    }
    Merged {
        changed,
        ignored,
        running: serde_json::from_value(merged).ok(),
    }
}

/// The value at a dotted key, if there is one.
fn lookup(v: &Value, key: &str) -> Option<Value> {
    key.split('.')
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
        .cloned()
}

/// Sets the value at a dotted key, making the tables on the way; `None` removes it.
fn set(v: &mut Value, key: &str, to: Option<Value>) {
    let (parent, last) = match key.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, key),
    };
    let mut at = v;
    for k in parent.into_iter().flat_map(|p| p.split('.')) {
        let Value::Object(m) = at else { return };
        at = m
            .entry(k)
            .or_insert_with(|| Value::Object(Default::default()));
        if at.is_null() {
            *at = Value::Object(Default::default());
        }
    }
    if let Value::Object(m) = at {
        match to {
            Some(to) => {
                m.insert(last.to_owned(), to);
            }
            None => {
                m.remove(last);
            }
        }
    }
}

fn to_value(c: &FileConfig) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// The dotted keys whose values differ between `a` and `b` (`upstream.timeout_ms`).
fn changed_keys(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    if let (Value::Object(x), Value::Object(y)) = (a, b) {
        let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            let null = Value::Null;
            changed_keys(
                x.get(k).unwrap_or(&null),
                y.get(k).unwrap_or(&null),
                &key,
                out,
            );
        }
    } else if a != b {
        out.push(prefix.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Serialized, Toml};

    fn secret(s: &str) -> Read {
        Read::Secret(Secret::new(s))
    }

    #[test]
    fn a_read_counts_once_the_next_one_agrees() {
        let mut w = FileWatch::default();
        assert_eq!(w.observe(secret("old")), Step::Wait);
        assert!(matches!(w.observe(secret("old")), Step::Secret { .. }));
        // Caught half-written, then whole: only the whole one counts.
        assert_eq!(w.observe(secret("ne")), Step::Wait);
        assert_eq!(w.observe(secret("new")), Step::Wait);
        assert_eq!(
            w.observe(secret("new")),
            Step::Secret {
                secret: Secret::new("new"),
                recovered: false
            }
        );
    }

    #[test]
    fn a_failure_is_reported_once_per_episode() {
        let mut w = FileWatch::default();
        w.observe(secret("s"));
        let gone = || Read::Failed("cannot read f: not found".into());
        assert_eq!(w.observe(gone()), Step::Wait);
        assert_eq!(
            w.observe(gone()),
            Step::Fail("cannot read f: not found".into())
        );
        for _ in 0..10 {
            assert_eq!(w.observe(gone()), Step::Wait);
        }
        // Empty now: still the same episode.
        w.observe(Read::Failed("the file is empty".into()));
        assert_eq!(
            w.observe(Read::Failed("the file is empty".into())),
            Step::Wait
        );
        w.observe(secret("s"));
        assert_eq!(
            w.observe(secret("s")),
            Step::Secret {
                secret: Secret::new("s"),
                recovered: true
            }
        );
        w.observe(gone());
        assert!(matches!(w.observe(gone()), Step::Fail(_)), "a new episode");
    }

    #[test]
    fn a_key_takes_its_longest_entry_in_the_reload_table() {
        assert!(config::reloads("stream.api_secret_file"));
        assert!(config::reloads("tokens.allow"));
        assert!(config::reloads("tokens.oidc.issuer"));
        assert!(!config::reloads("tokens.max_in_flight"));
        assert!(config::reloads("callers"));
        assert!(config::reloads("callers.service.batch.rate"));
        assert!(!config::reloads("callers.redis_url"));
        assert!(
            !config::reloads("stream.api_secret_extra"),
            "a whole name, not a prefix"
        );
        assert!(!config::reloads("stream.region"));
        assert!(!config::reloads("upstream.timeout_ms"));
    }

    fn with_callers(toml: &str) -> FileConfig {
        Figment::from(Serialized::defaults(FileConfig::default()))
            .merge(Toml::string(toml))
            .extract()
            .unwrap()
    }

    #[test]
    fn a_merge_takes_the_keys_that_reload_and_names_the_others() {
        let running = with_callers("[tokens]\nmax_ttl_s = 7200\nmax_in_flight = 8\n");
        let read = with_callers(
            "[tokens]\nmax_ttl_s = 9000\nmax_in_flight = 9\n[upstream]\ntimeout_ms = 1\n\
             [callers]\nredis_url = \"redis://r:6379/0\"\n\
             [callers.service.batch]\nrate = 5.0\n",
        );
        let m = merge(&running, &read);
        assert_eq!(
            m.changed,
            [
                "callers",
                "tokens.max_in_flight",
                "tokens.max_ttl_s",
                "upstream.timeout_ms"
            ]
        );
        assert_eq!(
            m.ignored,
            [
                "callers.redis_url",
                "tokens.max_in_flight",
                "upstream.timeout_ms"
            ],
            "a section added whole names its keys that do not reload, and only those set"
        );
        let now = m.running.unwrap();
        assert_eq!(now.tokens.max_ttl_s, 9000);
        assert_eq!(now.tokens.max_in_flight, 8);
        assert_eq!(now.upstream.timeout_ms, 3000);
        let callers = now.callers.unwrap();
        assert!(callers.service.contains_key("batch"));
        assert_eq!(callers.redis_url, None, "the store of start-up stays");

        // Removed whole: the policy goes; a store that was running is named.
        let m = merge(&read, &running);
        assert_eq!(m.ignored[0], "callers.redis_url");
        assert!(m.running.unwrap().callers.is_none());
    }

    #[test]
    fn changed_keys_are_named_with_dots() {
        let mut a = FileConfig::default();
        let mut b = FileConfig::default();
        b.server.listen = "0.0.0.0:9".into();
        b.stream.region = "tokyo".into();
        b.tokens.max_ttl_s = 5;
        b.emulator
            .feed_groups
            .insert("timeline".into(), stream_emulator::FeedKind::Aggregated);
        a.stream.api_secret = Some("x".into());
        let mut out = Vec::new();
        changed_keys(&to_value(&a), &to_value(&b), "", &mut out);
        assert_eq!(
            out,
            [
                "emulator.feed_groups.timeline",
                "server.listen",
                "stream.api_secret",
                "stream.region",
                "tokens.max_ttl_s"
            ]
        );
        out.retain(|k| !config::reloads(k));
        assert_eq!(
            out,
            [
                "emulator.feed_groups.timeline",
                "server.listen",
                "stream.region"
            ]
        );
    }

    /// A directory of its own under the system's temporary directory.
    fn temp_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("gw-reload-{}", crate::config::random_hex(8)));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn reloads(gw: &AppState, result: &str) -> u64 {
        let line = format!("gateway_config_reloads_total{{result=\"{result}\"}} ");
        gw.metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&line)?.parse().ok())
            .unwrap_or(0)
    }

    /// `gateway_config_last_reload_successful`.
    fn last_ok(gw: &AppState) -> Option<f64> {
        gw.metrics.render().lines().find_map(|l| {
            l.strip_prefix("gateway_config_last_reload_successful ")?
                .parse()
                .ok()
        })
    }

    fn gateway(f: &Figment) -> Arc<AppState> {
        Arc::new(AppState::new(Config::from_figment(f).unwrap()).unwrap())
    }

    fn base(dir: &std::path::Path) -> Figment {
        Figment::from(Serialized::defaults(FileConfig::default()))
            .merge(("stream.api_key", "key"))
            .merge(("stream.api_secret_file", dir.join("secret")))
    }

    #[tokio::test(start_paused = true)]
    async fn a_rewritten_file_is_in_force_within_two_seconds_and_a_missing_one_fails_once() {
        let dir = temp_dir();
        let file = dir.join("secret");
        std::fs::write(&file, "old-secret\n").unwrap();
        let f = base(&dir);
        let gw = gateway(&f);
        let again = f.clone();
        let _reloads = Reloads::start(gw.clone(), &f, Arc::new(move || again.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(reloads(&gw, "ok"), 0, "an unchanged file is no reload");
        assert_eq!(last_ok(&gw), Some(1.0), "nothing failed yet");

        std::fs::write(&file, "new-secret\n").unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(gw.keys.load().secret().expose(), "new-secret");
        assert_eq!(reloads(&gw, "ok"), 1);

        std::fs::remove_file(&file).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(gw.keys.load().secret().expose(), "new-secret");
        assert_eq!(reloads(&gw, "error"), 1, "one error for twenty polls");
        assert_eq!(last_ok(&gw), Some(0.0), "still failing");
        std::fs::write(&file, "").unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            reloads(&gw, "error"),
            1,
            "empty after missing: the same episode"
        );
        assert_eq!(last_ok(&gw), Some(0.0));

        std::fs::write(&file, "new-secret").unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(last_ok(&gw), Some(1.0), "readable again, unchanged");
        assert_eq!(reloads(&gw, "ok"), 1, "no new secret: no reload counted");
        std::fs::remove_file(&file).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(reloads(&gw, "error"), 2, "a new episode");

        std::fs::write(&file, "newer-secret").unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(gw.keys.load().secret().expose(), "newer-secret");
        assert_eq!((reloads(&gw, "ok"), reloads(&gw, "error")), (2, 2));
        assert_eq!(last_ok(&gw), Some(1.0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A gateway whose secret file holds `secret` and whose configuration file (`gw.toml` in a
    /// fresh directory) holds `toml`, with its reloads started.
    fn reloading(
        secret: &str,
        toml: &str,
    ) -> (
        std::path::PathBuf,
        std::path::PathBuf,
        Arc<AppState>,
        Reloads,
    ) {
        let dir = temp_dir();
        std::fs::write(dir.join("secret"), secret).unwrap();
        let file = dir.join("gw.toml");
        std::fs::write(&file, toml).unwrap();
        let (b, t) = (base(&dir), file.clone());
        let load: Load = Arc::new(move || b.clone().merge(Toml::file_exact(&t)));
        let f = load();
        let gw = gateway(&f);
        let reloads = Reloads::start(gw.clone(), &f, load);
        (dir, file, gw, reloads)
    }

    /// Asks for a reload (as SIGHUP does) and lets it run.
    async fn reload(reloads: &Reloads) {
        reloads.request();
        // Past the second read of a secret file.
        tokio::time::sleep(SETTLE * 3).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_puts_a_changed_tokens_oidc_in_force_with_a_new_provider() {
        let oidc = |aud: &str| {
            format!(
                "[tokens]\nfeed_groups = [\"user\"]\n[tokens.oidc]\n\
                 issuer = \"http://127.0.0.1:9/realms/app\"\naudience = \"{aud}\"\n"
            )
        };
        let (dir, toml, gw, reloads_) = reloading("old-secret", "");
        assert!(gw.oidc.provider().is_none());
        std::fs::write(&toml, oidc("web")).unwrap();
        reload(&reloads_).await;
        let first = gw.oidc.provider().expect("[tokens.oidc] in force");
        assert_eq!(first.settings().audience, ["web"]);
        // The same settings again: the same provider, its keys kept.
        reload(&reloads_).await;
        assert!(Arc::ptr_eq(&first, &gw.oidc.provider().unwrap()));
        std::fs::write(&toml, oidc("mobile")).unwrap();
        reload(&reloads_).await;
        assert_eq!(gw.oidc.provider().unwrap().settings().audience, ["mobile"]);
        std::fs::write(&toml, "").unwrap();
        reload(&reloads_).await;
        assert!(gw.oidc.provider().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_request_applies_tokens_and_the_secret_and_keeps_other_keys() {
        let (dir, toml, gw, reloads_) = reloading("old-secret", "[tokens]\nmax_ttl_s = 7200\n");

        std::fs::write(
            &toml,
            "[tokens]\nmax_ttl_s = 9000\n[upstream]\ntimeout_ms = 1234\n",
        )
        .unwrap();
        std::fs::write(dir.join("secret"), "new-secret").unwrap();
        reload(&reloads_).await;
        assert_eq!(gw.token_policy().max_ttl_s, 9000);
        assert_eq!(gw.keys.load().secret().expose(), "new-secret");
        assert_eq!(gw.config.upstream.timeout, Duration::from_millis(3000));
        assert_eq!(reloads(&gw, "ok"), 1);

        // A broken file keeps everything in force.
        std::fs::write(&toml, "[tokens\n").unwrap();
        reload(&reloads_).await;
        assert_eq!(reloads(&gw, "error"), 1);
        assert_eq!(last_ok(&gw), Some(0.0), "the last reload failed");
        std::fs::write(&toml, "[tokens]\nmax_ttl_s = 9000\n").unwrap();
        std::fs::write(dir.join("secret"), "").unwrap();
        reload(&reloads_).await;
        assert_eq!(
            reloads(&gw, "error"),
            2,
            "an empty secret file fails the reload"
        );
        assert_eq!(gw.keys.load().secret().expose(), "new-secret");
        std::fs::write(dir.join("secret"), "new-secret").unwrap();
        reload(&reloads_).await;
        assert_eq!(last_ok(&gw), Some(1.0), "a reload succeeded again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_request_puts_the_callers_policy_in_force() {
        let (dir, toml, gw, reloads_) = reloading("a-secret", "");
        let endpoint = |name: &str| {
            stream_wire::endpoint::ENDPOINTS
                .iter()
                .find(|e| e.name == name)
                .unwrap()
        };
        let refused = |gw: Arc<AppState>, name: &'static str| async move {
            let headers = axum::http::HeaderMap::new();
            gw.callers
                .admit(&headers, None, endpoint(name))
                .await
                .refused
                .is_some()
        };
        assert!(
            !refused(gw.clone(), "feed.add").await,
            "no [callers]: all allowed"
        );

        std::fs::write(
            &toml,
            "[callers.service.default]\nallow = [\"feed.read\"]\n",
        )
        .unwrap();
        reload(&reloads_).await;
        assert_eq!(reloads(&gw, "ok"), 1);
        assert!(
            refused(gw.clone(), "feed.add").await,
            "the reloaded allow list is in force"
        );
        assert!(!refused(gw.clone(), "feed.read").await);

        // A reload that leaves [callers] as it was keeps its buckets: no fresh burst.
        std::fs::write(
            &toml,
            "[callers.service.default]\nrate = 0.001\nburst = 1\n",
        )
        .unwrap();
        reload(&reloads_).await;
        assert!(!refused(gw.clone(), "feed.read").await);
        assert!(
            refused(gw.clone(), "feed.read").await,
            "the bucket is empty"
        );
        reload(&reloads_).await;
        assert!(
            refused(gw.clone(), "feed.read").await,
            "not refilled by a reload"
        );

        std::fs::write(&toml, "").unwrap();
        reload(&reloads_).await;
        assert!(
            !refused(gw.clone(), "feed.add").await,
            "[callers] removed: all allowed again"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
