//! A set of keys from the configuration and, optionally, a keys file read
//! again on every reload: the tenants' API keys, and the operators' metrics
//! keys. Revocation always takes effect (SECURITY.md says how in each case).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use crate::domain::keys::KeySet;

/// Keys from the configuration and a keys file.
#[derive(Debug)]
pub struct KeySource {
    /// The setting that names the file, for messages.
    setting: &'static str,
    /// Keys from the configuration itself (kept across reloads).
    configured: KeySet,
    file: Option<PathBuf>,
    /// What was last read of the file.
    state: Mutex<FileState>,
    current: RwLock<Arc<KeySet>>,
}

#[derive(Debug, Default)]
struct FileState {
    /// The file's text when it was last read.
    text: Option<String>,
    /// Its lines that were skipped, each named with its number.
    bad_lines: Vec<String>,
    /// Reads that failed in a row (the file missing or unreadable).
    failed_reads: u32,
}

/// What a reload of a keys file found.
#[derive(Debug, Default)]
pub struct Reload {
    /// The keys in use changed.
    pub changed: bool,
    /// Lines of a new text that were skipped, each named with its number.
    pub bad_lines: Vec<String>,
    /// Why the file could not be read, if it could not.
    pub unreadable: Option<String>,
    /// The file stayed unreadable, so its keys no longer work.
    pub file_keys_dropped: bool,
}

impl Reload {
    /// Whether the reload failed in any way (counted in `/metrics`).
    pub fn failed(&self) -> bool {
        !self.bad_lines.is_empty() || self.unreadable.is_some()
    }

    /// Logs what the reload found; `keys` are the keys in use after it.
    pub fn log(&self, what: &str, keys: usize, why: &str) {
        for line in &self.bad_lines {
            tracing::error!("{what} skipped: {line}");
        }
        match &self.unreadable {
            Some(problem) if self.file_keys_dropped => {
                tracing::error!("{problem}; read again and still failing, so its keys no longer work");
            }
            Some(problem) => tracing::warn!("{problem}; its keys stay in use until the next read fails too"),
            None => {}
        }
        if self.changed {
            tracing::info!(keys, why, "{what}s reloaded");
        }
    }
}

impl KeySource {
    /// The keys of `configured` and of `file` (`setting` names it). A file
    /// that cannot be read is an error; its bad lines are skipped, and
    /// logged as `what`s skipped.
    pub fn load(
        setting: &'static str,
        configured: KeySet,
        file: Option<&str>,
        what: &str,
    ) -> Result<Self, String> {
        let source = Self {
            setting,
            current: RwLock::new(Arc::new(configured.clone())),
            configured,
            file: file.map(PathBuf::from),
            state: Mutex::new(FileState::default()),
        };
        let loaded = source.reload();
        if let Some(why) = loaded.unreadable {
            return Err(why);
        }
        loaded.log(what, source.len(), "start");
        Ok(source)
    }

    /// The keys accepted now.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How many keys are accepted now.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// How many lines of the file in use were skipped as bad.
    pub fn bad_line_count(&self) -> usize {
        lock(&self.state).bad_lines.len()
    }

    /// The keys file, if one is configured.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the file. A changed text replaces the file's keys with the
    /// keys of its good lines (a bad line is skipped, never a reason to keep
    /// keys the file no longer lists). A failed read keeps the keys in use
    /// once, as a file being swapped may be missing for a moment; a second
    /// failed read in a row (one reload interval later) drops the file's
    /// keys, leaving only those of the configuration itself.
    pub fn reload(&self) -> Reload {
        let Some(file) = &self.file else { return Reload::default() };
        let mut state = lock(&self.state);
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                state.failed_reads += 1;
                let unreadable = Some(format!("cannot read {} `{}`: {e}", self.setting, file.display()));
                if state.failed_reads < 2 || state.text.is_none() {
                    return Reload { unreadable, ..Reload::default() };
                }
                *state = FileState { failed_reads: state.failed_reads, ..FileState::default() };
                self.replace(self.configured.clone());
                return Reload { changed: true, unreadable, file_keys_dropped: true, ..Reload::default() };
            }
        };
        state.failed_reads = 0;
        if state.text.as_deref() == Some(text.as_str()) {
            return Reload::default();
        }
        let origin = format!("{} `{}`", self.setting, file.display());
        let (from_file, mut bad_lines) = KeySet::parse_lenient(&text, &origin);
        let (keys, conflicts) = self.configured.clone().merged(&from_file);
        bad_lines.extend(conflicts.into_iter().map(|conflict| format!("{origin}: {conflict}")));
        self.replace(keys);
        *state = FileState { text: Some(text), bad_lines: bad_lines.clone(), failed_reads: 0 };
        Reload { changed: true, bad_lines, ..Reload::default() }
    }

    fn replace(&self, keys: KeySet) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
