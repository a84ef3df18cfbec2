//! `stream-gateway [--config PATH] [--emulator]`: load config, init telemetry, build, serve
//! until SIGTERM or SIGINT; SIGHUP reloads the secret, `[tokens]` and `[callers]` (`config::RELOADS`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use figment::Figment;
use mimalloc::MiMalloc;
use stream_gateway::app::App;
use stream_gateway::config::{self, Config};
use stream_gateway::reload::{Load, Reloads};
use stream_gateway::telemetry;

// malloc and free were a sixth of the gateway's CPU under load with glibc's allocator
// (perf, bench/run); mimalloc's thread-local free lists cost less per request.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// A least-privilege signing gateway for Stream's activity-feed REST API v1.0.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (default: $GATEWAY_CONFIG, else config/gateway.toml if present).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Serve with the embedded Stream emulator as upstream (no account, no network).
    #[arg(long)]
    emulator: bool,
    /// Load this export document (GET /_emulator/export's format) into the emulator at start.
    #[arg(long, value_name = "FILE")]
    emulator_seed: Option<PathBuf>,
    /// Keep the emulator's state in DIR (DIR/emulator.sqlite3) across restarts
    /// (emulator.data_dir); with --emulator-seed, the seed is loaded only into an empty DIR.
    #[arg(long, value_name = "DIR")]
    emulator_data: Option<PathBuf>,
    /// Check a running gateway and exit 0 if PATH (default /healthz; /readyz for readiness
    /// probes) answers 200; for container health checks, where there is no curl. The address
    /// is server.admin_listen's when set (its connections are its own, so a probe answers
    /// under a flood), else the server's, from the same configuration (--config,
    /// GATEWAY_CONFIG, environment), on loopback when it listens on every interface.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/healthz")]
    healthcheck: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = cli.healthcheck {
        return match config::probe_addr(&config::figment(cli.config.as_deref())) {
            Ok(addr) => healthcheck(addr, &path),
            Err(e) => {
                eprintln!("stream-gateway: {e}");
                ExitCode::from(2)
            }
        };
    }
    // SIGHUP reads the configuration again, from the same file and flags.
    let source = config::file_in_use(cli.config.as_deref());
    let (file, emulator, data) = (cli.config, cli.emulator, cli.emulator_data);
    let load: Load = Arc::new(move || {
        let mut figment = config::figment(file.as_deref());
        if emulator {
            figment = figment.merge(("stream.emulator", true));
        }
        if let Some(dir) = &data {
            figment = figment.merge(("emulator.data_dir", dir.display().to_string()));
        }
        figment
    });
    let figment = load();
    let config = match Config::from_figment(&figment) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stream-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    // The runtime is built after the configuration is read: `server.workers` sets its threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stream-gateway: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(config, &figment, load, source, cli.emulator_seed))
}

async fn serve(
    config: Config,
    figment: &Figment,
    load: Load,
    source: Option<PathBuf>,
    seed: Option<PathBuf>,
) -> ExitCode {
    let logs = telemetry::init(config.log_format);
    let file = source.as_ref().map(|p| p.display().to_string());
    tracing::info!(
        config_file = file.as_deref().unwrap_or("none"),
        log_format = match config.log_format {
            config::LogFormat::Text => "text",
            config::LogFormat::Json => "json",
        },
        log_filter = %logs.filter,
        "configuration read from {}; logs go to stderr at {}",
        file.as_deref().map_or("defaults and the environment only (no file)".to_owned(), |f| format!("{f}, defaults and the environment")),
        logs.filter,
    );
    if let Some(problem) = &logs.rejected {
        tracing::warn!(
            rust_log = %problem.value,
            error = %problem.error,
            "RUST_LOG is malformed and was ignored: logging at {}",
            logs.filter
        );
    }
    let emulated = config.stream.emulator;
    let (api_key, region) = (config.stream.api_key.clone(), config.stream.region.clone());
    let app_id = config.stream.app_id.clone().unwrap_or_default();
    let data_dir = config.emulator.data_dir.clone().filter(|_| emulated);
    let app = match App::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stream-gateway: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = load_emulator(&app, data_dir.as_deref(), seed.as_deref()) {
        eprintln!("stream-gateway: {e}");
        return ExitCode::from(2);
    }
    if emulated {
        emulator_banner(&app, &api_key, &app_id);
    }
    // Before anything says the gateway is up: a SIGTERM from then on drains it.
    let stop = shutdown_signal();
    let reloads = Reloads::start(app.state().clone(), figment, load);
    #[cfg(unix)]
    if let Err(e) = reloads.on_sighup() {
        tracing::warn!(error = %e, "SIGHUP cannot be handled: reload by changing the secret file");
    }
    tracing::info!(
        listen = %app.local_addr(),
        public_listen = app.public_addr().map(tracing::field::display),
        admin_listen = app.admin_addr().map(tracing::field::display),
        upstream = %app.upstream(),
        region = %region,
        "stream-gateway serving"
    );
    warn_public_tokens_without_oidc(&app);
    if emulated {
        announce(&app);
    }
    match app.run_until_stopped(stop).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stream-gateway: {e}");
            ExitCode::from(1)
        }
    }
}

