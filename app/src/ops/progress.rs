//! One line of progress on standard error for the long commands, drawn
//! only when standard error is a terminal: scripts, pipes and log files get
//! nothing. The line is redrawn four times a second with the time taken,
//! so a long silent step (a `pg_restore`) still shows it is alive, and is
//! cleared when the work ends.

use std::{
    io::{IsTerminal, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// The progress of one command; does nothing unless on a terminal.
pub struct Progress {
    shared: Option<Arc<Shared>>,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    label: String,
    text: Mutex<String>,
    started: Instant,
    stopped: AtomicBool,
}

impl Progress {
    /// Starts showing `label: …` if standard error is a terminal that
    /// takes escape codes (not `TERM=dumb`).
    pub fn start(label: &str) -> Self {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if !std::io::stderr().is_terminal() || dumb {
            return Self::quiet();
        }
        let shared = Arc::new(Shared {
            label: label.to_owned(),
            text: Mutex::new(String::new()),
            started: Instant::now(),
            stopped: AtomicBool::new(false),
        });
        // Drawn at once, so even a short step says what ran.
        shared.draw();
        let ticking = shared.clone();
        let ticker = std::thread::spawn(move || {
            loop {
                std::thread::park_timeout(Duration::from_millis(250));
                if ticking.stopped.load(Ordering::Relaxed) {
                    return;
                }
                ticking.draw();
            }
        });
        Self { shared: Some(shared), ticker: Mutex::new(Some(ticker)) }
    }

    /// Progress that shows nothing.
    pub fn quiet() -> Self {
        Self { shared: None, ticker: Mutex::new(None) }
    }

    /// What is done so far, such as `12.4 MB of 40.0 MB`.
    pub fn set(&self, text: impl FnOnce() -> String) {
        if let Some(shared) = &self.shared
            && let Ok(mut current) = shared.text.lock()
        {
            *current = text();
        }
    }

    /// Stops drawing and clears the line, once (also on drop).
    pub fn finish(&self) {
        let Some(shared) = &self.shared else { return };
        if shared.stopped.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(ticker) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            ticker.thread().unpark();
            drop(ticker.join());
        }
        let mut err = std::io::stderr().lock();
        drop(write!(err, "\r\x1b[2K"));
        drop(err.flush());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Shared {
    fn draw(&self) {
        let text = self.text.lock().map(|t| t.clone()).unwrap_or_default();
        let seconds = self.started.elapsed().as_secs();
        let mut err = std::io::stderr().lock();
        let separator = if text.is_empty() { "" } else { ", " };
        drop(write!(err, "\r\x1b[2K{}: {text}{separator}{seconds} s", self.label));
        drop(err.flush());
    }
}

/// Bytes in words: `512 B`, `12.4 MB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Shows how much the files in `dir` whose names start with `prefix` hold,
/// four times a second, until `work` is done; `work`'s result.
pub async fn watch_growth<T>(
    progress: &Progress,
    dir: &std::path::Path,
    prefix: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    if progress.shared.is_none() {
        return work.await;
    }
    let measure = async {
        loop {
            let written: u64 = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|entry| entry.metadata().ok())
                .map(|meta| meta.len())
                .sum();
            progress.set(|| format!("{} written", size(written)));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        done = work => done,
        () = measure => unreachable!("measuring never ends"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_words() {
        assert_eq!(super::size(999), "999 B");
        assert_eq!(super::size(12_400_000), "12.4 MB");
        assert_eq!(super::size(3_000_000_000), "3.0 GB");
    }
}
