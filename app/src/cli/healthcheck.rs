//! `session-backend healthcheck`: a tiny HTTP/1.1 probe, so container
//! images need no curl.

use std::{process::ExitCode, time::Duration};

use session_backend::config::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Probe options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `host:port` to probe; defaults to the configured listen address
    /// (a wildcard host is probed on loopback).
    #[arg(long)]
    address: Option<String>,
    /// Path to request.
    #[arg(long, default_value = "/health/ready")]
    path: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
}

/// Exit 0 when the server answers 200, else 1 (with the reason on stderr).
pub async fn run(config: &Config, args: &Args) -> ExitCode {
    let address = args.address.clone().unwrap_or_else(|| {
        let host = match config.server.host.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "::1",
            host => host,
        };
        let mut config = config.clone();
        config.server.host = host.to_owned();
        config.listen_address()
    });
    let probe = get_status(&address, &args.path);
    match tokio::time::timeout(Duration::from_secs(args.timeout_secs), probe).await {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("unhealthy: GET {} answered {status}", args.path);
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: GET http://{address}{}: {e}", args.path);
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: no answer from {address} within {} s", args.timeout_secs);
            ExitCode::FAILURE
        }
    }
}

async fn get_status(address: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}