/// The warning that this is an emulator, not Stream, with where to reach it.
fn emulator_banner(app: &App, api_key: &str, app_id: &str) {
    let emu = app.emulator().map(|e| e.url()).unwrap_or_default();
    let realtime = app
        .emulator()
        .and_then(|e| e.realtime_addr())
        .map(|a| format!("http://{a}/faye"))
        .unwrap_or_else(|| format!("{emu}/faye"));
    tracing::warn!(
        emulator = %emu,
        api_key = %api_key,
        app_id = %app_id,
        realtime = %realtime,
        "EMULATOR MODE: requests go to an Stream emulator, not to Stream; \
         its data lives in memory, and in emulator.data_dir when set (console: {emu}/_emulator/, fault \
         injection: {emu}/_emulator/faults); \
         clients give api_key {api_key} (set it with STREAM_API_KEY): another key is refused"
    );
}

/// The emulator's state at start: loaded from `emulator.data_dir` and kept there, when set;
/// the seed imported when the data dir held no state (or there is none).
fn load_emulator(
    app: &App,
    data_dir: Option<&std::path::Path>,
    seed: Option<&std::path::Path>,
) -> Result<(), String> {
    let mut stored = false;
    if let (Some(dir), Some(emu)) = (data_dir, app.emulator()) {
        stored = emu
            .state()
            .persist_to(dir)
            .map_err(|e| format!("emulator.data_dir: {e}"))?;
        tracing::info!(data_dir = %dir.display(), loaded = stored, "emulator state kept in emulator.data_dir");
    }
    if let Some(file) = seed.filter(|_| !stored) {
        seed_emulator(app, file).map_err(|e| format!("--emulator-seed {}: {e}", file.display()))?;
        tracing::info!(seed = %file.display(), "emulator seeded");
    }
    Ok(())
}

/// Imports an export document into the emulator (replacing its empty state).
fn seed_emulator(app: &App, file: &std::path::Path) -> Result<(), String> {
    let emulator = app
        .emulator()
        .ok_or("there is no emulator to seed (give --emulator)")?;
    let max = emulator.state().bounds().max_import_bytes;
    let size = std::fs::metadata(file)
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    if size > max as u64 {
        return Err(format!(
            "{size} bytes, larger than emulator.max_import_bytes ({max})"
        ));
    }
    let text = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
    let doc = serde_json::from_slice(&text).map_err(|e| format!("not JSON: {e}"))?;
    emulator
        .state()
        .import(&doc, false)
        .map_err(|e| format!("refused: {e}"))?;
    // Kept in emulator.data_dir, when set.
    emulator.state().save_if_changed()
}

/// The one line a test harness reads on stdout (logs are on stderr): where the gateway and
/// its emulator listen, once both accept connections. With `server.listen` on port 0 this is
/// how a parallel test worker learns its own instance's ports.
fn announce(app: &App) {
    use std::io::Write;
    // Written by hand for the documented key order; both values are `http://IP:PORT`.
    let line = format!(
        r#"{{"event":"listening","gateway":"http://{}","emulator":"{}"}}"#,
        app.local_addr(),
        app.emulator().map(|e| e.url()).unwrap_or_default(),
    );
    let mut out = std::io::stdout().lock();
    // A closed stdout (nobody reading) is no reason not to serve.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// `/tokens` facing browsers with no verified identity: say so once, at start-up.
fn warn_public_tokens_without_oidc(app: &App) {
    if app.public_addr().is_some() && app.state().config().tokens.oidc.is_none() {
        tracing::warn!(
            "server.public_listen serves /tokens without [tokens.oidc]: whoever reaches it names \
             the user itself (tokens.identity_header, or no identity at all); configure \
             [tokens.oidc], or keep that listener behind a proxy that sets and strips the \
             identity header"
        );
    }
}

/// SIGTERM or SIGINT, as a future. On Unix the handlers are installed here, at the call, not
/// when the future is first polled: a signal sent as soon as the gateway says it is listening
/// must stop it gracefully, not kill it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| tracing::warn!(error = %e, "{name} cannot be handled"))
                .ok()
        };
        let (term, int) = (
            install(SignalKind::terminate(), "SIGTERM"),
            install(SignalKind::interrupt(), "SIGINT"),
        );
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `GET PATH` on the gateway at `addr`, with std only: no runtime.
fn healthcheck(addr: std::net::SocketAddr, path: &str) -> ExitCode {
    if !path.starts_with('/') || path.bytes().any(|b| !b.is_ascii_graphic()) {
        eprintln!("stream-gateway: --healthcheck takes a path such as /healthz or /readyz");
        return ExitCode::from(2);
    }
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;
    let check = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    match check() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("stream-gateway: {addr}{path} did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("stream-gateway: {addr}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
