//! esprit-ike: the IKEv2 control plane of the Esprit concentrator. It never opens the wire
//! ports itself: IKE datagrams come punted by esprit-dataplane through the shared-memory
//! ring, and SAs and datagrams to send go back the same way.

#![forbid(unsafe_code)]

mod bridge;
mod config;
mod core;
mod ctl;
mod journal;
mod metrics;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "esprit-ike", version, about = "IKEv2 control plane of the Esprit IPsec concentrator")]
struct Cli {
    /// The configuration file (TOML; it may be the data plane's file too).
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the configuration, print what is wrong (with line numbers) and exit.
    #[arg(long)]
    check_config: bool,
    /// How long to wait for the data plane's ring to appear, in seconds.
    #[arg(long, default_value_t = 30)]
    wait_ring: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ESPRIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cfg = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("esprit-ike: {} error(s) in {}", e.0.len(), cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "{}: OK ({} connection(s), {} pool(s))",
            cli.config.display(),
            cfg.ike.connections.len(),
            cfg.ike.pools.len()
        );
        return ExitCode::SUCCESS;
    }
    match run(cfg, cli.config.clone(), Duration::from_secs(cli.wait_ring)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(cfg: config::Config, cfg_path: PathBuf, wait_ring: Duration) -> Result<(), String> {
    let channel = core::attach(&cfg.daemon.ring, wait_ring)?;
    tracing::info!(ring = %cfg.daemon.ring, connections = cfg.ike.connections.len(), "attached to the data plane's ring");
    let (req_tx, req_rx) = mpsc::channel();
    let listener = ctl::bind(&cfg.daemon.ctl_socket)
        .map_err(|e| format!("control socket {}: {e}", cfg.daemon.ctl_socket.display()))?;
    let metrics = match cfg.daemon.metrics {
        Some(a) => {
            let l = std::net::TcpListener::bind(a).map_err(|e| format!("metrics listener {a}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            tracing::info!(url = %format!("http://{a}/metrics"), "Prometheus metrics");
            Some(l)
        }
        None => None,
    };
    let socket_path = cfg.daemon.ctl_socket.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let stop_sig = stop.clone();
    let io = std::thread::Builder::new()
        .name("esprit-ike-io".into())
        .spawn(move || {
            rt.block_on(async move {
                if let Some(m) = metrics {
                    tokio::spawn(ctl::serve_metrics(m, req_tx.clone()));
                }
                tokio::spawn(ctl::serve(listener, req_tx));
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("stopping: deleting IKE SAs");
                stop_sig.store(true, Ordering::Relaxed);
            });
        })
        .map_err(|e| e.to_string())?;
    let mut core = core::Core::new(cfg, cfg_path, channel, req_rx)?;
    tracing::info!(socket = %socket_path.display(), "esprit-ike ready");
    core.run(&stop);
    let _ = std::fs::remove_file(&socket_path);
    let _ = io.join();
    Ok(())
}
