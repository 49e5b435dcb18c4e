//! The release binary as a process under measurement: start → first 200,
//! CPU time and resident memory from `/proc`.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running server.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    /// Process start → first 200 on `/health`.
    pub first_ok: Duration,
}

impl Process {
    /// Starts `binary` on `database_url` in `dir`, with `env` besides.
    pub fn start(
        binary: &Path,
        database_url: &str,
        dir: &Path,
        env: &[(&str, String)],
    ) -> Result<Self, String> {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .current_dir(dir)
            .env("API_PORT", port.to_string())
            .env("DATABASE_URL", database_url)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        loop {
            if health(addr) {
                return Ok(Self { child, addr, first_ok: started.elapsed() });
            }
            if started.elapsed() > Duration::from_secs(30) || child.try_wait().ok().flatten().is_some() {
                drop(child.kill());
                return Err("the server did not come up within 30 s".into());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    /// User + system CPU time used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&self.proc_file("stat")).map_or(Duration::ZERO, |(_, cpu)| cpu)
    }

    fn status_kib(&self, field: &str) -> u64 {
        self.proc_file("status")
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 / 1024.0
    }

    /// The peak resident memory since the last [`Process::reset_peak`], in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 / 1024.0
    }

    /// Starts a new peak-memory measurement.
    pub fn reset_peak(&self) {
        drop(std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5"));
    }

    /// Stops the server (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        drop(Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status());
        drop(self.child.wait());
    }
}

/// The command name and user + system CPU time in a `/proc/PID/stat` line.
fn cpu_of(stat: &str) -> Option<(&str, Duration)> {
    // Fields 14 and 15, in clock ticks (100 a second on Linux), counted
    // after the command name's closing parenthesis.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((name, Duration::from_millis((ticks(11) + ticks(12)) * 10)))
}

/// The CPU time used so far by each `postgres` process of this machine
/// (the backends serving the run, and the server's own workers), by pid;
/// None when there is none (PostgreSQL on another host).
pub fn postgres_cpu() -> Option<HashMap<u32, Duration>> {
    let mut by_pid = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some(("postgres", cpu)) = cpu_of(&stat) {
            by_pid.insert(pid, cpu);
        }
    }
    (!by_pid.is_empty()).then_some(by_pid)
}

/// The CPU time `postgres` processes used between `before` and `after`
/// (a process that ended meanwhile is not counted; one that started is,
/// whole).
pub fn postgres_cpu_between(before: &HashMap<u32, Duration>, after: &HashMap<u32, Duration>) -> Duration {
    after.iter().map(|(pid, cpu)| cpu.saturating_sub(before.get(pid).copied().unwrap_or_default())).sum()
}

/// Whether `GET /health` answers 200.
fn health(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(addr) else { return false };
    drop(stream.set_read_timeout(Some(Duration::from_secs(1))));
    if stream.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
